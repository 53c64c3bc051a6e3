//! Interventional TreeSHAP over warden's own tree layout: the exact Shapley values of a tree
//! ensemble's raw score against a background set, computed from the graph's trees.
//!
//! For an explained row `x` and one background row `z`, a tree's value on the hybrid row that
//! takes the features of a coalition `S` from `x` and the rest from `z` is the leaf reached by
//! following `x` where the split's feature is in `S` and `z` elsewhere. Walking the tree once
//! per `(x, z)`, both branches are taken where `x` and `z` part, remembering for each feature
//! on the path which side it took (a feature met again follows the side it already took). A
//! leaf reached with `a` features on `x`'s side and `b` on `z`'s is the tree's value exactly
//! for the coalitions holding those `a` and none of those `b`, so its value `v` adds
//! `v (a-1)! b! / (a+b)!` to each of the `a` and takes `v a! (b-1)! / (a+b)!` from each of
//! the `b` (the Shapley weights summed over those coalitions). Averaged over the background
//! rows, this is shap's `TreeExplainer(feature_perturbation="interventional")`, without its
//! sampling of coalitions and in time linear in the background set.
//!
//! The scale is the ensemble's raw score before its post-transform: probability for a forest
//! of class shares (scikit-learn's random forests), margin for boosted classifiers (XGBoost,
//! LightGBM, gradient boosting), value for regressors.

use super::shapley::weight;
use super::{Attribution, Scale};
use crate::onnx_ml::PostTransform;
use crate::trees::{Aggregate, Ensemble, Forest};

/// A tree ensemble whose raw score warden can state per class.
#[derive(Debug, Clone)]
pub(super) struct TreeModel {
    forest: Forest,
    /// Added to each column's score.
    base_values: Vec<f64>,
    /// Each vote's weight is multiplied by this (`1/trees` for an average).
    vote_scale: f64,
    /// Two classes scored by one column (`score` for the second class, `-score` for the first).
    single_binary: bool,
    scale: Scale,
}

impl TreeModel {
    /// The model of an ensemble, or `None` when its answer is not a sum of per-tree values
    /// (a `MIN`/`MAX` aggregate, a probit, a two-class quirk of ONNX Runtime's).
    pub(super) fn of(ensemble: Ensemble) -> Option<TreeModel> {
        let (forest, base, post, binary, all_positive) = match ensemble {
            Ensemble::Classifier(c) => (
                c.forest,
                c.base_values,
                c.post_transform,
                c.binary,
                c.weights_all_positive,
            ),
            Ensemble::Regressor(r) => {
                if r.forest.columns != 1 || r.post_transform != PostTransform::None {
                    return None;
                }
                (r.forest, r.base_values, PostTransform::None, false, true)
            }
        };
        let vote_scale = match forest.aggregate {
            Aggregate::Sum => 1.0,
            Aggregate::Average => 1.0 / forest.roots.len().max(1) as f64,
            Aggregate::Min | Aggregate::Max => return None,
        };
        let columns = forest.columns;
        let regressor = columns == 1;
        let single_binary = binary && forest.votes.iter().all(|v| v.column == 0);
        if binary && !single_binary {
            return None;
        }
        let scale = match post {
            _ if regressor => Scale::Value,
            PostTransform::None if all_positive => Scale::Probability,
            PostTransform::Logistic | PostTransform::Softmax => Scale::Margin,
            _ => return None,
        };
        let base_values: Vec<f64> = match base.len() {
            0 => vec![0.0; columns],
            1 if regressor || single_binary => {
                let mut values = vec![0.0; columns];
                values[0] = f64::from(base[0]);
                values
            }
            // Two classes with base values follow a rule of ONNX Runtime's of their own.
            n if n == columns && columns > 2 => base.iter().map(|&b| f64::from(b)).collect(),
            _ => return None,
        };
        Some(TreeModel {
            forest,
            base_values,
            vote_scale,
            single_binary,
            scale,
        })
    }

    pub(super) fn scale(&self) -> Scale {
        self.scale
    }

    /// The forest's column and sign that score class `class`.
    fn column(&self, class: usize) -> (usize, f64) {
        match self.single_binary {
            true if class == 0 => (0, -1.0),
            true => (0, 1.0),
            false => (class.min(self.forest.columns - 1), 1.0),
        }
    }

    /// Every column's raw score for `row`.
    fn scores(&self, row: &[f32]) -> Vec<f64> {
        let mut scores = self.base_values.clone();
        for &root in &self.forest.roots {
            for vote in self.forest.leaf(root, row) {
                scores[vote.column as usize] += self.vote_scale * f64::from(vote.weight);
            }
        }
        scores
    }

    /// Each column's mean score over `background` (`[rows, width]`): the base values.
    pub(super) fn base(&self, background: &[f32], width: usize) -> Vec<f64> {
        let rows = background.len() / width.max(1);
        let mut sums = vec![0.0; self.forest.columns];
        for z in background.chunks(width) {
            for (sum, score) in sums.iter_mut().zip(self.scores(z)) {
                *sum += score;
            }
        }
        sums.iter().map(|s| s / rows.max(1) as f64).collect()
    }

    /// The attribution of `row` for class `class` against `background` (`[rows, width]`),
    /// whose [`TreeModel::base`] is `base`.
    pub(super) fn explain(
        &self,
        row: &[f32],
        background: &[f32],
        width: usize,
        base: &[f64],
        class: usize,
    ) -> Attribution {
        let (column, sign) = self.column(class);
        let columns = self.forest.columns;
        let mut phi = vec![0.0f64; width * columns];
        let mut path: Vec<(u32, bool)> = Vec::with_capacity(64);
        let rows = background.len() / width.max(1);
        let mut members: Vec<u32> = (0..rows as u32).collect();
        let walk = Walk {
            x: row,
            background,
            width,
        };
        for &root in &self.forest.roots {
            self.walk(&walk, root, &mut members, &mut path, &mut phi);
        }
        let scale = sign * self.vote_scale / rows.max(1) as f64;
        let values = (0..width)
            .map(|f| scale * phi[f * columns + column])
            .collect();
        let (base, output) = (base[column], self.scores(row)[column]);
        // One column scoring the second of two classes: the first's margin is its negation,
        // its probability the complement.
        let other = |score: f64| match (sign < 0.0, self.scale) {
            (true, Scale::Probability) => 1.0 - score,
            (true, _) => -score,
            (false, _) => score,
        };
        Attribution {
            base: other(base),
            values,
            output: other(output),
        }
    }

    /// Adds the attributions of one tree for `x` against the background rows `members` into
    /// `phi` (`[features, columns]`, unscaled votes summed over the rows), from node `at` with
    /// the features met so far on `path`. The rows that share a walk's state (the same node,
    /// the same features on each side) are carried together, so a subtree is walked once for
    /// all of them rather than once per background row; `members` is reordered in place to
    /// split them where they part.
    fn walk(
        &self,
        walk: &Walk<'_>,
        at: u32,
        members: &mut [u32],
        path: &mut Vec<(u32, bool)>,
        phi: &mut [f64],
    ) {
        if members.is_empty() {
            return;
        }
        let node = self.forest.nodes[at as usize];
        let columns = self.forest.columns;
        if node.is_leaf() {
            let a = path.iter().filter(|(_, from_x)| *from_x).count();
            let b = path.len() - a;
            if a + b == 0 {
                return;
            }
            // (a-1)! b! / (a+b)! is the weight of a coalition of a-1 of a+b features.
            let count = members.len() as f64;
            let to_x = if a > 0 {
                count * weight(a - 1, a + b)
            } else {
                0.0
            };
            let to_z = if b > 0 {
                count * weight(b - 1, a + b)
            } else {
                0.0
            };
            for vote in self.forest.leaf_votes(&node) {
                let v = f64::from(vote.weight);
                for &(feature, from_x) in path.iter() {
                    let at = feature as usize * columns + vote.column as usize;
                    phi[at] += if from_x { v * to_x } else { -v * to_z };
                }
            }
            return;
        }
        let feature = node.feature;
        let x_yes = node.goes_yes(walk.x[feature as usize]);
        let child = |yes: bool| if yes { node.yes } else { node.no };
        match path.iter().find(|(f, _)| *f == feature) {
            // The feature already takes x's value on this walk: every row follows x.
            Some(&(_, true)) => self.walk(walk, child(x_yes), members, path, phi),
            // It already takes the background's: each row follows its own value.
            Some(&(_, false)) => {
                let split = partition(members, |r| node.goes_yes(walk.z(r, feature)));
                let (yes, no) = members.split_at_mut(split);
                self.walk(walk, node.yes, yes, path, phi);
                self.walk(walk, node.no, no, path, phi);
            }
            // New on this walk: rows that go x's way need no choice; the others walk on twice,
            // once with the feature from x and once from the background.
            None => {
                let split = partition(members, |r| node.goes_yes(walk.z(r, feature)) == x_yes);
                let (same, parted) = members.split_at_mut(split);
                self.walk(walk, child(x_yes), same, path, phi);
                if !parted.is_empty() {
                    path.push((feature, true));
                    self.walk(walk, child(x_yes), parted, path, phi);
                    path.pop();
                    path.push((feature, false));
                    self.walk(walk, child(!x_yes), parted, path, phi);
                    path.pop();
                }
            }
        }
    }
}

/// The row explained and the background it is walked against.
struct Walk<'a> {
    x: &'a [f32],
    background: &'a [f32],
    width: usize,
}

impl Walk<'_> {
    /// Background row `row`'s value of `feature`.
    #[inline]
    fn z(&self, row: u32, feature: u32) -> f32 {
        self.background[row as usize * self.width + feature as usize]
    }
}

/// Moves the rows for which `first` holds to the front; how many there are.
fn partition(rows: &mut [u32], first: impl Fn(u32) -> bool) -> usize {
    let mut split = 0;
    for i in 0..rows.len() {
        if first(rows[i]) {
            rows.swap(split, i);
            split += 1;
        }
    }
    split
}
