//! Facts read straight from an ONNX file's bytes that no engine's session exposes: whether the
//! file is an ONNX model at all (and if not, what it looks like instead: a Python pickle, a
//! PyTorch checkpoint, a Keras file, a truncated or empty file), the operators of its nodes
//! (to name the one an engine cannot run), and the class labels a classifier node carries
//! (`classlabels_strings` / `classlabels_int64s` / `classlabels_ints`, set by skl2onnx, onnxmltools and friends),
//! used by `warden init` to name probability columns; and which input columns the graph can take
//! a missing value for (an `Imputer`, or trees that track missing values), from which `warden
//! init` decides a feature's `nullable`.
//!
//! ONNX files are protobuf; this walks just the wire format (see [`crate::wire`]) along
//! ModelProto.graph → GraphProto.node → NodeProto.attribute, which is all it needs and keeps a
//! protobuf code generator out of the build.

use std::collections::{BTreeSet, HashMap};

use crate::wire::{Field, fields, varints};

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
    match model {
        [] => return Err(NotOnnx::Empty),
        [0x80, 2..=5, ..] => return Err(NotOnnx::Pickle),
        [0x78, 0x01 | 0x5e | 0x9c | 0xda, ..] => return Err(NotOnnx::CompressedJoblib),
        [b'P', b'K', 3, 4, ..] => return Err(NotOnnx::TorchCheckpoint),
        [0x89, b'H', b'D', b'F', ..] => return Err(NotOnnx::Hdf5),
        _ => {}
    }
    let graph = graph_of(model).ok_or(NotOnnx::Corrupt)?;
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
    const NODE_ATTRIBUTE: u64 = 5;
    let graph = graph_of(model)?;
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

/// An AttributeProto named `classlabels_strings` (strings, field 9), or `classlabels_int64s`
/// (tree ensembles, ZipMap) or `classlabels_ints` (linear and SVM classifiers) (ints, field 8,
/// packed or not), as text; `None` for any other attribute, or no labels.
pub(crate) fn labels_attribute(attribute: &[u8]) -> Option<Vec<String>> {
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
        "classlabels_int64s" | "classlabels_ints" => {
            for (number, value) in &fields {
                if let (&INTS, Field::Varint(_) | Field::Bytes(_)) = (number, value) {
                    labels.extend(varints(value)?.iter().map(i64::to_string));
                }
            }
        }
        _ => return None,
    }
    (!labels.is_empty()).then_some(labels)
}

/// A graph input's columns as the caller knows them: `[N]` (rank 1, one column) or
/// `[N, width]` (rank 2; the width may come from elsewhere when the graph leaves it dynamic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputColumns<'a> {
    pub name: &'a str,
    pub rank: usize,
    pub width: usize,
}

/// What the graph does with its input columns, as `(input name, column)`, found in one walk of
/// its nodes. A column is only listed when its path to the node that decides can be followed:
/// through `Identity`, `Cast`, `Scaler`, `Concat` on the column axis, `FeatureVectorizer`, and
/// `Gather` or `ArrayFeatureExtractor` with constant indices (how skl2onnx selects a
/// ColumnTransformer's columns). A path through anything else lists nothing.
#[derive(Debug, Default)]
pub struct ColumnFacts {
    /// The columns for which the graph can take a missing value (NaN): those an `Imputer` that
    /// replaces NaN consumes, and those a tree ensemble splits on at a node whose
    /// `nodes_missing_value_tracks_true` is set. Anywhere else a NaN flows into arithmetic or a
    /// comparison and comes out as a confident, meaningless answer: too few listed is a refused
    /// `null`, too many is the silent failure.
    pub takes_missing_values: BTreeSet<(String, usize)>,
    /// The columns a `OneHotEncoder` whose `zeros` attribute is set (skl2onnx writes it for
    /// `handle_unknown="ignore"`) encodes: a category the encoder was not fitted on becomes all
    /// zeros instead of an error, so the pipeline was built to take unseen values there.
    pub ignores_unseen_categories: BTreeSet<(String, usize)>,
}

/// The [`ColumnFacts`] of `model`'s graph for the columns of `inputs`.
pub fn column_facts(model: &[u8], inputs: &[InputColumns<'_>]) -> ColumnFacts {
    let mut facts = ColumnFacts::default();
    let Some(graph) = graph_of(model).and_then(fields) else {
        return facts;
    };
    let mut constants = HashMap::new();
    for (number, value) in &graph {
        if let (GRAPH_INITIALIZER, Field::Bytes(tensor)) = (*number, value)
            && let Some((name, constant)) = int_tensor(tensor)
        {
            constants.insert(name, constant);
        }
    }
    // Where each column of each tensor comes from: `Some((input, column))` when it is a graph
    // input's column unchanged (up to NaN-preserving arithmetic), `None` when it is not.
    let mut sources: HashMap<&[u8], Columns> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let columns = Columns {
                rank: input.rank,
                of: (0..input.width).map(|c| Some((index, c))).collect(),
            };
            (input.name.as_bytes(), columns)
        })
        .collect();
    for (number, value) in &graph {
        let (GRAPH_NODE, Field::Bytes(node)) = (*number, value) else {
            continue;
        };
        let Some(node) = Node::parse(node) else {
            continue;
        };
        if node.op_type == b"Constant"
            && let (Some(output), Some(value)) = (node.outputs.first(), node.attribute(b"value"))
            && let Some(tensor) = value.tensor
            && let Some((_, constant)) = int_tensor(tensor)
        {
            constants.insert(output.to_vec(), constant);
            continue;
        }
        let operand = |i: usize| node.inputs.get(i).and_then(|name| sources.get(name));
        let constant = |i: usize| node.inputs.get(i).and_then(|name| constants.get(*name));
        let mark = |set: &mut BTreeSet<(String, usize)>,
                    columns: &Columns,
                    features: &mut dyn Iterator<Item = usize>| {
            for feature in features {
                if let Some(Some((input, column))) = columns.of.get(feature) {
                    set.insert((inputs[*input].name.to_owned(), *column));
                }
            }
        };
        let taking = &mut facts.takes_missing_values;
        let ml = node.domain == b"ai.onnx.ml";
        let produced = match (ml, node.op_type) {
            (false, b"Identity" | b"Cast") | (true, b"Scaler") => operand(0).cloned(),
            (true, b"Imputer") => {
                let replaces_nan = node
                    .attribute(b"replaced_value_float")
                    .and_then(|a| a.float)
                    .is_some_and(f32::is_nan);
                let columns = operand(0).cloned();
                if let (true, Some(columns)) = (replaces_nan, &columns) {
                    mark(taking, columns, &mut (0..columns.of.len()));
                }
                columns
            }
            (true, b"OneHotEncoder") => {
                // `zeros` defaults to 1 in the operator's definition.
                let ignores = node.attribute(b"zeros").and_then(|a| a.int).unwrap_or(1) == 1;
                if let (true, Some(columns)) = (ignores, operand(0)) {
                    mark(
                        &mut facts.ignores_unseen_categories,
                        columns,
                        &mut (0..columns.of.len()),
                    );
                }
                None
            }
            (true, b"TreeEnsembleClassifier" | b"TreeEnsembleRegressor" | b"TreeEnsemble") => {
                if let Some(columns) = operand(0) {
                    let features = node.ints(b"nodes_featureids");
                    let tracks = node.ints(b"nodes_missing_value_tracks_true");
                    // Leaves carry a feature id too (0); only splits read a feature. The
                    // opset-5 `TreeEnsemble` lists leaves apart, so its nodes are all splits.
                    let modes = node.strings(b"nodes_modes");
                    let splits = features
                        .iter()
                        .zip(&tracks)
                        .enumerate()
                        .filter(|(i, _)| modes.get(*i).is_none_or(|mode| *mode != b"LEAF"));
                    mark(
                        taking,
                        columns,
                        &mut splits
                            .filter(|(_, (_, tracks))| **tracks == 1)
                            .filter_map(|(_, (feature, _))| usize::try_from(*feature).ok()),
                    );
                }
                None
            }
            (false, b"Concat") => {
                let axis = node.attribute(b"axis").and_then(|a| a.int);
                let parts: Option<Vec<&Columns>> = (0..node.inputs.len()).map(operand).collect();
                match (axis, parts) {
                    (Some(1 | -1), Some(parts)) if parts.iter().all(|p| p.rank == 2) => {
                        Some(Columns {
                            rank: 2,
                            of: parts.iter().flat_map(|p| p.of.iter().copied()).collect(),
                        })
                    }
                    _ => None,
                }
            }
            (true, b"FeatureVectorizer") => {
                let widths = node.ints(b"inputdimensions");
                let parts: Option<Vec<&Columns>> = (0..node.inputs.len()).map(operand).collect();
                parts
                    .filter(|p| p.len() == widths.len())
                    .map(|parts| Columns {
                        rank: 2,
                        // Each input is cut or zero-padded to its declared width.
                        of: parts
                            .iter()
                            .zip(&widths)
                            .flat_map(|(part, &width)| {
                                (0..usize::try_from(width).unwrap_or(0))
                                    .map(|c| part.of.get(c).copied().flatten())
                            })
                            .collect(),
                    })
            }
            (false, b"Gather") | (true, b"ArrayFeatureExtractor") => {
                let along_columns =
                    ml || matches!(node.attribute(b"axis").and_then(|a| a.int), Some(1 | -1));
                match (operand(0), constant(1)) {
                    (Some(columns), Some(indices)) if along_columns && columns.rank == 2 => {
                        let width = columns.of.len() as i64;
                        let of = indices
                            .values
                            .iter()
                            .map(|&i| {
                                let i = if i < 0 { i + width } else { i };
                                usize::try_from(i)
                                    .ok()
                                    .and_then(|i| columns.of.get(i).copied().flatten())
                            })
                            .collect();
                        // A scalar index drops the column axis (Gather only).
                        let rank = if indices.scalar && !ml { 1 } else { 2 };
                        Some(Columns { rank, of })
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let (Some(columns), Some(output)) = (produced, node.outputs.first()) {
            sources.insert(output, columns);
        }
    }
    facts
}

/// Whether any graph input is declared float64 (ONNX `DOUBLE`), as skl2onnx writes when asked
/// for `DoubleTensorType`: its ONNX-ML operators then compute in float64 too.
pub fn has_float64_input(model: &[u8]) -> bool {
    const VALUE_INFO_TYPE: u64 = 2;
    const TYPE_TENSOR: u64 = 1;
    const TENSOR_ELEM_TYPE: u64 = 1;
    const DOUBLE: u64 = 11;
    fn field(message: &[u8], wanted: u64) -> Option<Field<'_>> {
        fields(message)?
            .into_iter()
            .find_map(|(number, value)| (number == wanted).then_some(value))
    }
    let Some(graph) = graph_of(model).and_then(fields) else {
        return false;
    };
    graph.iter().any(|(number, value)| {
        let (GRAPH_INPUT, Field::Bytes(input)) = (*number, value) else {
            return false;
        };
        let Some(Field::Bytes(kind)) = field(input, VALUE_INFO_TYPE) else {
            return false;
        };
        let Some(Field::Bytes(tensor)) = field(kind, TYPE_TENSOR) else {
            return false;
        };
        matches!(field(tensor, TENSOR_ELEM_TYPE), Some(Field::Varint(DOUBLE)))
    })
}

const MODEL_GRAPH: u64 = 7;
const GRAPH_NODE: u64 = 1;
const GRAPH_INITIALIZER: u64 = 5;
const GRAPH_INPUT: u64 = 11;

/// The GraphProto of a ModelProto.
fn graph_of(model: &[u8]) -> Option<&[u8]> {
    fields(model)?
        .into_iter()
        .find_map(|(number, value)| match (number, value) {
            (MODEL_GRAPH, Field::Bytes(graph)) => Some(graph),
            _ => None,
        })
}

/// Where the columns of one tensor come from.
#[derive(Debug, Clone)]
struct Columns {
    rank: usize,
    of: Vec<Option<(usize, usize)>>,
}

/// An integer constant (an initializer or a `Constant` node's value), such as column indices.
#[derive(Debug)]
struct IntConstant {
    /// Rank 0: one index, which `Gather` turns into one fewer dimension.
    scalar: bool,
    values: Vec<i64>,
}

/// A TensorProto of int64 or int32 values, with its name.
fn int_tensor(tensor: &[u8]) -> Option<(Vec<u8>, IntConstant)> {
    const DIMS: u64 = 1;
    const DATA_TYPE: u64 = 2;
    const INT32_DATA: u64 = 5;
    const INT64_DATA: u64 = 7;
    const NAME: u64 = 8;
    const RAW_DATA: u64 = 9;
    const INT32: u64 = 6;
    const INT64: u64 = 7;
    let mut name = Vec::new();
    let mut data_type = 0;
    let mut dims = Vec::new();
    let mut values = Vec::new();
    let mut raw: &[u8] = &[];
    for (number, value) in fields(tensor)? {
        match (number, value) {
            (DIMS, value) => dims.extend(varints(&value)?),
            (DATA_TYPE, Field::Varint(t)) => data_type = t,
            (INT32_DATA | INT64_DATA, value) => values.extend(varints(&value)?),
            (NAME, Field::Bytes(n)) => name = n.to_vec(),
            (RAW_DATA, Field::Bytes(bytes)) => raw = bytes,
            _ => {}
        }
    }
    if !raw.is_empty() {
        values = match data_type {
            INT64 => raw
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
            INT32 => raw
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap_or_default())))
                .collect(),
            _ => return None,
        };
    }
    matches!(data_type, INT32 | INT64).then_some((
        name,
        IntConstant {
            scalar: dims.is_empty(),
            values,
        },
    ))
}

/// One NodeProto, as much of it as the missing-value walk reads.
struct Node<'a> {
    op_type: &'a [u8],
    domain: &'a [u8],
    inputs: Vec<&'a [u8]>,
    outputs: Vec<&'a [u8]>,
    attributes: Vec<Attribute<'a>>,
}

/// One AttributeProto.
#[derive(Default)]
struct Attribute<'a> {
    name: &'a [u8],
    float: Option<f32>,
    int: Option<i64>,
    tensor: Option<&'a [u8]>,
    ints: Vec<i64>,
    strings: Vec<&'a [u8]>,
}

impl<'a> Node<'a> {
    fn parse(node: &'a [u8]) -> Option<Node<'a>> {
        const INPUT: u64 = 1;
        const OUTPUT: u64 = 2;
        const OP_TYPE: u64 = 4;
        const ATTRIBUTE: u64 = 5;
        const DOMAIN: u64 = 7;
        let mut parsed = Node {
            op_type: &[],
            domain: &[],
            inputs: Vec::new(),
            outputs: Vec::new(),
            attributes: Vec::new(),
        };
        for (number, value) in fields(node)? {
            let Field::Bytes(bytes) = value else { continue };
            match number {
                INPUT => parsed.inputs.push(bytes),
                OUTPUT => parsed.outputs.push(bytes),
                OP_TYPE => parsed.op_type = bytes,
                ATTRIBUTE => parsed.attributes.push(Attribute::parse(bytes)?),
                DOMAIN => parsed.domain = bytes,
                _ => {}
            }
        }
        Some(parsed)
    }

    fn attribute(&self, name: &[u8]) -> Option<&Attribute<'a>> {
        self.attributes.iter().find(|a| a.name == name)
    }

    fn ints(&self, name: &[u8]) -> Vec<i64> {
        self.attribute(name)
            .map(|a| a.ints.clone())
            .unwrap_or_default()
    }

    fn strings(&self, name: &[u8]) -> Vec<&'a [u8]> {
        self.attribute(name)
            .map(|a| a.strings.clone())
            .unwrap_or_default()
    }
}

impl<'a> Attribute<'a> {
    fn parse(attribute: &'a [u8]) -> Option<Attribute<'a>> {
        const NAME: u64 = 1;
        const FLOAT: u64 = 2;
        const INT: u64 = 3;
        const TENSOR: u64 = 5;
        const INTS: u64 = 8;
        const STRINGS: u64 = 9;
        let mut parsed = Attribute::default();
        for (number, value) in fields(attribute)? {
            match (number, value) {
                (NAME, Field::Bytes(name)) => parsed.name = name,
                (FLOAT, Field::Fixed32(bits)) => parsed.float = Some(f32::from_bits(bits)),
                (INT, Field::Varint(v)) => parsed.int = Some(v as i64),
                (TENSOR, Field::Bytes(tensor)) => parsed.tensor = Some(tensor),
                (INTS, value) => parsed.ints.extend(varints(&value)?),
                (STRINGS, Field::Bytes(text)) => parsed.strings.push(text),
                _ => {}
            }
        }
        Some(parsed)
    }
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

    fn zoo(model: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../tests/zoo/{model}.onnx",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(path).unwrap()
    }

    fn packed(name: &str, width: usize) -> InputColumns<'_> {
        InputColumns {
            name,
            rank: 2,
            width,
        }
    }

    #[test]
    fn trees_that_track_missing_values_take_them_for_the_features_they_split_on() {
        // LightGBM learned a direction for missing values at the splits on features 1, 2, 3
        // and 5 (0 and 4 are never split on); onnxmltools writes it as
        // `nodes_missing_value_tracks_true`.
        let taking =
            column_facts(&zoo("lightgbm_regressor"), &[packed("input", 6)]).takes_missing_values;
        let columns: Vec<usize> = taking.iter().map(|(_, c)| *c).collect();
        assert_eq!(columns, vec![1, 2, 3, 5]);
        assert!(taking.iter().all(|(input, _)| input == "input"));
        // scikit-learn's forests never track missing values: a NaN just takes the false branch.
        assert!(
            column_facts(&zoo("random_forest_regressor"), &[packed("X", 6)])
                .takes_missing_values
                .is_empty()
        );
    }

    #[test]
    fn an_imputer_takes_missing_values_for_the_columns_it_is_fed() {
        // Concat(a, b) -> Imputer; colour -> Gather -> OneHotEncoder.
        let column = |name| InputColumns {
            name,
            rank: 2,
            width: 1,
        };
        let taking = column_facts(
            &zoo("pipeline_impute_scale_onehot"),
            &[column("a"), column("b"), column("colour")],
        )
        .takes_missing_values;
        assert_eq!(
            taking.into_iter().collect::<Vec<_>>(),
            vec![("a".to_owned(), 0), ("b".to_owned(), 0)]
        );
    }

    #[test]
    fn a_one_hot_encoder_that_ignores_unseen_values_marks_its_columns() {
        let column = |name| InputColumns {
            name,
            rank: 2,
            width: 1,
        };
        // The bundled credit pipeline: OneHotEncoder(handle_unknown="ignore") on two strings.
        let credit = ["age", "income", "debt_ratio", "country", "employment"].map(column);
        assert_eq!(
            column_facts(&example("credit"), &credit)
                .ignores_unseen_categories
                .into_iter()
                .collect::<Vec<_>>(),
            vec![("country".to_owned(), 0), ("employment".to_owned(), 0)]
        );
        // Iris has no encoder; the imputing pipeline's encoder is skl2onnx's default (error).
        let iris = [InputColumns {
            name: "float_input",
            rank: 2,
            width: 4,
        }];
        assert!(
            column_facts(&example("iris"), &iris)
                .ignores_unseen_categories
                .is_empty()
        );
    }

    #[test]
    fn float64_inputs_are_seen() {
        assert!(!has_float64_input(&example("iris")));
        assert!(!has_float64_input(b"not a model"));
    }

    #[test]
    fn garbage_is_not_a_classifier() {
        assert_eq!(class_labels(b"not a model at all"), None);
        assert_eq!(class_labels(&[]), None);
        assert_eq!(class_labels(&[0xff; 64]), None);
    }
}
