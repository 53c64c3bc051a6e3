//! Facts read straight from an ONNX file's bytes that no engine's session exposes: whether the
//! file is an ONNX model at all (and if not, what it looks like instead: a Python pickle, a
//! PyTorch checkpoint, a Keras file, a truncated or empty file), the operators of its nodes
//! (to name the one an engine cannot run), and the class labels a classifier node carries
//! (`classlabels_strings` / `classlabels_int64s`, set by skl2onnx, onnxmltools and friends),
//! used by `warden init` to name probability columns.
//!
//! ONNX files are protobuf; this walks just the wire format (varints and length-delimited
//! fields) along ModelProto.graph → GraphProto.node → NodeProto.attribute, which is all it needs
//! and keeps a protobuf code generator out of the build.

/// What a model file turned out to be when it is not an ONNX model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotOnnx {
    Empty,
    /// A Python pickle: scikit-learn's `pickle.dump` or `joblib.dump`.
    Pickle,
    /// A zlib stream, as `joblib.dump(..., compress=True)` writes.
    CompressedJoblib,
    /// A zip archive, as `torch.save` writes.
    TorchCheckpoint,
    /// HDF5, as Keras' `model.save("x.h5")` writes.
    Hdf5,
    /// Protobuf that stops early, or bytes that are no protobuf at all.
    Corrupt,
}

impl NotOnnx {
    /// What the file is, for a message.
    pub fn describe(self) -> &'static str {
        match self {
            NotOnnx::Empty => "an empty file",
            NotOnnx::Pickle => "a Python pickle (pickle.dump or joblib.dump)",
            NotOnnx::CompressedJoblib => "a compressed joblib file",
            NotOnnx::TorchCheckpoint => "a zip archive, such as a PyTorch checkpoint (torch.save)",
            NotOnnx::Hdf5 => "an HDF5 file, such as a Keras model",
            NotOnnx::Corrupt => "truncated, or not ONNX at all",
        }
    }

    /// `{path} {sentence}`: what the file is, said once (`is an empty file, not an ONNX model`;
    /// `is not a readable ONNX model (truncated, or not ONNX at all)`).
    pub fn sentence(self) -> String {
        match self {
            NotOnnx::Corrupt => format!("is not a readable ONNX model ({})", self.describe()),
            other => format!("is {}, not an ONNX model", other.describe()),
        }
    }
}

/// One graph node: its name, operator and operator domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub name: String,
    pub op_type: String,
    pub domain: String,
}

/// Checks that `model` is an ONNX ModelProto with a graph and lists its nodes; otherwise says
/// what the bytes look like instead.
pub fn inspect(model: &[u8]) -> Result<Vec<NodeFacts>, NotOnnx> {
    const MODEL_GRAPH: u64 = 7;
    const GRAPH_NODE: u64 = 1;
    match model {
        [] => return Err(NotOnnx::Empty),
        [0x80, 2..=5, ..] => return Err(NotOnnx::Pickle),
        [0x78, 0x01 | 0x5e | 0x9c | 0xda, ..] => return Err(NotOnnx::CompressedJoblib),
        [b'P', b'K', 3, 4, ..] => return Err(NotOnnx::TorchCheckpoint),
        [0x89, b'H', b'D', b'F', ..] => return Err(NotOnnx::Hdf5),
        _ => {}
    }
    let graph = fields(model)
        .ok_or(NotOnnx::Corrupt)?
        .into_iter()
        .find_map(|(number, value)| match (number, value) {
            (MODEL_GRAPH, Field::Bytes(graph)) => Some(graph),
            _ => None,
        })
        .ok_or(NotOnnx::Corrupt)?;
    let mut nodes = Vec::new();
    for (number, node) in fields(graph).ok_or(NotOnnx::Corrupt)? {
        if let (GRAPH_NODE, Field::Bytes(node)) = (number, node) {
            nodes.push(node_facts(node).ok_or(NotOnnx::Corrupt)?);
        }
    }
    Ok(nodes)
}

fn node_facts(node: &[u8]) -> Option<NodeFacts> {
    const NAME: u64 = 3;
    const OP_TYPE: u64 = 4;
    const DOMAIN: u64 = 7;
    let mut facts = NodeFacts {
        name: String::new(),
        op_type: String::new(),
        domain: String::new(),
    };
    for (number, value) in fields(node)? {
        let Field::Bytes(bytes) = value else { continue };
        let text = String::from_utf8_lossy(bytes).into_owned();
        match number {
            NAME => facts.name = text,
            OP_TYPE => facts.op_type = text,
            DOMAIN => facts.domain = text,
            _ => {}
        }
    }
    Some(facts)
}

/// The class labels of the first classifier node in `model`, in the order its probability
/// columns use, or `None` when there is none (or the bytes are not a readable ONNX model).
pub fn class_labels(model: &[u8]) -> Option<Vec<String>> {
    const MODEL_GRAPH: u64 = 7;
    const GRAPH_NODE: u64 = 1;
    const NODE_ATTRIBUTE: u64 = 5;
    let graph = fields(model)?
        .into_iter()
        .find_map(|(number, value)| (number == MODEL_GRAPH).then_some(value))?;
    let Field::Bytes(graph) = graph else {
        return None;
    };
    for (number, node) in fields(graph)? {
        let (GRAPH_NODE, Field::Bytes(node)) = (number, node) else {
            continue;
        };
        for (number, attribute) in fields(node)? {
            let (NODE_ATTRIBUTE, Field::Bytes(attribute)) = (number, attribute) else {
                continue;
            };
            if let Some(labels) = labels_attribute(attribute) {
                return Some(labels);
            }
        }
    }
    None
}

/// An AttributeProto named `classlabels_strings` (strings, field 9) or `classlabels_int64s`
/// (ints, field 8, packed or not), as text.
fn labels_attribute(attribute: &[u8]) -> Option<Vec<String>> {
    const NAME: u64 = 1;
    const INTS: u64 = 8;
    const STRINGS: u64 = 9;
    let fields = fields(attribute)?;
    let name = fields
        .iter()
        .find_map(|(number, value)| match (number, value) {
            (&NAME, Field::Bytes(name)) => std::str::from_utf8(name).ok(),
            _ => None,
        })?;
    let mut labels = Vec::new();
    match name {
        "classlabels_strings" => {
            for (number, value) in &fields {
                if let (&STRINGS, Field::Bytes(text)) = (number, value) {
                    labels.push(String::from_utf8_lossy(text).into_owned());
                }
            }
        }
        "classlabels_int64s" => {
            for (number, value) in &fields {
                match (number, value) {
                    (&INTS, Field::Varint(v)) => labels.push((*v as i64).to_string()),
                    (&INTS, Field::Bytes(packed)) => {
                        let mut rest = *packed;
                        while !rest.is_empty() {
                            let (v, tail) = varint(rest)?;
                            labels.push((v as i64).to_string());
                            rest = tail;
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => return None,
    }
    (!labels.is_empty()).then_some(labels)
}

#[derive(Debug)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Every top-level field of one protobuf message, or `None` if the bytes are malformed.
fn fields(mut message: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    while !message.is_empty() {
        let (key, rest) = varint(message)?;
        let (number, wire_type) = (key >> 3, key & 7);
        let (field, rest) = match wire_type {
            0 => {
                let (value, rest) = varint(rest)?;
                (Field::Varint(value), rest)
            }
            1 => (Field::Fixed, rest.get(8..)?),
            2 => {
                let (length, rest) = varint(rest)?;
                let length = usize::try_from(length).ok()?;
                (Field::Bytes(rest.get(..length)?), rest.get(length..)?)
            }
            5 => (Field::Fixed, rest.get(4..)?),
            _ => return None,
        };
        out.push((number, field));
        message = rest;
    }
    Some(out)
}

fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (index, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[index + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(model: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../examples/models/{model}/1/model.onnx",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    }

    #[test]
    fn reads_the_class_labels_of_the_bundled_classifiers() {
        assert_eq!(
            class_labels(&example("iris")),
            Some(vec![
                "setosa".into(),
                "versicolor".into(),
                "virginica".into()
            ])
        );
        assert_eq!(
            class_labels(&example("credit")),
            Some(vec!["approve".into(), "reject".into()])
        );
    }

    #[test]
    fn the_bundled_models_are_onnx_and_their_operators_are_listed() {
        let nodes = inspect(&example("credit")).unwrap();
        let ops: Vec<&str> = nodes.iter().map(|n| n.op_type.as_str()).collect();
        assert!(
            ops.contains(&"OneHotEncoder") && ops.contains(&"LinearClassifier"),
            "{ops:?}"
        );
        assert!(nodes.iter().any(|n| n.domain == "ai.onnx.ml"));
    }

    #[test]
    fn files_that_are_not_onnx_are_told_apart() {
        let iris = example("iris");
        assert_eq!(inspect(&[]), Err(NotOnnx::Empty));
        assert_eq!(inspect(b"\x80\x04\x95\x10\x00\x00"), Err(NotOnnx::Pickle));
        assert_eq!(inspect(b"x\x9c\x01\x02"), Err(NotOnnx::CompressedJoblib));
        assert_eq!(inspect(b"PK\x03\x04rest"), Err(NotOnnx::TorchCheckpoint));
        assert_eq!(inspect(&iris[..iris.len() / 2]), Err(NotOnnx::Corrupt));
        let noise: Vec<u8> = (0u32..512)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(inspect(&noise), Err(NotOnnx::Corrupt));
    }

    #[test]
    fn garbage_is_not_a_classifier() {
        assert_eq!(class_labels(b"not a model at all"), None);
        assert_eq!(class_labels(&[]), None);
        assert_eq!(class_labels(&[0xff; 64]), None);
    }
}
