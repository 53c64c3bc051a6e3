//! warden's tree-ensemble operators for the tract backend: `TreeEnsembleClassifier` and
//! `TreeEnsembleRegressor` (ONNX-ML), registered in tract's ONNX operator registry in place of
//! tract's own ([`register`]).
//!
//! Why warden owns them: tract's evaluator reaches a leaf's votes by skipping over the whole
//! leaf table, so a row cost time in proportion to the forest's size rather than its depth (a
//! 200-tree forest served ~230× slower than on ONNX Runtime); it has no regressor, no `MIN` or
//! `MAX` aggregate, no `SOFTMAX_ZERO` or `PROBIT`; and its two-class answers differ from ONNX
//! Runtime's, which every exported model was checked against.
//!
//! The layout is built once, at load: one 20-byte [`Node`] per split or leaf, children and
//! leaf votes addressed by index, the graph checked to be a forest (every child in its tree, no
//! cycle) so a walk always ends. A batch is walked tree by tree, all rows through one tree
//! before the next, so that tree's nodes stay in cache.
//!
//! The answers are ONNX Runtime's (`tree_ensemble_common.h`, `tree_ensemble_aggregator.h`):
//! a comparison is true, or false, as the node's mode says, and a NaN goes to the true branch
//! where `nodes_missing_value_tracks_true` says so; `MIN` and `MAX` start from a tree's first
//! vote; `AVERAGE` divides by the number of trees; base values and post-transforms are applied
//! as ONNX Runtime does, including its rules for two classes (a model whose leaves vote for one
//! class only, negative weights, one or two base values) and for one regression target (no
//! post-transform but `PROBIT`). `tests/forests.rs` holds random forests of all of these to ONNX
//! Runtime's answers.

use std::collections::HashMap;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_ndarray::Array1;

use crate::onnx_ml::{Labels, MlOperator, PostTransform, expand_operator, logistic, probit};

/// Adds warden's `TreeEnsembleClassifier` and `TreeEnsembleRegressor` to tract's ONNX operators.
pub(crate) fn register(registry: &mut OnnxOpRegister) {
    registry.insert("TreeEnsembleClassifier", parse_classifier);
    registry.insert("TreeEnsembleRegressor", parse_regressor);
}

/// A split (`kind` one of the comparisons) or a leaf (`kind` [`LEAF`], votes `yes..no`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Node {
    pub(crate) feature: u32,
    threshold: f32,
    pub(crate) yes: u32,
    pub(crate) no: u32,
    kind: u8,
    nan_goes_yes: bool,
}

impl Node {
    pub(crate) fn is_leaf(&self) -> bool {
        self.kind == LEAF
    }

    /// Whether a split sends the value `x` to its true branch (a NaN where the node says).
    #[inline]
    pub(crate) fn goes_yes(&self, x: f32) -> bool {
        let t = self.threshold;
        let yes = match self.kind {
            LESS_EQUAL => x <= t,
            LESS => x < t,
            GREATER_EQUAL => x >= t,
            GREATER => x > t,
            EQUAL => x == t,
            _ => x != t,
        };
        yes || self.nan_goes_yes && x.is_nan()
    }
}

const LEAF: u8 = 0;
const LESS_EQUAL: u8 = 1;
const LESS: u8 = 2;
const GREATER_EQUAL: u8 = 3;
const GREATER: u8 = 4;
const EQUAL: u8 = 5;
const NOT_EQUAL: u8 = 6;

fn node_kind(mode: &str) -> TractResult<u8> {
    Ok(match mode {
        "LEAF" => LEAF,
        "BRANCH_LEQ" => LESS_EQUAL,
        "BRANCH_LT" => LESS,
        "BRANCH_GTE" => GREATER_EQUAL,
        "BRANCH_GT" => GREATER,
        "BRANCH_EQ" => EQUAL,
        "BRANCH_NEQ" => NOT_EQUAL,
        other => bail!("unknown node mode {other:?}"),
    })
}

/// One class's or target's share of a leaf.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Vote {
    pub(crate) column: u32,
    pub(crate) weight: f32,
}

/// How the trees' votes for a column combine (`aggregate_function`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// A forest in the layout the evaluator walks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Forest {
    pub(crate) nodes: Vec<Node>,
    pub(crate) roots: Vec<u32>,
    pub(crate) votes: Vec<Vote>,
    /// Classes or targets.
    pub(crate) columns: usize,
    /// Features a row must have (the highest feature a split uses, plus one).
    pub(crate) features: usize,
    pub(crate) aggregate: Aggregate,
    /// Every split is `BRANCH_LEQ` without missing-value tracking (what scikit-learn, XGBoost
    /// and LightGBM mostly export): walked by a loop with one comparison and no mode dispatch.
    uniform_leq: bool,
}

/// Each row's score per column, and whether any tree voted for it.
struct Tally {
    scores: Vec<f32>,
    voted: Vec<bool>,
}

impl Forest {
    /// The forest of a node's attributes; `votes` names the leaf attributes (`class` or
    /// `target`).
    fn parse(
        node: &NodeProto,
        votes: &str,
        columns: usize,
        aggregate: Aggregate,
    ) -> TractResult<Forest> {
        if let Some(double) = node
            .attribute
            .iter()
            .find(|a| a.name.ends_with("_as_tensor"))
        {
            bail!(
                "`{}` holds the trees in float64, which warden's tract trees do not read: export \
                 with float32 (skl2onnx's default), or serve on ONNX Runtime",
                double.name
            );
        }
        let tree_ids: Vec<i64> = node.get_attr_vec("nodes_treeids")?;
        let count = tree_ids.len();
        node.expect(count > 0, "at least one node")?;
        let sized = |name: &str| -> TractResult<Vec<i64>> {
            let values: Vec<i64> = node.get_attr_vec(name)?;
            node.expect_attr(name, values.len() == count, "one value per node")?;
            Ok(values)
        };
        let node_ids = sized("nodes_nodeids")?;
        let feature_ids = sized("nodes_featureids")?;
        let true_ids = sized("nodes_truenodeids")?;
        let false_ids = sized("nodes_falsenodeids")?;
        let thresholds: Vec<f32> = node.get_attr_vec("nodes_values")?;
        node.expect_attr("nodes_values", thresholds.len() == count, "one per node")?;
        let modes: Vec<String> = node.get_attr_vec("nodes_modes")?;
        node.expect_attr("nodes_modes", modes.len() == count, "one per node")?;
        let tracks: Vec<i64> = node
            .get_attr_opt_vec("nodes_missing_value_tracks_true")?
            .unwrap_or_default();

        let mut index = HashMap::with_capacity(count);
        for (i, (&tree, &id)) in tree_ids.iter().zip(&node_ids).enumerate() {
            if index.insert((tree, id), i as u32).is_some() {
                bail!("node {id} of tree {tree} is listed twice");
            }
        }
        // A tree starts where the tree ids change, as ONNX Runtime reads them.
        let roots: Vec<u32> = (0..count)
            .filter(|&i| i == 0 || tree_ids[i] != tree_ids[i - 1])
            .map(|i| i as u32)
            .collect();

        let leaf_trees: Vec<i64> = node.get_attr_vec(&format!("{votes}_treeids"))?;
        let leaf_nodes: Vec<i64> = node.get_attr_vec(&format!("{votes}_nodeids"))?;
        let leaf_columns: Vec<i64> = node.get_attr_vec(&format!("{votes}_ids"))?;
        let leaf_weights: Vec<f32> = node.get_attr_vec(&format!("{votes}_weights"))?;
        node.expect(
            leaf_nodes.len() == leaf_trees.len()
                && leaf_columns.len() == leaf_trees.len()
                && leaf_weights.len() == leaf_trees.len(),
            || format!("as many {votes}_treeids, _nodeids, _ids and _weights"),
        )?;
        let mut per_node: Vec<Vec<Vote>> = vec![Vec::new(); count];
        for k in 0..leaf_trees.len() {
            let (tree, id, column) = (leaf_trees[k], leaf_nodes[k], leaf_columns[k]);
            let &at = index
                .get(&(tree, id))
                .ok_or_else(|| format_err!("a weight for node {id} of tree {tree}, not a node"))?;
            ensure!(
                (0..columns as i64).contains(&column),
                "a weight for {votes} {column}, of {columns}"
            );
            per_node[at as usize].push(Vote {
                column: column as u32,
                weight: leaf_weights[k],
            });
        }

        let mut nodes = Vec::with_capacity(count);
        let mut all_votes = Vec::new();
        let mut features = 0;
        for i in 0..count {
            let kind = node_kind(&modes[i])?;
            if kind == LEAF {
                let start = all_votes.len() as u32;
                all_votes.extend_from_slice(&per_node[i]);
                nodes.push(Node {
                    feature: 0,
                    threshold: 0.0,
                    yes: start,
                    no: all_votes.len() as u32,
                    kind,
                    nan_goes_yes: false,
                });
                continue;
            }
            let tree = tree_ids[i];
            let child = |id: i64| {
                index
                    .get(&(tree, id))
                    .copied()
                    .ok_or_else(|| format_err!("node {} of tree {tree} branches to node {id}, which the tree does not have", node_ids[i]))
            };
            let feature = u32::try_from(feature_ids[i])
                .map_err(|_| format_err!("feature id {} out of range", feature_ids[i]))?;
            features = features.max(feature as usize + 1);
            nodes.push(Node {
                feature,
                threshold: thresholds[i],
                yes: child(true_ids[i])?,
                no: child(false_ids[i])?,
                kind,
                nan_goes_yes: tracks.get(i) == Some(&1),
            });
        }
        check_acyclic(&nodes, &roots)?;
        let uniform_leq = nodes
            .iter()
            .all(|n| n.kind == LEAF || n.kind == LESS_EQUAL && !n.nan_goes_yes);
        Ok(Forest {
            uniform_leq,
            nodes,
            roots,
            votes: all_votes,
            columns,
            features,
            aggregate,
        })
    }

    /// The votes of a leaf node.
    pub(crate) fn leaf_votes(&self, node: &Node) -> &[Vote] {
        &self.votes[node.yes as usize..node.no as usize]
    }

    /// The votes of the leaf `row` reaches in the tree rooted at `root`.
    #[inline]
    pub(crate) fn leaf(&self, root: u32, row: &[f32]) -> &[Vote] {
        if self.uniform_leq {
            return self.leaf_leq(root, row);
        }
        let mut node = self.nodes[root as usize];
        while node.kind != LEAF {
            let yes = node.goes_yes(row[node.feature as usize]);
            node = self.nodes[if yes { node.yes } else { node.no } as usize];
        }
        &self.votes[node.yes as usize..node.no as usize]
    }

    /// [`Forest::leaf`] when every split is `x <= threshold` (a NaN goes to the false branch,
    /// as the general walk sends it without tracking).
    #[inline]
    fn leaf_leq(&self, root: u32, row: &[f32]) -> &[Vote] {
        let mut node = self.nodes[root as usize];
        while node.kind != LEAF {
            let next = if row[node.feature as usize] <= node.threshold {
                node.yes
            } else {
                node.no
            };
            node = self.nodes[next as usize];
        }
        &self.votes[node.yes as usize..node.no as usize]
    }

    /// The votes of a row-major `[rows, width]` input, tree by tree over all rows.
    fn tally(&self, input: &[f32], rows: usize, width: usize) -> Tally {
        let columns = self.columns;
        let mut scores = vec![0f32; rows * columns];
        let mut voted = vec![false; rows * columns];
        for &root in &self.roots {
            for r in 0..rows {
                let row = &input[r * width..(r + 1) * width];
                for vote in self.leaf(root, row) {
                    let at = r * columns + vote.column as usize;
                    let (score, has) = (&mut scores[at], &mut voted[at]);
                    match self.aggregate {
                        Aggregate::Sum | Aggregate::Average => *score += vote.weight,
                        Aggregate::Min if !*has || vote.weight < *score => *score = vote.weight,
                        Aggregate::Max if !*has || vote.weight > *score => *score = vote.weight,
                        Aggregate::Min | Aggregate::Max => {}
                    }
                    *has = true;
                }
            }
        }
        if self.aggregate == Aggregate::Average {
            let trees = self.roots.len() as f32;
            scores.iter_mut().for_each(|s| *s /= trees);
        }
        Tally { scores, voted }
    }
}

/// Refuses a graph in which some walk would not end: a node reachable from itself.
fn check_acyclic(nodes: &[Node], roots: &[u32]) -> TractResult<()> {
    const NEW: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; nodes.len()];
    for &root in roots {
        if state[root as usize] != NEW {
            continue;
        }
        // (node, children pushed yet)
        let mut stack = vec![(root, false)];
        while let Some((at, expanded)) = stack.pop() {
            let node = nodes[at as usize];
            if expanded {
                state[at as usize] = DONE;
                continue;
            }
            state[at as usize] = OPEN;
            stack.push((at, true));
            if node.kind == LEAF {
                continue;
            }
            for child in [node.yes, node.no] {
                match state[child as usize] {
                    NEW => stack.push((child, false)),
                    OPEN => bail!("the trees have a cycle through node #{child}"),
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// A `TreeEnsembleRegressor`: `[rows, targets]` out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Regressor {
    pub(crate) forest: Forest,
    pub(crate) base_values: Vec<f32>,
    pub(crate) post_transform: PostTransform,
}

/// The ensemble a `TreeEnsembleClassifier` or `TreeEnsembleRegressor` node holds, as warden's
/// operator reads it (explanations walk the same trees).
pub(crate) fn parse_ensemble(node: &NodeProto) -> TractResult<Ensemble> {
    match node.op_type.as_str() {
        "TreeEnsembleClassifier" => classifier(node).map(Ensemble::Classifier),
        "TreeEnsembleRegressor" => regressor(node).map(Ensemble::Regressor),
        other => bail!("{other} is not a tree ensemble"),
    }
}

fn parse_regressor(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((
        expand_operator(Ensemble::Regressor(regressor(node)?)),
        vec![],
    ))
}

fn regressor(node: &NodeProto) -> TractResult<Regressor> {
    let targets: i64 = node.get_attr_opt("n_targets")?.unwrap_or(1);
    node.expect(targets > 0, "n_targets > 0")?;
    let aggregate = match node
        .get_attr_opt::<&str>("aggregate_function")?
        .unwrap_or("SUM")
    {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("unknown aggregate_function {other:?}"),
    };
    let forest = Forest::parse(node, "target", targets as usize, aggregate)?;
    let base_values: Vec<f32> = node.get_attr_opt_vec("base_values")?.unwrap_or_default();
    Ok(Regressor {
        forest,
        base_values,
        post_transform: PostTransform::parse(node)?,
    })
}

impl Regressor {
    fn eval(&self, input: &[f32], rows: usize, width: usize) -> Vec<f32> {
        let targets = self.forest.columns;
        let Tally { mut scores, voted } = self.forest.tally(input, rows, width);
        if targets == 1 {
            // One target: the one base value, and no post-transform but PROBIT.
            let origin = match self.base_values.as_slice() {
                [origin] => *origin,
                _ => 0.0,
            };
            for score in &mut scores {
                *score += origin;
                if self.post_transform == PostTransform::Probit {
                    *score = probit(*score);
                }
            }
            return scores;
        }
        for (row, voted) in scores.chunks_mut(targets).zip(voted.chunks(targets)) {
            for (target, (score, &has)) in row.iter_mut().zip(voted).enumerate() {
                // A target no tree voted for is written as 0, whatever its base value.
                *score = match self.base_values.get(target) {
                    _ if !has => 0.0,
                    Some(base) if self.base_values.len() == targets => *score + base,
                    _ => *score,
                };
            }
            self.post_transform.apply(row);
        }
        scores
    }
}

/// A `TreeEnsembleClassifier`: labels and `[rows, classes]` scores out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Classifier {
    pub(crate) forest: Forest,
    labels: Labels,
    /// Empty, or one per class; two classes also take one.
    pub(crate) base_values: Vec<f32>,
    pub(crate) post_transform: PostTransform,
    /// Two classes whose leaves all vote for the same one (what XGBoost and LightGBM export).
    pub(crate) binary: bool,
    pub(crate) weights_all_positive: bool,
}

fn parse_classifier(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((
        expand_operator(Ensemble::Classifier(classifier(node)?)),
        vec![],
    ))
}

fn classifier(node: &NodeProto) -> TractResult<Classifier> {
    let labels = Labels::parse(node, "classlabels_int64s")?;
    let classes = labels.len();
    node.expect(classes >= 2, "at least two class labels")?;
    let forest = Forest::parse(node, "class", classes, Aggregate::Sum)?;
    let base_values: Vec<f32> = node.get_attr_opt_vec("base_values")?.unwrap_or_default();
    node.expect(
        base_values.is_empty()
            || base_values.len() == classes
            || classes == 2 && base_values.len() == 1,
        "no base_values, or one per class",
    )?;
    let voted: std::collections::BTreeSet<i64> =
        node.get_attr_vec::<i64>("class_ids")?.into_iter().collect();
    let weights: Vec<f32> = node.get_attr_vec("class_weights")?;
    Ok(Classifier {
        binary: classes == 2 && voted.len() == 1,
        weights_all_positive: weights.iter().all(|&w| w >= 0.0),
        forest,
        labels,
        base_values,
        post_transform: PostTransform::parse(node)?,
    })
}

impl Classifier {
    /// Each row's label and its `[rows, classes]` scores.
    fn eval(&self, input: &[f32], rows: usize, width: usize) -> (Tensor, Vec<f32>) {
        let classes = self.forest.columns;
        let Tally {
            mut scores,
            mut voted,
        } = self.forest.tally(input, rows, width);
        // ONNX Runtime's label: a class's label, or for two classes with votes for both, the
        // bare 1 or 0 (which for string labels is the class index).
        let mut labels = Vec::with_capacity(rows);
        for (row, voted) in scores.chunks_mut(classes).zip(voted.chunks_mut(classes)) {
            let label = if classes > 2 {
                self.many(row, voted)
            } else {
                self.two(row, voted)
            };
            labels.push(label);
        }
        (self.label_tensor(&labels), scores)
    }

    fn many(&self, row: &mut [f32], voted: &mut [bool]) -> i64 {
        for ((score, has), base) in row.iter_mut().zip(voted.iter_mut()).zip(&self.base_values) {
            *score += base;
            *has = true;
        }
        let mut best: Option<usize> = None;
        for (class, (&score, &has)) in row.iter().zip(voted.iter()).enumerate() {
            if has && best.is_none_or(|b| score > row[b]) {
                best = Some(class);
            }
        }
        self.post_transform.apply(row);
        self.label_value(best.unwrap_or(0))
    }

    fn two(&self, row: &mut [f32], voted: &[bool]) -> i64 {
        let (mut s0, mut s1) = (row[0], row[1]);
        let (has0, mut has1) = (voted[0], voted[1]);
        // How ONNX Runtime fills the second column from one score (-1: it does not).
        let mut second = -1;
        let mut single = false;
        match *self.base_values.as_slice() {
            [b0, b1] => {
                if has1 {
                    s1 = b1 + s0;
                    s0 = -s1;
                    has1 = true;
                } else {
                    s1 += b1;
                    s0 += b0;
                }
            }
            [b0] => {
                s0 += b0;
                single = !has1;
            }
            _ => {
                second = 3;
                single = !has1;
            }
        }
        let positive = if !single && has1 {
            s1
        } else if has0 {
            s0
        } else {
            0.0
        };
        let label = if self.binary {
            let (class, fill) = match (self.weights_all_positive, positive) {
                (true, p) if p > 0.5 => (1, 0),
                (true, _) => (0, 1),
                (false, p) if p > 0.0 => (1, 2),
                (false, _) => (0, 3),
            };
            second = fill;
            self.label_value(class)
        } else {
            i64::from(positive > 0.0)
        };
        // A class no tree voted for is written as 0, whatever base value it was given.
        let v0 = if has0 { s0 } else { 0.0 };
        let v1 = if has1 { s1 } else { 0.0 };
        if !single {
            row.copy_from_slice(&[v0, v1]);
            self.post_transform.apply(row);
        } else if self.post_transform == PostTransform::Probit {
            row.copy_from_slice(&[probit(v0), 0.0]);
        } else {
            let pair = match second {
                0 | 1 => [1.0 - v0, v0],
                2 | 3 if self.post_transform == PostTransform::Logistic => {
                    [logistic(-v0), logistic(v0)]
                }
                2 | 3 => [-v0, v0],
                _ => [v0, 0.0],
            };
            row.copy_from_slice(&pair);
        }
        label
    }

    /// ONNX Runtime's label value of class `class`: the integer label, or for string labels
    /// the class index.
    fn label_value(&self, class: usize) -> i64 {
        match &self.labels {
            Labels::Ints(ints) => ints[class],
            Labels::Strings(_) => class as i64,
        }
    }

    fn label_tensor(&self, values: &[i64]) -> Tensor {
        match &self.labels {
            Labels::Ints(_) => Array1::from_vec(values.to_vec()).into_tensor(),
            Labels::Strings(strings) => Array1::from_iter(
                values
                    .iter()
                    .map(|&v| strings.get(v as usize).cloned().unwrap_or_default()),
            )
            .into_tensor(),
        }
    }
}

/// Either operator, as the graph's op holds it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ensemble {
    Classifier(Classifier),
    Regressor(Regressor),
}

impl Ensemble {
    pub(crate) fn forest(&self) -> &Forest {
        match self {
            Ensemble::Classifier(c) => &c.forest,
            Ensemble::Regressor(r) => &r.forest,
        }
    }
}

impl MlOperator for Ensemble {
    fn onnx_name(&self) -> &'static str {
        match self {
            Ensemble::Classifier(_) => "TreeEnsembleClassifier",
            Ensemble::Regressor(_) => "TreeEnsembleRegressor",
        }
    }

    fn op_name(&self) -> &'static str {
        "WardenTreeEnsemble"
    }

    fn check_width(&self, width: usize) -> TractResult<()> {
        let needed = self.forest().features;
        ensure!(
            width >= needed,
            "the input has {width} features; the trees split on feature #{}",
            needed - 1
        );
        Ok(())
    }

    fn outputs(&self) -> Vec<(DatumType, Option<usize>)> {
        let scores = (f32::datum_type(), Some(self.forest().columns));
        match self {
            Ensemble::Classifier(classifier) => {
                vec![(classifier.labels.datum_type(), None), scores]
            }
            Ensemble::Regressor(_) => vec![scores],
        }
    }

    fn eval(&self, input: &[f32], rows: usize, width: usize) -> TractResult<TVec<Tensor>> {
        let columns = self.forest().columns;
        Ok(match self {
            Ensemble::Classifier(classifier) => {
                let (labels, scores) = classifier.eval(input, rows, width);
                tvec!(labels, Tensor::from_shape(&[rows, columns], &scores)?)
            }
            Ensemble::Regressor(regressor) => {
                let scores = regressor.eval(input, rows, width);
                tvec!(Tensor::from_shape(&[rows, columns], &scores)?)
            }
        })
    }
}
