//! The ZipMap cut, for every engine. scikit-learn classifiers exported with skl2onnx end in a
//! `ZipMap` node that turns the `[N, classes]` probability tensor into a sequence of
//! label → probability maps; warden exchanges only tensors (and its output guards check that
//! tensor), so each ZipMap becomes an `Identity` and the graph output it feeds is declared a
//! float `[N, classes]` tensor under the same name, in label order. ONNX Runtime loads the
//! cut bytes; tract parses them before its own rewrites ([`crate::rewrite`]).
//!
//! The cut works on the protobuf wire format ([`crate::wire`]), not on decoded ONNX types:
//! it needs no protobuf code generator, so ONNX Runtime gets it without the `tract` feature,
//! and it is lossless: every field it does not rewrite, fields warden does not know included,
//! is copied byte for byte, and only the lengths of the messages around a rewrite are written
//! anew.

use crate::graph_facts::labels_attribute;
use crate::wire::{self, Field};

const MODEL_GRAPH: u64 = 7;
const GRAPH_NODE: u64 = 1;
const GRAPH_OUTPUT: u64 = 12;
const NODE_OUTPUT: u64 = 2;
const NODE_NAME: u64 = 3;
const NODE_OP_TYPE: u64 = 4;
const NODE_ATTRIBUTE: u64 = 5;
const NODE_DOMAIN: u64 = 7;
const VALUE_INFO_NAME: u64 = 1;
const VALUE_INFO_TYPE: u64 = 2;

/// The model with each ZipMap of its graph cut, or `None` when there is none (load the model
/// as it is) or the bytes are not a readable ONNX model (let the engine say so).
pub(crate) fn cut(model: &[u8]) -> Option<Vec<u8>> {
    let mut cut = false;
    let mut out = Vec::with_capacity(model.len() + 64);
    for field in wire::spans(model)? {
        match (field.number, field.value) {
            (MODEL_GRAPH, Field::Bytes(graph)) => match cut_graph(graph)? {
                Some(graph) => {
                    wire::put_bytes(&mut out, MODEL_GRAPH, &graph);
                    cut = true;
                }
                None => out.extend_from_slice(field.raw),
            },
            _ => out.extend_from_slice(field.raw),
        }
    }
    cut.then_some(out)
}

/// A GraphProto with its ZipMaps cut: `None` when it is malformed, `Some(None)` when it has no
/// ZipMap.
fn cut_graph(graph: &[u8]) -> Option<Option<Vec<u8>>> {
    let fields = wire::spans(graph)?;
    // The Identity replacing each ZipMap, by field position; the outputs they feed and widths.
    let mut identities = vec![None; fields.len()];
    let mut retype = Vec::new();
    for (position, field) in fields.iter().enumerate() {
        if let (GRAPH_NODE, Field::Bytes(node)) = (field.number, field.value)
            && let Some(cut) = cut_node(node)?
        {
            identities[position] = Some(cut.identity);
            retype.extend(cut.output.map(|output| (output, cut.labels)));
        }
    }
    if identities.iter().all(Option::is_none) {
        return Some(None);
    }
    let mut out = Vec::with_capacity(graph.len() + 64);
    for (field, identity) in fields.iter().zip(&identities) {
        let retyped = match (field.number, field.value) {
            (GRAPH_OUTPUT, Field::Bytes(value)) => retyped(value, &retype)?,
            _ => None,
        };
        match (identity, retyped) {
            (Some(identity), _) => wire::put_bytes(&mut out, GRAPH_NODE, identity),
            (None, Some(value)) => wire::put_bytes(&mut out, GRAPH_OUTPUT, &value),
            (None, None) => out.extend_from_slice(field.raw),
        }
    }
    Some(Some(out))
}

/// A ZipMap node, cut.
struct CutNode<'a> {
    /// The NodeProto that replaces it.
    identity: Vec<u8>,
    /// The name of its output, now the probability tensor.
    output: Option<&'a [u8]>,
    /// How many class labels it mapped: the tensor's width.
    labels: Option<usize>,
}

/// The NodeProto `node` as an `Identity` when it is a ZipMap: same inputs and outputs, name
/// suffixed `_cut`, no attributes, default domain, anything else kept. `None` when `node` is
/// malformed, `Some(None)` when it is another operator.
fn cut_node(node: &[u8]) -> Option<Option<CutNode<'_>>> {
    let fields = wire::spans(node)?;
    // A string field written twice reads as the last one.
    let last = |number: u64| {
        fields.iter().rev().find_map(|field| match field.value {
            Field::Bytes(text) if field.number == number => Some(text),
            _ => None,
        })
    };
    if last(NODE_OP_TYPE) != Some(b"ZipMap") || last(NODE_DOMAIN) != Some(b"ai.onnx.ml") {
        return Some(None);
    }
    let output = fields.iter().find_map(|field| match field.value {
        Field::Bytes(output) if field.number == NODE_OUTPUT => Some(output),
        _ => None,
    });
    let labels = fields.iter().find_map(|field| match field.value {
        Field::Bytes(attribute) if field.number == NODE_ATTRIBUTE => {
            labels_attribute(attribute).map(|labels| labels.len())
        }
        _ => None,
    });
    let mut identity = Vec::with_capacity(node.len());
    for field in &fields {
        match (field.number, field.value) {
            (NODE_OP_TYPE, _) => wire::put_bytes(&mut identity, NODE_OP_TYPE, b"Identity"),
            (NODE_NAME, Field::Bytes(name)) if !name.is_empty() => {
                wire::put_bytes(&mut identity, NODE_NAME, &[name, b"_cut"].concat());
            }
            (NODE_ATTRIBUTE | NODE_DOMAIN, _) => {}
            _ => identity.extend_from_slice(field.raw),
        }
    }
    Some(Some(CutNode {
        identity,
        output,
        labels,
    }))
}

/// The ValueInfoProto `value` declared a float matrix when it names a cut ZipMap's output:
/// `None` when it is malformed, `Some(None)` when it names another tensor.
fn retyped(value: &[u8], retype: &[(&[u8], Option<usize>)]) -> Option<Option<Vec<u8>>> {
    let fields = wire::spans(value)?;
    let name = fields.iter().rev().find_map(|field| match field.value {
        Field::Bytes(name) if field.number == VALUE_INFO_NAME => Some(name),
        _ => None,
    });
    let Some(&(_, labels)) = retype.iter().find(|(output, _)| Some(*output) == name) else {
        return Some(None);
    };
    let matrix = float_matrix_type(labels);
    let mut out = Vec::with_capacity(value.len() + matrix.len());
    let mut typed = false;
    for field in &fields {
        if field.number != VALUE_INFO_TYPE {
            out.extend_from_slice(field.raw);
        } else if !typed {
            // The new type where the old one was (a type written twice would be merged).
            wire::put_bytes(&mut out, VALUE_INFO_TYPE, &matrix);
            typed = true;
        }
    }
    if !typed {
        wire::put_bytes(&mut out, VALUE_INFO_TYPE, &matrix);
    }
    Some(Some(out))
}

/// A TypeProto for a graph output: a float tensor `[N, width]` (`N` symbolic; just `[N]` when
/// the width is unknown), `tensor_type { elem_type: FLOAT, shape { dim { dim_param: "N" }
/// dim { dim_value: width } } }`.
fn float_matrix_type(width: Option<usize>) -> Vec<u8> {
    const TYPE_TENSOR: u64 = 1;
    const TENSOR_ELEM_TYPE: u64 = 1;
    const TENSOR_SHAPE: u64 = 2;
    const SHAPE_DIM: u64 = 1;
    const DIM_VALUE: u64 = 1;
    const DIM_PARAM: u64 = 2;
    const FLOAT: u64 = 1;
    let mut dim = Vec::new();
    wire::put_bytes(&mut dim, DIM_PARAM, b"N");
    let mut shape = Vec::new();
    wire::put_bytes(&mut shape, SHAPE_DIM, &dim);
    if let Some(width) = width {
        dim.clear();
        wire::put_varint_field(&mut dim, DIM_VALUE, width as u64);
        wire::put_bytes(&mut shape, SHAPE_DIM, &dim);
    }
    let mut tensor = Vec::new();
    wire::put_varint_field(&mut tensor, TENSOR_ELEM_TYPE, FLOAT);
    wire::put_bytes(&mut tensor, TENSOR_SHAPE, &shape);
    let mut kind = Vec::new();
    wire::put_bytes(&mut kind, TYPE_TENSOR, &tensor);
    kind
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test helpers outside #[test] functions
mod tests {
    use super::*;
    use crate::graph_facts::inspect;
    use crate::wire::Span;

    fn read(path: &str) -> Vec<u8> {
        std::fs::read(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// The last string (or message) field `number` of a message.
    fn text<'a>(spans: &[Span<'a>], number: u64) -> Option<&'a [u8]> {
        spans.iter().rev().find_map(|span| match span.value {
            Field::Bytes(text) if span.number == number => Some(text),
            _ => None,
        })
    }

    fn all(spans: &[Span<'_>], number: u64) -> Vec<Vec<u8>> {
        spans
            .iter()
            .filter(|span| span.number == number)
            .map(|span| span.raw.to_vec())
            .collect()
    }

    fn graph(model: &[u8]) -> Vec<Span<'_>> {
        wire::spans(text(&wire::spans(model).unwrap(), MODEL_GRAPH).unwrap()).unwrap()
    }

    #[derive(Debug, PartialEq)]
    enum Dim {
        Param(String),
        Value(u64),
    }

    /// A TypeProto that is a tensor: its element type and dimensions.
    fn tensor_type(kind: &[u8]) -> (u64, Vec<Dim>) {
        let tensor = wire::spans(text(&wire::spans(kind).unwrap(), 1).unwrap()).unwrap();
        let Some(Field::Varint(elem_type)) = tensor.iter().find(|s| s.number == 1).map(|s| s.value)
        else {
            panic!("no elem_type");
        };
        let shape = wire::spans(text(&tensor, 2).unwrap()).unwrap();
        let dims = shape
            .iter()
            .map(|dim| {
                let Field::Bytes(dim) = dim.value else {
                    panic!("dim is not a message")
                };
                match wire::spans(dim).unwrap()[..] {
                    [
                        Span {
                            number: 1,
                            value: Field::Varint(value),
                            ..
                        },
                    ] => Dim::Value(value),
                    [
                        Span {
                            number: 2,
                            value: Field::Bytes(param),
                            ..
                        },
                    ] => Dim::Param(String::from_utf8(param.to_vec()).unwrap()),
                    ref other => panic!("unexpected dim {other:?}"),
                }
            })
            .collect();
        (elem_type, dims)
    }

    /// Every zoo classifier exported with its ZipMap: the ZipMap node becomes an Identity on
    /// the same tensors, the graph output it fed becomes float `[N, classes]` (the width ONNX
    /// Runtime's Python API answered, in the zoo's JSON), and every other byte is the same.
    #[test]
    fn every_zoo_zipmap_becomes_an_identity_and_its_output_a_float_matrix() {
        let dir = format!("{}/../../tests/zoo", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|name| name.strip_suffix("_zipmap.onnx").map(str::to_owned))
            .collect();
        names.sort();
        assert!(names.len() >= 9, "{names:?}");
        for name in names {
            let original = read(&format!("tests/zoo/{name}_zipmap.onnx"));
            let case: serde_json::Value =
                serde_json::from_slice(&read(&format!("tests/zoo/{name}_zipmap.json"))).unwrap();
            let cut = cut(&original).unwrap_or_else(|| panic!("{name}: nothing cut"));

            // Outside the graph, the model is byte for byte the same.
            let (before, after) = (wire::spans(&original).unwrap(), wire::spans(&cut).unwrap());
            assert_eq!(before.len(), after.len(), "{name}");
            for (b, a) in before.iter().zip(&after) {
                assert_eq!(b.number, a.number, "{name}");
                assert!(b.number == MODEL_GRAPH || b.raw == a.raw, "{name}");
            }
            // In the graph, exactly one node and one output differ.
            let (before, after) = (graph(&original), graph(&cut));
            assert_eq!(before.len(), after.len(), "{name}");
            let changed: Vec<(&Span<'_>, &Span<'_>)> = before
                .iter()
                .zip(&after)
                .filter(|(b, a)| {
                    assert_eq!(b.number, a.number, "{name}");
                    b.raw != a.raw
                })
                .collect();
            let numbers: Vec<u64> = changed.iter().map(|(b, _)| b.number).collect();
            assert_eq!(numbers, vec![GRAPH_NODE, GRAPH_OUTPUT], "{name}");
            assert_eq!(
                all(&before, 5),
                all(&after, 5),
                "{name}: initializers differ"
            );

            let (Field::Bytes(zipmap), Field::Bytes(identity)) =
                (changed[0].0.value, changed[0].1.value)
            else {
                panic!("{name}: nodes are messages");
            };
            let (zipmap, identity) = (wire::spans(zipmap).unwrap(), wire::spans(identity).unwrap());
            assert_eq!(text(&zipmap, NODE_OP_TYPE), Some(&b"ZipMap"[..]), "{name}");
            assert_eq!(
                text(&identity, NODE_OP_TYPE),
                Some(&b"Identity"[..]),
                "{name}"
            );
            assert_eq!(text(&identity, NODE_DOMAIN), None, "{name}");
            assert!(all(&identity, NODE_ATTRIBUTE).is_empty(), "{name}");
            assert_eq!(all(&identity, 1), all(&zipmap, 1), "{name}: inputs");
            assert_eq!(all(&identity, 2), all(&zipmap, 2), "{name}: outputs");
            let zipmap_name = text(&zipmap, NODE_NAME).unwrap();
            assert_eq!(
                text(&identity, NODE_NAME),
                Some(&[zipmap_name, b"_cut"].concat()[..]),
                "{name}"
            );

            let (Field::Bytes(output_before), Field::Bytes(output_after)) =
                (changed[1].0.value, changed[1].1.value)
            else {
                panic!("{name}: outputs are messages");
            };
            let output = wire::spans(output_after).unwrap();
            let output_name = text(&output, VALUE_INFO_NAME).unwrap();
            assert_eq!(Some(output_name), text(&zipmap, NODE_OUTPUT), "{name}");
            assert_eq!(
                text(&wire::spans(output_before).unwrap(), VALUE_INFO_NAME),
                Some(output_name),
                "{name}"
            );
            let expected = case["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"].as_str().unwrap().as_bytes() == output_name)
                .unwrap();
            let classes = expected["shape"][1].as_u64().unwrap();
            assert_eq!(
                tensor_type(text(&output, VALUE_INFO_TYPE).unwrap()),
                (1, vec![Dim::Param("N".into()), Dim::Value(classes)]),
                "{name}"
            );

            let ops: Vec<String> = inspect(&cut)
                .unwrap()
                .into_iter()
                .map(|n| n.op_type)
                .collect();
            assert!(!ops.iter().any(|op| op == "ZipMap"), "{name}: {ops:?}");
            assert!(
                super::cut(&cut).is_none(),
                "{name}: a second cut finds nothing"
            );
        }
    }

    #[test]
    fn a_graph_without_zipmap_is_loaded_as_it_is() {
        for path in [
            "examples/models/iris/1/model.onnx",
            "examples/models/credit/1/model.onnx",
            "tests/zoo/random_forest_classifier.onnx",
            "tests/zoo/lightgbm_regressor.onnx",
        ] {
            assert!(cut(&read(path)).is_none(), "{path}");
        }
    }

    #[test]
    fn bytes_that_are_not_onnx_are_left_to_the_engine() {
        let zipmap = read("tests/zoo/logistic_regression_zipmap.onnx");
        let mut bad_graph = Vec::new();
        wire::put_bytes(&mut bad_graph, MODEL_GRAPH, &[0xff, 0xff]);
        for garbage in [
            &b""[..],
            b"not a model at all",
            &[0xff; 64],
            &zipmap[..zipmap.len() / 2],
            &bad_graph,
        ] {
            assert!(cut(garbage).is_none(), "{garbage:?}");
        }
    }

    fn message(fields: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (number, bytes) in fields {
            wire::put_bytes(&mut out, *number, bytes);
        }
        out
    }

    /// A hand-written graph: packed int labels, an output with no type, fields ONNX does not
    /// define (which must survive), a ZipMap without labels, and a `ZipMap` outside ai.onnx.ml.
    #[test]
    fn packed_labels_missing_types_and_unknown_fields() {
        let mut packed = Vec::new();
        for label in [5, 6, 300, 7] {
            wire::put_varint(&mut packed, label);
        }
        let labels = message(&[(1, b"classlabels_int64s"), (8, &packed)]);
        let mut zipmap = message(&[
            (1, b"probabilities"),
            (2, b"out"),
            (3, b"zm"),
            (4, b"ZipMap"),
            (5, &labels),
            (6, b"docs"),
            (7, b"ai.onnx.ml"),
        ]);
        wire::put_varint_field(&mut zipmap, 88, 1);
        let unlabelled = message(&[
            (1, b"probabilities"),
            (2, b"out2"),
            (4, b"ZipMap"),
            (7, b"ai.onnx.ml"),
        ]);
        let custom = message(&[(2, b"other"), (4, b"ZipMap"), (7, b"com.example")]);
        let cast = message(&[(1, b"x"), (2, b"probabilities"), (4, b"Cast")]);
        let mut graph = message(&[
            (1, &cast),
            (1, &zipmap),
            (1, &unlabelled),
            (1, &custom),
            (12, &message(&[(1, b"out"), (3, b"doc of out")])),
            (12, &message(&[(1, b"out2"), (2, b"\x0a\x00")])),
        ]);
        wire::put_varint_field(&mut graph, 77, 3);
        let mut model = Vec::new();
        wire::put_varint_field(&mut model, 1, 8);
        wire::put_varint_field(&mut model, 99, 42);
        wire::put_bytes(&mut model, MODEL_GRAPH, &graph);

        let cut = cut(&model).unwrap();
        let top = wire::spans(&cut).unwrap();
        assert_eq!(top[0].raw, &[0x08, 8]);
        assert_eq!((top[1].number, top[1].raw), (99, &[0x98, 0x06, 42][..]));
        let (before, graph) = (self::graph(&model), self::graph(&cut));
        assert_eq!(graph.len(), 7);
        assert_eq!(
            graph[0].raw, before[0].raw,
            "another operator is not touched"
        );
        assert_eq!(
            graph[3].raw, before[3].raw,
            "nor a ZipMap of another domain"
        );
        assert_eq!(
            graph[6].raw, before[6].raw,
            "nor a field ONNX does not define"
        );
        let bytes = |index: usize| match graph[index].value {
            Field::Bytes(bytes) => bytes,
            other => panic!("{other:?}"),
        };
        let mut identity = message(&[
            (1, b"probabilities"),
            (2, b"out"),
            (3, b"zm_cut"),
            (4, b"Identity"),
            (6, b"docs"),
        ]);
        wire::put_varint_field(&mut identity, 88, 1);
        assert_eq!(bytes(1), identity);
        assert_eq!(
            bytes(2),
            message(&[(1, b"probabilities"), (2, b"out2"), (4, b"Identity")]),
            "an unnamed ZipMap stays unnamed"
        );

        let out = wire::spans(bytes(4)).unwrap();
        assert_eq!(
            tensor_type(text(&out, VALUE_INFO_TYPE).unwrap()),
            (1, vec![Dim::Param("N".into()), Dim::Value(4)]),
            "four packed labels"
        );
        assert_eq!(
            bytes(4),
            message(&[
                (1, b"out"),
                (3, b"doc of out"),
                (2, &float_matrix_type(Some(4)))
            ]),
            "a type is added after what the output had"
        );
        let out2 = wire::spans(bytes(5)).unwrap();
        assert_eq!(
            tensor_type(text(&out2, VALUE_INFO_TYPE).unwrap()),
            (1, vec![Dim::Param("N".into())]),
            "no labels, no width"
        );
        assert_eq!(
            bytes(5),
            message(&[(1, b"out2"), (2, &float_matrix_type(None))]),
            "the type is replaced where it was"
        );
    }

    /// The output type is what the protobuf types tract reads describe as float `[N, 3]`, to
    /// the byte.
    #[cfg(feature = "tract")]
    #[test]
    fn tract_reads_the_cut_output_as_a_float_matrix() {
        use prost::Message;
        use tract_onnx::pb::{TensorShapeProto, TypeProto, tensor_shape_proto, type_proto};

        let dim = |value| tensor_shape_proto::Dimension {
            value: Some(value),
            ..Default::default()
        };
        let expected = TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: 1,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        dim(tensor_shape_proto::dimension::Value::DimParam("N".into())),
                        dim(tensor_shape_proto::dimension::Value::DimValue(3)),
                    ],
                }),
            })),
            ..TypeProto::default()
        };
        assert_eq!(float_matrix_type(Some(3)), expected.encode_to_vec());
        let cut = cut(&read("tests/zoo/logistic_regression_zipmap.onnx")).unwrap();
        let model = crate::rewrite::parse(&cut).unwrap();
        let graph = model.graph.unwrap();
        let output = graph
            .output
            .iter()
            .find(|o| o.name == "output_probability")
            .unwrap();
        assert_eq!(output.r#type.as_ref(), Some(&expected));
        assert!(graph.node.iter().all(|n| n.op_type != "ZipMap"));
    }
}
