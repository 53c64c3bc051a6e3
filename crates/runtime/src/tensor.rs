//! Tensors and graph signatures in warden's own vocabulary.
//!
//! Element types are named as the Open Inference Protocol (KServe V2) names them, because that
//! is the vocabulary clients see; each backend converts to and from its engine's types at the
//! edge. Data is stored flat in row-major order beside its shape.

use std::fmt;

/// An element type, as the Open Inference Protocol spells it (`FP32`, `BYTES`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
    /// UTF-8 strings; `BYTES` on the wire.
    String,
}

impl DataType {
    /// Every element type warden exchanges, in protocol order.
    pub const ALL: [DataType; 12] = [
        DataType::Bool,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::F32,
        DataType::F64,
        DataType::String,
    ];

    /// The protocol name, e.g. `FP32`.
    pub fn protocol_name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::U16 => "UINT16",
            DataType::U32 => "UINT32",
            DataType::U64 => "UINT64",
            DataType::I8 => "INT8",
            DataType::I16 => "INT16",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
            DataType::String => "BYTES",
        }
    }

    /// Parses a protocol name; `None` for names warden does not exchange (e.g. `FP16`).
    pub fn from_protocol_name(name: &str) -> Option<DataType> {
        DataType::ALL
            .into_iter()
            .find(|dtype| dtype.protocol_name() == name)
    }

    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DataType::F32 | DataType::F64)
    }

    /// True for the signed and unsigned integer types.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::U8
                | DataType::U16
                | DataType::U32
                | DataType::U64
                | DataType::I8
                | DataType::I16
                | DataType::I32
                | DataType::I64
        )
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.protocol_name())
    }
}

/// Flat, row-major tensor contents, one variant per [`DataType`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    String(Vec<String>),
}

impl TensorData {
    /// The element type of this data.
    pub fn data_type(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::U8(_) => DataType::U8,
            TensorData::U16(_) => DataType::U16,
            TensorData::U32(_) => DataType::U32,
            TensorData::U64(_) => DataType::U64,
            TensorData::I8(_) => DataType::I8,
            TensorData::I16(_) => DataType::I16,
            TensorData::I32(_) => DataType::I32,
            TensorData::I64(_) => DataType::I64,
            TensorData::F32(_) => DataType::F32,
            TensorData::F64(_) => DataType::F64,
            TensorData::String(_) => DataType::String,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::Bool(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::U16(v) => v.len(),
            TensorData::U32(v) => v.len(),
            TensorData::U64(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::I16(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::String(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor: a shape and flat data whose length is the product of the shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// Builds a tensor, checking that the data fills the shape exactly.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, String> {
        let expected = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if expected != Some(data.len()) {
            let expected = expected.map_or_else(|| "more".to_owned(), |n| n.to_string());
            return Err(format!(
                "shape {shape:?} holds {expected} elements but {} were given",
                data.len()
            ));
        }
        Ok(Tensor { shape, data })
    }

    /// The element type.
    pub fn data_type(&self) -> DataType {
        self.data.data_type()
    }
}

/// A tensor with the graph input or output name it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub tensor: Tensor,
}

/// One graph input or output as the graph declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub data_type: DataType,
    /// Dimensions; `-1` where the graph leaves a dimension dynamic (as KServe V2 reports it).
    pub shape: Vec<i64>,
}

impl TensorSpec {
    /// Whether a tensor of this shape fits the declared one (same rank, fixed dims equal).
    pub fn accepts_shape(&self, shape: &[usize]) -> bool {
        self.shape.len() == shape.len()
            && self
                .shape
                .iter()
                .zip(shape)
                .all(|(&declared, &given)| declared < 0 || declared as usize == given)
    }
}

/// Everything a graph declares about its inputs and outputs, in graph order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl Signature {
    /// The declared input called `name`.
    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|spec| spec.name == name)
    }

    /// The declared output called `name`.
    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|spec| spec.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_round_trip() {
        for dtype in DataType::ALL {
            assert_eq!(
                DataType::from_protocol_name(dtype.protocol_name()),
                Some(dtype)
            );
        }
        assert_eq!(DataType::from_protocol_name("FP16"), None);
    }

    #[test]
    fn tensor_new_rejects_mismatched_length() {
        assert!(Tensor::new(vec![2, 2], TensorData::F32(vec![1.0; 4])).is_ok());
        let err = Tensor::new(vec![2, 3], TensorData::F32(vec![1.0; 4])).unwrap_err();
        assert!(err.contains("6 elements but 4"), "{err}");
    }

    #[test]
    fn dynamic_dimensions_accept_any_size() {
        let spec = TensorSpec {
            name: "x".into(),
            data_type: DataType::F32,
            shape: vec![-1, 4],
        };
        assert!(spec.accepts_shape(&[7, 4]));
        assert!(!spec.accepts_shape(&[7, 3]));
        assert!(!spec.accepts_shape(&[28]));
    }
}
