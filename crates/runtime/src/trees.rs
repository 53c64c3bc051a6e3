//! warden's own tree-ensemble evaluator for the tract backend.
//!
//! tract parses `TreeEnsembleClassifier` (and, through `rewrite`, `TreeEnsembleRegressor`) into
//! its own op, whose evaluation reaches each leaf's votes by skipping over the whole leaf table
//! (`outer_iter().skip(start)`), so a row costs time in proportion to the forest's size rather
//! than its depth: a 200-tree forest served ~230× slower than on ONNX Runtime. After tract has
//! parsed and typed the graph, [`replace_tree_ensembles`] swaps each such op for a
//! [`ForestOp`] built from the same parsed data: a compact node array (one 20-byte node per
//! split or leaf), leaf votes addressed directly, and a batch walked tree by tree so one tree's
//! nodes stay in cache across the rows. tract's wiring around the op (base values, the post
//! transform, labels) is kept, so the two differ only in speed; the zoo test holds both to ONNX
//! Runtime's answers.
//!
//! Semantics follow tract's op exactly (votes aggregated from zero; an `AVERAGE` divides by the
//! number of votes a class received), with one difference: `BRANCH_GTE` nodes, which tract
//! decodes as leaves, are evaluated as comparisons.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx_opl::ml::tree::Aggregate;
use tract_onnx_opl::ml::tree_ensemble_classifier::TreeEnsembleClassifier;

/// A split (`kind` 1 to 6, tract's comparison codes) or a leaf (`kind` 0, votes `yes..no`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    feature: u32,
    threshold: f32,
    yes: u32,
    no: u32,
    kind: u8,
    nan_goes_yes: bool,
}

const LEAF: u8 = 0;
const EQUAL: u8 = 1;
const NOT_EQUAL: u8 = 2;
const LESS: u8 = 3;
const GREATER: u8 = 4;
const LESS_EQUAL: u8 = 5;
const GREATER_EQUAL: u8 = 6;

/// One class's share of a leaf.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Vote {
    class: u32,
    weight: f32,
}

/// A forest in the layout the evaluator walks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    votes: Vec<Vote>,
    classes: usize,
    /// Features a row must have (the highest feature used, plus one).
    features: usize,
    aggregate: Aggregate,
}

impl Forest {
    /// The forest of tract's parsed op: `trees` (u32 roots), `nodes` (u32 `[n, 5]`: feature,
    /// true id, false id, threshold bits, comparison | 0x100 when NaN goes true; leaves: start
    /// and end in `leaves`), `leaves` (u32 `[n, 2]`: class, weight bits).
    fn from_tract(op: &TreeEnsembleClassifier) -> TractResult<Forest> {
        let ensemble = &op.ensemble;
        let roots = ensemble
            .data
            .trees
            .try_as_plain_ram()?
            .as_slice::<u32>()?
            .to_vec();
        let rows = ensemble.data.nodes.try_as_plain_ram()?.as_slice::<u32>()?;
        let leaves = ensemble.data.leaves.try_as_plain_ram()?.as_slice::<u32>()?;
        ensure!(
            rows.len() % 5 == 0 && leaves.len() % 2 == 0,
            "malformed tree ensemble"
        );
        let votes: Vec<Vote> = leaves
            .chunks_exact(2)
            .map(|v| Vote {
                class: v[0],
                weight: f32::from_bits(v[1]),
            })
            .collect();
        let nodes: Vec<Node> = rows
            .chunks_exact(5)
            .map(|r| {
                let kind = (r[4] & 0xFF) as u8;
                if kind == LEAF {
                    // A leaf row is: start, end (in the votes), then padding.
                    Node {
                        feature: 0,
                        threshold: 0.0,
                        yes: r[0],
                        no: r[1],
                        kind,
                        nan_goes_yes: false,
                    }
                } else {
                    Node {
                        feature: r[0],
                        threshold: f32::from_bits(r[3]),
                        yes: r[1],
                        no: r[2],
                        kind,
                        nan_goes_yes: r[4] & 0x100 != 0,
                    }
                }
            })
            .collect();
        let classes = ensemble.n_classes;
        for node in &nodes {
            match node.kind {
                LEAF => ensure!(
                    node.yes <= node.no && node.no as usize <= votes.len(),
                    "leaf votes out of range"
                ),
                EQUAL..=GREATER_EQUAL => ensure!(
                    (node.yes as usize) < nodes.len() && (node.no as usize) < nodes.len(),
                    "branch to a node that does not exist"
                ),
                other => bail!("unknown comparison code {other}"),
            }
        }
        ensure!(
            roots.iter().all(|&r| (r as usize) < nodes.len()),
            "tree root out of range"
        );
        ensure!(
            votes.iter().all(|v| (v.class as usize) < classes),
            "vote for a class that does not exist"
        );
        Ok(Forest {
            features: ensemble.max_used_feature + 1,
            nodes,
            roots,
            votes,
            classes,
            aggregate: ensemble.aggregate_fn,
        })
    }

    /// The leaf `row` reaches in the tree rooted at `root`: its votes' range.
    #[inline]
    fn leaf(&self, root: u32, row: &[f32]) -> (usize, usize) {
        let mut index = root as usize;
        // A cycle in a malformed graph would loop forever: a walk is at most every node long.
        for _ in 0..=self.nodes.len() {
            let node = self.nodes[index];
            if node.kind == LEAF {
                return (node.yes as usize, node.no as usize);
            }
            let x = row[node.feature as usize];
            let t = node.threshold;
            let yes = if x.is_nan() {
                node.nan_goes_yes
            } else {
                match node.kind {
                    LESS_EQUAL => x <= t,
                    LESS => x < t,
                    GREATER_EQUAL => x >= t,
                    GREATER => x > t,
                    EQUAL => x == t,
                    NOT_EQUAL => x != t,
                    _ => false,
                }
            };
            index = if yes { node.yes } else { node.no } as usize;
        }
        (0, 0)
    }

    /// Scores `[rows, classes]` of a row-major `[rows, width]` input.
    fn eval(&self, input: &[f32], rows: usize, width: usize) -> Vec<f32> {
        let classes = self.classes;
        let mut scores = vec![0f32; rows * classes];
        let mut counts = match self.aggregate {
            Aggregate::Avg => vec![0u32; rows * classes],
            _ => Vec::new(),
        };
        // Tree by tree, all rows: the tree's nodes stay in cache while every row walks it.
        for &root in &self.roots {
            for r in 0..rows {
                let row = &input[r * width..(r + 1) * width];
                let (start, end) = self.leaf(root, row);
                let out = &mut scores[r * classes..(r + 1) * classes];
                for vote in &self.votes[start..end] {
                    let class = vote.class as usize;
                    let total = &mut out[class];
                    match self.aggregate {
                        Aggregate::Sum => *total += vote.weight,
                        Aggregate::Avg => {
                            *total += vote.weight;
                            counts[r * classes + class] += 1;
                        }
                        Aggregate::Max => *total = total.max(vote.weight),
                        Aggregate::Min => *total = total.min(vote.weight),
                    }
                }
            }
        }
        if self.aggregate == Aggregate::Avg {
            for (total, &count) in scores.iter_mut().zip(&counts) {
                if count > 1 {
                    *total /= count as f32;
                }
            }
        }
        scores
    }
}

/// The op tract runs in place of its own tree ensemble: the same input and output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ForestOp {
    forest: Arc<Forest>,
}

// Equality as tract compares ops (deduplication): the same forest.
impl Eq for ForestOp {}

impl Op for ForestOp {
    fn name(&self) -> StaticName {
        "WardenTreeEnsemble".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ForestOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let input = input.cast_to::<f32>()?;
        let shape = input.shape().to_vec();
        let (rows, width) = match shape.as_slice() {
            [rows, width] => (*rows, *width),
            [width] => (1, *width),
            other => bail!("a tree ensemble takes [rows, features], got {other:?}"),
        };
        ensure!(
            width >= self.forest.features,
            "the input has {width} features; the trees use feature #{}",
            self.forest.features - 1
        );
        let values = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let scores = self.forest.eval(values, rows, width);
        let tensor = Tensor::from_shape(&[rows, self.forest.classes], &scores)?;
        Ok(tvec!(tensor.into_tvalue()))
    }
}

impl TypedOp for ForestOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let rows = inputs[0].shape[0].clone();
        Ok(tvec!(f32::fact(&[rows, self.forest.classes.to_dim()])))
    }

    as_op!();
}

/// Swaps every tract tree-ensemble op of `model` for a [`ForestOp`]; returns how many.
pub(crate) fn replace_tree_ensembles(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for node in model.nodes.iter_mut() {
        let Some(op) = node.op_as::<TreeEnsembleClassifier>() else {
            continue;
        };
        let forest = Forest::from_tract(op)?;
        node.op = Box::new(ForestOp {
            forest: Arc::new(forest),
        });
        replaced += 1;
    }
    Ok(replaced)
}
