//! Facts read straight from an ONNX file's bytes that no engine's session exposes: the class
//! labels a classifier node carries (`classlabels_strings` / `classlabels_int64s`, set by
//! skl2onnx, onnxmltools and friends), used by `warden init` to name probability columns.
//!
//! ONNX files are protobuf; this walks just the wire format (varints and length-delimited
//! fields) along ModelProto.graph → GraphProto.node → NodeProto.attribute, which is all it needs
//! and keeps a protobuf code generator out of the build.

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
    fn garbage_is_not_a_classifier() {
        assert_eq!(class_labels(b"not a model at all"), None);
        assert_eq!(class_labels(&[]), None);
        assert_eq!(class_labels(&[0xff; 64]), None);
    }
}
