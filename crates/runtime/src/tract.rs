//! The pure-Rust backend: tract, with ZipMap cut ([`crate::zipmap`]) and the ONNX-ML
//! rewrites of [`crate::rewrite`] applied at load, so a single binary with no C++ library
//! serves the models people export from scikit-learn, XGBoost and LightGBM.
//!
//! Graph inputs are given a symbolic batch dimension `N` wherever the graph leaves one open,
//! and the graph is optimised once for every batch size.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::pb::{ModelProto, ValueInfoProto, tensor_proto, tensor_shape_proto, type_proto};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::InferenceFact;

use crate::{
    Backend, DataType, LoadOptions, LoadedModel, NamedTensor, RuntimeError, Signature,
    Tensor as WardenTensor, TensorData, TensorSpec, rewrite, zipmap,
};

/// The tract backend. Stateless: every model is its own optimised plan.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tract;

impl Backend for Tract {
    fn platform(&self) -> &'static str {
        "tract_onnx"
    }

    fn load(
        &self,
        model: &[u8],
        origin: &Path,
        _options: &LoadOptions,
    ) -> Result<Box<dyn LoadedModel>, RuntimeError> {
        let load_error = |reason: String| RuntimeError::Load {
            path: origin.to_path_buf(),
            reason,
        };
        let cut = zipmap::cut(model);
        let mut proto = rewrite::parse(cut.as_deref().unwrap_or(model)).map_err(load_error)?;
        let mut applied = rewrite::for_tract(&mut proto);
        if cut.is_some() {
            applied.insert(0, "ZipMap");
        }
        if !applied.is_empty() {
            tracing::debug!(path = %origin.display(), rewrites = ?applied, "rewrote ONNX-ML operators for tract");
        }
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| load_error("the model has no graph".into()))?;
        let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<TensorSpec> = graph
            .input
            .iter()
            .filter(|input| !initializers.contains(&input.name.as_str()))
            .map(|input| {
                spec(input).map_err(|reason| unsupported(origin, "input", &input.name, reason))
            })
            .collect::<Result<_, _>>()?;
        let output_names: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
        let plan = optimise(&proto, &inputs).map_err(|err| load_error(format!("{err:#}")))?;
        let outputs =
            output_specs(&plan, &output_names).map_err(|err| load_error(format!("{err:#}")))?;
        Ok(Box::new(TractModel {
            plan,
            signature: Signature { inputs, outputs },
        }))
    }
}

fn unsupported(origin: &Path, role: &str, name: &str, reason: String) -> RuntimeError {
    RuntimeError::UnsupportedSignature {
        path: origin.to_path_buf(),
        reason: format!("graph {role} `{name}` is {reason}"),
    }
}

/// A graph input's spec from its declared type: dynamic dimensions become `-1`.
fn spec(value: &ValueInfoProto) -> Result<TensorSpec, String> {
    let Some(type_proto::Value::TensorType(tensor)) =
        value.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err("not a tensor".into());
    };
    let data_type = onnx_data_type(tensor.elem_type).ok_or_else(|| {
        format!(
            "a tensor of ONNX element type {}, which warden does not exchange",
            tensor.elem_type
        )
    })?;
    let shape = tensor
        .shape
        .as_ref()
        .map(|shape| {
            shape
                .dim
                .iter()
                .map(|dim| match dim.value {
                    Some(tensor_shape_proto::dimension::Value::DimValue(n)) if n > 0 => n,
                    _ => -1,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(TensorSpec {
        name: value.name.clone(),
        data_type,
        shape,
    })
}

fn onnx_data_type(elem_type: i32) -> Option<DataType> {
    use tensor_proto::DataType as Onnx;
    Some(match Onnx::try_from(elem_type).ok()? {
        Onnx::Float => DataType::F32,
        Onnx::Double => DataType::F64,
        Onnx::Int64 => DataType::I64,
        Onnx::Int32 => DataType::I32,
        Onnx::Int16 => DataType::I16,
        Onnx::Int8 => DataType::I8,
        Onnx::Uint64 => DataType::U64,
        Onnx::Uint32 => DataType::U32,
        Onnx::Uint16 => DataType::U16,
        Onnx::Uint8 => DataType::U8,
        Onnx::Bool => DataType::Bool,
        Onnx::String => DataType::String,
        _ => return None,
    })
}

fn datum_type(data_type: DataType) -> DatumType {
    match data_type {
        DataType::Bool => bool::datum_type(),
        DataType::U8 => u8::datum_type(),
        DataType::U16 => u16::datum_type(),
        DataType::U32 => u32::datum_type(),
        DataType::U64 => u64::datum_type(),
        DataType::I8 => i8::datum_type(),
        DataType::I16 => i16::datum_type(),
        DataType::I32 => i32::datum_type(),
        DataType::I64 => i64::datum_type(),
        DataType::F32 => f32::datum_type(),
        DataType::F64 => f64::datum_type(),
        DataType::String => String::datum_type(),
    }
}

/// The graph with every input's type fixed (dynamic dims as the symbol `N`), optimised.
fn optimise(proto: &ModelProto, inputs: &[TensorSpec]) -> TractResult<Arc<TypedRunnableModel>> {
    let mut onnx = onnx();
    crate::svm::register(&mut onnx.op_register);
    crate::trees::register(&mut onnx.op_register);
    let mut model = onnx.model_for_proto_model(proto)?;
    let batch = model.symbols.sym("N");
    for (index, input) in inputs.iter().enumerate() {
        let dims: Vec<TDim> = input
            .shape
            .iter()
            .map(|&d| {
                if d < 0 {
                    TDim::Sym(batch.clone())
                } else {
                    (d as usize).to_dim()
                }
            })
            .collect();
        model.set_input_fact(
            index,
            InferenceFact::dt_shape(datum_type(input.data_type), dims),
        )?;
    }
    model.into_optimized()?.into_runnable()
}

fn output_specs(plan: &TypedRunnableModel, names: &[String]) -> TractResult<Vec<TensorSpec>> {
    let model = plan.model();
    (0..model.output_outlets()?.len())
        .map(|index| {
            let fact = model.output_fact(index)?;
            let data_type = output_data_type(fact.datum_type).ok_or_else(|| {
                TractError::msg(format!("output {index} has type {:?}", fact.datum_type))
            })?;
            let shape = fact
                .shape
                .iter()
                .map(|dim| dim.to_i64().unwrap_or(-1))
                .collect();
            Ok(TensorSpec {
                name: names
                    .get(index)
                    .cloned()
                    .unwrap_or_else(|| format!("output_{index}")),
                data_type,
                shape,
            })
        })
        .collect()
}

/// tract's output types in warden's vocabulary; symbolic dimensions (TDim) become integers.
fn output_data_type(datum: DatumType) -> Option<DataType> {
    if datum == TDim::datum_type() {
        return Some(DataType::I64);
    }
    DataType::ALL.into_iter().find(|&d| datum_type(d) == datum)
}

#[derive(Debug, Clone)]
struct TractModel {
    plan: Arc<TypedRunnableModel>,
    signature: Signature,
}

impl LoadedModel for TractModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn share(&self) -> Option<Box<dyn LoadedModel>> {
        Some(Box::new(self.clone()))
    }

    fn shares_run_at_once(&self) -> bool {
        true
    }

    fn run(
        &mut self,
        inputs: Vec<NamedTensor>,
        outputs: &[String],
    ) -> Result<Vec<NamedTensor>, RuntimeError> {
        let fail = |err: TractError| RuntimeError::Inference(format!("{err:#}"));
        let mut by_name = inputs;
        let mut ordered = TVec::new();
        for spec in &self.signature.inputs {
            let position = by_name
                .iter()
                .position(|input| input.name == spec.name)
                .ok_or_else(|| {
                    RuntimeError::Inference(format!("input `{}` is missing", spec.name))
                })?;
            let tensor = by_name.swap_remove(position).tensor;
            ordered.push(to_tract(tensor).map_err(fail)?.into_tvalue());
        }
        let results = self.plan.run(ordered).map_err(fail)?;
        let wanted: Vec<usize> = if outputs.is_empty() {
            (0..self.signature.outputs.len()).collect()
        } else {
            outputs
                .iter()
                .map(|name| {
                    self.signature
                        .outputs
                        .iter()
                        .position(|o| &o.name == name)
                        .ok_or_else(|| RuntimeError::Inference(format!("no output `{name}`")))
                })
                .collect::<Result<_, _>>()?
        };
        wanted
            .into_iter()
            .map(|index| {
                Ok(NamedTensor {
                    name: self.signature.outputs[index].name.clone(),
                    tensor: from_tract(&results[index]).map_err(fail)?,
                })
            })
            .collect()
    }
}

fn to_tract(tensor: WardenTensor) -> TractResult<Tensor> {
    fn array<T: Datum>(shape: &[usize], values: Vec<T>) -> TractResult<Tensor> {
        Ok(
            tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(shape), values)?
                .into_tensor(),
        )
    }
    let shape = tensor.shape;
    match tensor.data {
        TensorData::Bool(v) => array(&shape, v),
        TensorData::U8(v) => array(&shape, v),
        TensorData::U16(v) => array(&shape, v),
        TensorData::U32(v) => array(&shape, v),
        TensorData::U64(v) => array(&shape, v),
        TensorData::I8(v) => array(&shape, v),
        TensorData::I16(v) => array(&shape, v),
        TensorData::I32(v) => array(&shape, v),
        TensorData::I64(v) => array(&shape, v),
        TensorData::F32(v) => array(&shape, v),
        TensorData::F64(v) => array(&shape, v),
        TensorData::String(v) => array(&shape, v),
    }
}

fn from_tract(value: &TValue) -> TractResult<WardenTensor> {
    fn values<T: Datum + Clone>(tensor: &Tensor) -> TractResult<Vec<T>> {
        Ok(tensor.to_plain_array_view::<T>()?.iter().cloned().collect())
    }
    let tensor: &Tensor = value;
    let shape = tensor.shape().to_vec();
    let datum = tensor.datum_type();
    let data = if datum == TDim::datum_type() {
        TensorData::I64(values(&*tensor.cast_to::<i64>()?)?)
    } else if datum == f32::datum_type() {
        TensorData::F32(values(tensor)?)
    } else if datum == f64::datum_type() {
        TensorData::F64(values(tensor)?)
    } else if datum == i64::datum_type() {
        TensorData::I64(values(tensor)?)
    } else if datum == i32::datum_type() {
        TensorData::I32(values(tensor)?)
    } else if datum == bool::datum_type() {
        TensorData::Bool(values(tensor)?)
    } else if datum == String::datum_type() {
        TensorData::String(values(tensor)?)
    } else if datum == u8::datum_type() {
        TensorData::U8(values(tensor)?)
    } else {
        return Err(TractError::msg(format!(
            "output of type {datum:?} is not exchanged by warden"
        )));
    };
    Ok(WardenTensor { shape, data })
}
