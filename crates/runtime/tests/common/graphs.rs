//! Builders for small ONNX graphs the tests write in code (random forests, random SVMs): a
//! seeded generator, node attributes, value infos with a symbolic batch, and the model around
//! one node, in the ONNX and ONNX-ML opsets the zoo's exporters use; and the comparison of two
//! engines' answers to such a graph.

use std::path::Path;

use prost::Message;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto,
    TypeProto, ValueInfoProto, attribute_proto::AttributeType, tensor_shape_proto, type_proto,
};

/// xorshift64*: small, seeded, good enough to vary cases.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub(crate) fn range(&mut self, low: f32, high: f32) -> f32 {
        low + (high - low) * self.unit()
    }
    pub(crate) fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }
}

#[derive(Default)]
pub(crate) struct Attributes {
    pub(crate) list: Vec<AttributeProto>,
}

impl Attributes {
    pub(crate) fn ints(&mut self, name: &str, ints: Vec<i64>) {
        self.list.push(AttributeProto {
            name: name.into(),
            r#type: AttributeType::Ints as i32,
            ints,
            ..Default::default()
        });
    }
    pub(crate) fn floats(&mut self, name: &str, floats: Vec<f32>) {
        self.list.push(AttributeProto {
            name: name.into(),
            r#type: AttributeType::Floats as i32,
            floats,
            ..Default::default()
        });
    }
    pub(crate) fn strings(&mut self, name: &str, strings: Vec<&str>) {
        self.list.push(AttributeProto {
            name: name.into(),
            r#type: AttributeType::Strings as i32,
            strings: strings.into_iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        });
    }
    pub(crate) fn string(&mut self, name: &str, s: &str) {
        self.list.push(AttributeProto {
            name: name.into(),
            r#type: AttributeType::String as i32,
            s: s.as_bytes().to_vec(),
            ..Default::default()
        });
    }
    pub(crate) fn int(&mut self, name: &str, i: i64) {
        self.list.push(AttributeProto {
            name: name.into(),
            r#type: AttributeType::Int as i32,
            i,
            ..Default::default()
        });
    }
}

pub(crate) fn float_matrix(name: &str, width: Option<i64>) -> ValueInfoProto {
    tensor_value(name, 1, width)
}

pub(crate) fn tensor_value(name: &str, elem_type: i32, width: Option<i64>) -> ValueInfoProto {
    let dim = |value| tensor_shape_proto::Dimension {
        value: Some(value),
        ..Default::default()
    };
    let mut dims = vec![dim(tensor_shape_proto::dimension::Value::DimParam(
        "N".into(),
    ))];
    if let Some(width) = width {
        dims.push(dim(tensor_shape_proto::dimension::Value::DimValue(width)));
    }
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn model(
    node: NodeProto,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) -> Vec<u8> {
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        graph: Some(GraphProto {
            name: node.name.clone(),
            node: vec![node],
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    };
    model.encode_to_vec()
}

/// What `backend` answers for `graph` on `input`.
pub(crate) fn answer(
    backend: &dyn warden_runtime::Backend,
    graph: &[u8],
    input: &warden_runtime::NamedTensor,
) -> Vec<warden_runtime::NamedTensor> {
    let mut model = backend
        .load(
            graph,
            Path::new("generated.onnx"),
            &warden_runtime::LoadOptions::default(),
        )
        .unwrap();
    model.run(vec![input.clone()], &[]).unwrap()
}

/// Asserts two engines' answers are the same: shapes and non-float outputs equal, floats
/// within `tolerance` (relative above 1), NaN where the other has NaN (PROBIT outside (0, 1)
/// is NaN on both), an infinity where the other has the same one.
pub(crate) fn assert_same_answers(
    expected: &[warden_runtime::NamedTensor],
    got: &[warden_runtime::NamedTensor],
    tolerance: f32,
    context: &str,
) {
    use warden_runtime::TensorData;
    assert_eq!(expected.len(), got.len(), "{context}");
    for (e, g) in expected.iter().zip(got) {
        assert_eq!(e.tensor.shape, g.tensor.shape, "{} {context}", e.name);
        match (&e.tensor.data, &g.tensor.data) {
            (TensorData::F32(a), TensorData::F32(b)) => {
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        x == y
                            || (x - y).abs() <= tolerance * x.abs().max(1.0)
                            || x.is_nan() && y.is_nan(),
                        "{}: {a:?} vs {b:?} in {context}",
                        e.name
                    );
                }
            }
            (a, b) => assert_eq!(a, b, "{} in {context}", e.name),
        }
    }
}
