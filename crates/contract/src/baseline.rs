//! The training baseline a manifest carries (`[baseline]`, written by `warden init --data`) and
//! the arithmetic of drift against it: which bin a served value falls in, and the population
//! stability index (PSI) of served counts against the training shares.
//!
//! A numeric feature's baseline is its training deciles (`quantiles`, eleven values from the
//! minimum to the maximum) and, from `warden init` since drift monitoring, `shares`: the exact
//! share of training rows in each bin. The bins are cut at the nine inner deciles, duplicates
//! merged: bin `j` holds the values `v` with `edge[j-1] < v <= edge[j]`, the first bin everything
//! up to the first edge and the last everything above the last, so a value outside the training
//! range still falls in an end bin (and is counted apart as out of range). Without `shares` (a
//! manifest written before them) each bin is expected to hold a tenth of the rows per decile
//! that ends in it. A category's baseline is its `frequencies`. The target (`role = "target"`) has the same
//! forms, plus `mean` and `std` for a numeric target.
//!
//! PSI = Σ (aᵢ − eᵢ) · ln(aᵢ / eᵢ) over the bins, with aᵢ the served share and eᵢ the training
//! share, each floored at [`SHARE_FLOOR`] so an empty bin counts as rare rather than infinite
//! (the usual convention). Its customary bands, from credit scoring (Siddiqi, *Credit Risk
//! Scorecards*, 2006; studied by Yurdakul, *Statistical properties of the population stability
//! index*, 2018): below 0.1 no significant shift, 0.1 to 0.25 a moderate one, above 0.25 a
//! significant one.
//!
//! The format is defined once, here: [`BaselineTable`] is `[baseline]` as a manifest holds it
//! (what `warden init` builds with [`ColumnStats::numeric`] and [`ColumnStats::categorical`]
//! and writes, and what the server reads with the manifest), and [`Baseline::from_table`]
//! checks it and cuts it into the bins drift counts in.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// The smallest share a bin is taken to have in PSI, served or expected.
pub const SHARE_FLOOR: f64 = 1e-4;

/// `[baseline]` as written: per column (each feature, then the target), its training statistics,
/// in the file's order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BaselineTable {
    pub columns: IndexMap<String, ColumnStats>,
}

/// One column's entry in `[baseline]`: `quantiles` (with `shares`, and `mean`/`std` for a
/// numeric target) or `frequencies`, and `role = "target"` for the target. Which combinations
/// make sense is checked by [`Baseline::from_table`], so every problem is listed at once.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnStats {
    /// Eleven training deciles, minimum to maximum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantiles: Option<Vec<f64>>,
    /// The training share of each bin the inner deciles cut (absent in manifests written before
    /// drift monitoring: a tenth per decile is assumed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<Vec<f64>>,
    /// A numeric target's mean and standard deviation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Each category's training share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequencies: Option<IndexMap<String, f64>>,
    /// `"target"` for the target column; features have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The `role` of the target column.
pub const TARGET_ROLE: &str = "target";

impl ColumnStats {
    /// A numeric column's deciles by nearest rank (eleven values seen in training, from the
    /// minimum to the maximum) and the exact share of the rows in each bin they cut; `sorted`
    /// is the column's values in increasing order. `None` when there are none.
    pub fn numeric(sorted: &[f64]) -> Option<ColumnStats> {
        let last = sorted.len().checked_sub(1)?;
        let quantiles: Vec<f64> = (0..=10).map(|k| sorted[(k * last + 5) / 10]).collect();
        let shares = bin_shares(&quantiles, sorted);
        Some(ColumnStats {
            quantiles: Some(quantiles),
            shares: Some(shares),
            ..ColumnStats::default()
        })
    }

    /// A numeric target: [`ColumnStats::numeric`] with its mean and standard deviation (for the
    /// mean-prediction alert), rounded to six significant decimals.
    pub fn numeric_target(sorted: &[f64]) -> Option<ColumnStats> {
        let mut stats = ColumnStats::numeric(sorted)?;
        let n = sorted.len() as f64;
        let mean = sorted.iter().sum::<f64>() / n;
        let std = (sorted.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
        let round = |x: f64| (x * 1e6).round() / 1e6;
        stats.mean = Some(round(mean));
        stats.std = Some(round(std));
        Some(stats.target())
    }

    /// A categorical column: each value's share of `cells`, rounded to six decimals, in the
    /// values' order. `None` when there are no cells.
    pub fn categorical(cells: &[&str]) -> Option<ColumnStats> {
        if cells.is_empty() {
            return None;
        }
        let mut counts = BTreeMap::<&str, usize>::new();
        for cell in cells {
            *counts.entry(cell).or_default() += 1;
        }
        let frequencies = counts
            .into_iter()
            .map(|(value, count)| {
                let share = (count as f64 / cells.len() as f64 * 1e6).round() / 1e6;
                (value.to_owned(), share)
            })
            .collect();
        Some(ColumnStats {
            frequencies: Some(frequencies),
            ..ColumnStats::default()
        })
    }

    /// The same statistics, as the target's.
    pub fn target(mut self) -> ColumnStats {
        self.role = Some(TARGET_ROLE.to_owned());
        self
    }
}

/// How values of one feature (or of the target) were distributed in training.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    Numeric(NumericBaseline),
    Categorical(CategoricalBaseline),
}

/// A numeric distribution: bins and their training shares.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericBaseline {
    /// Inner edges, increasing, without duplicates: `edges.len() + 1` bins.
    pub edges: Vec<f64>,
    /// The training share of each bin; sums to 1.
    pub expected: Vec<f64>,
    /// The training range.
    pub min: f64,
    pub max: f64,
    /// Mean and standard deviation, when the manifest gives them (numeric targets).
    pub mean: Option<f64>,
    pub std: Option<f64>,
}

impl NumericBaseline {
    /// The bin of `value` (not NaN).
    pub fn bin(&self, value: f64) -> usize {
        bin_of(&self.edges, value)
    }

    /// Whether `value` lies outside the range seen in training.
    pub fn outside(&self, value: f64) -> bool {
        value < self.min || value > self.max
    }

    /// [`NumericBaseline::bin`] of a value a graph takes as float32: compared with the edges
    /// rounded to float32, so a value sent as an edge (24.85) falls in the bin that ends there
    /// although its float32 is a little above the float64 edge.
    pub fn bin_f32(&self, value: f32) -> usize {
        self.edges.partition_point(|&edge| (edge as f32) < value)
    }
}

/// A categorical distribution: each value's training share.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoricalBaseline {
    pub values: Vec<String>,
    pub expected: Vec<f64>,
}

impl CategoricalBaseline {
    /// The bin of `value`: its index, or `values.len()` (one "other" bin) if training never saw it.
    pub fn bin(&self, value: &str) -> usize {
        self.values
            .iter()
            .position(|v| v == value)
            .unwrap_or(self.values.len())
    }
}

impl Distribution {
    /// Counters a served window needs: one per bin, and one more for unseen categories.
    pub fn bins(&self) -> usize {
        match self {
            Distribution::Numeric(n) => n.expected.len(),
            Distribution::Categorical(c) => c.values.len() + 1,
        }
    }

    /// The training share of each of [`Distribution::bins`].
    pub fn expected(&self) -> Vec<f64> {
        match self {
            Distribution::Numeric(n) => n.expected.clone(),
            Distribution::Categorical(c) => {
                let mut shares = c.expected.clone();
                shares.push(0.0);
                shares
            }
        }
    }
}

/// The baseline of a manifest: per feature, and the target's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Baseline {
    pub features: BTreeMap<String, Distribution>,
    /// The target column's name and distribution.
    pub target: Option<(String, Distribution)>,
}

impl Baseline {
    /// Checks `[baseline]` and cuts it into bins, or lists what is wrong with it.
    pub fn from_table(table: &BaselineTable) -> Result<Baseline, Vec<String>> {
        let mut baseline = Baseline::default();
        let mut problems = Vec::new();
        for (name, entry) in &table.columns {
            let target = match entry.role.as_deref() {
                None => false,
                Some(TARGET_ROLE) => true,
                Some(other) => {
                    problems.push(format!(
                        "`baseline.{name}.role` must be \"target\", not {other:?}"
                    ));
                    continue;
                }
            };
            match distribution(name, entry) {
                Ok(distribution) if target => {
                    if baseline.target.is_some() {
                        problems.push(format!(
                            "`baseline.{name}` is a second target; a manifest has one"
                        ));
                    }
                    baseline.target = Some((name.clone(), distribution));
                }
                Ok(distribution) => {
                    baseline.features.insert(name.clone(), distribution);
                }
                Err(problem) => problems.push(problem),
            }
        }
        if problems.is_empty() {
            Ok(baseline)
        } else {
            Err(problems)
        }
    }
}

fn finite(name: &str, key: &str, values: &[f64]) -> Result<(), String> {
    if values.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(format!(
            "`baseline.{name}.{key}` must be a list of finite numbers"
        ))
    }
}

fn distribution(name: &str, entry: &ColumnStats) -> Result<Distribution, String> {
    match (&entry.quantiles, &entry.frequencies) {
        (Some(quantiles), None) => numeric(name, entry, quantiles).map(Distribution::Numeric),
        (None, Some(frequencies)) => {
            let mut values = Vec::with_capacity(frequencies.len());
            let mut expected = Vec::with_capacity(frequencies.len());
            for (value, &share) in frequencies {
                if !(0.0..=1.0).contains(&share) {
                    return Err(format!(
                        "`baseline.{name}.frequencies.{value}` must be a share between 0 and 1"
                    ));
                }
                values.push(value.clone());
                expected.push(share);
            }
            let total: f64 = expected.iter().sum();
            if values.is_empty() || (total - 1.0).abs() > 1e-3 {
                return Err(format!(
                    "`baseline.{name}.frequencies` must sum to 1 (they sum to {total})"
                ));
            }
            Ok(Distribution::Categorical(CategoricalBaseline {
                values,
                expected,
            }))
        }
        (Some(_), Some(_)) => Err(format!(
            "`baseline.{name}` has both `quantiles` and `frequencies`; a column has one"
        )),
        (None, None) => Err(format!(
            "`baseline.{name}` needs `quantiles` (numbers) or `frequencies` (categories)"
        )),
    }
}

fn numeric(name: &str, entry: &ColumnStats, quantiles: &[f64]) -> Result<NumericBaseline, String> {
    finite(name, "quantiles", quantiles)?;
    if quantiles.len() != 11 || quantiles.windows(2).any(|w| w[0] > w[1]) {
        return Err(format!(
            "`baseline.{name}.quantiles` must be eleven increasing deciles, minimum to maximum"
        ));
    }
    // Inner deciles, duplicates merged. Each decile's tenth of the rows lies between two
    // quantiles, so it belongs to the bin of its upper one (a run of equal quantiles is mass
    // at that value, in the bin that ends there).
    let edges = inner_edges(quantiles);
    let mut tenths = vec![0.0; edges.len() + 1];
    for &upper in &quantiles[1..] {
        tenths[bin_of(&edges, upper)] += 0.1;
    }
    let expected = match &entry.shares {
        None => tenths,
        Some(shares) => {
            finite(name, "shares", shares)?;
            let total: f64 = shares.iter().sum();
            if shares.len() != edges.len() + 1
                || shares.iter().any(|s| *s < 0.0)
                || (total - 1.0).abs() > 1e-3
            {
                return Err(format!(
                    "`baseline.{name}.shares` must give {} shares (one per bin between the \
                     distinct inner deciles) summing to 1",
                    edges.len() + 1
                ));
            }
            shares.clone()
        }
    };
    let optional = |key: &str, value: Option<f64>| -> Result<Option<f64>, String> {
        value
            .map(|x| {
                x.is_finite()
                    .then_some(x)
                    .ok_or_else(|| format!("`baseline.{name}.{key}` must be a number"))
            })
            .transpose()
    };
    Ok(NumericBaseline {
        edges,
        expected,
        min: quantiles[0],
        max: quantiles[10],
        mean: optional("mean", entry.mean)?,
        std: optional("std", entry.std)?,
    })
}

/// The bins' edges of the eleven deciles `quantiles`: the nine inner ones, duplicates merged.
fn inner_edges(quantiles: &[f64]) -> Vec<f64> {
    let mut edges = quantiles[1..quantiles.len() - 1].to_vec();
    edges.dedup();
    edges
}

/// The bin of `value` between `edges`: how many edges lie below it.
fn bin_of(edges: &[f64], value: f64) -> usize {
    edges.partition_point(|&edge| edge < value)
}

/// The population stability index of `counts` (served, per bin) against `expected` shares;
/// `None` with no counts.
pub fn psi(expected: &[f64], counts: &[u64]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    Some(
        expected
            .iter()
            .zip(counts)
            .map(|(&e, &count)| {
                let a = (count as f64 / total as f64).max(SHARE_FLOOR);
                let e = e.max(SHARE_FLOOR);
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

/// The training shares of `sorted` values in the bins of `quantiles` (as [`NumericBaseline`]
/// cuts them), rounded to six decimals: what `warden init` writes as `shares`.
fn bin_shares(quantiles: &[f64], sorted: &[f64]) -> Vec<f64> {
    let edges = inner_edges(quantiles);
    let mut counts = vec![0u64; edges.len() + 1];
    for &value in sorted {
        counts[bin_of(&edges, value)] += 1;
    }
    counts
        .iter()
        .map(|&c| (c as f64 / sorted.len() as f64 * 1e6).round() / 1e6)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> BaselineTable {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn psi_of_a_known_shift() {
        // Expected 50/50, served 80/20: 0.3·ln(1.6) + (−0.3)·ln(0.4) = 0.41589 (by hand).
        let value = psi(&[0.5, 0.5], &[80, 20]).unwrap();
        let by_hand = 0.3 * 1.6f64.ln() - 0.3 * 0.4f64.ln();
        assert!((value - by_hand).abs() < 1e-12, "{value}");
        assert!((value - 0.415_888_3).abs() < 1e-6, "{value}");
        // The same distribution: 0.
        assert_eq!(psi(&[0.25; 4], &[5, 5, 5, 5]).unwrap(), 0.0);
        // An empty bin counts as the floor share, not as infinity.
        let empty = psi(&[0.5, 0.5], &[10, 0]).unwrap();
        let floored = (1.0 - 0.5) * (1.0f64 / 0.5).ln() + (1e-4 - 0.5) * (1e-4f64 / 0.5).ln();
        assert!((empty - floored).abs() < 1e-12, "{empty}");
        assert_eq!(psi(&[0.5, 0.5], &[0, 0]), None);
    }

    #[test]
    fn deciles_make_bins_and_duplicates_merge() {
        let baseline = Baseline::from_table(&table(
            "[x]\nquantiles = [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 9]\n",
        ))
        .unwrap();
        let Distribution::Numeric(x) = &baseline.features["x"] else {
            panic!()
        };
        assert_eq!(x.edges, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let expected: Vec<f64> = x.expected.iter().map(|e| (e * 10.0).round()).collect();
        assert_eq!(expected, vec![3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(
            (x.bin(-5.0), x.bin(0.0), x.bin(0.5), x.bin(6.0), x.bin(7.0)),
            (0, 0, 1, 6, 7)
        );
        assert!(x.outside(9.5) && x.outside(-0.1) && !x.outside(9.0));
    }

    #[test]
    fn shares_written_by_init_are_the_expected_shares() {
        let quantiles = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0];
        let sorted: Vec<f64> = (0..110).map(|i| 1.0 + f64::from(i) / 10.0).collect();
        let shares = bin_shares(&quantiles, &sorted);
        assert_eq!(shares.len(), 10);
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        let text = format!("[x]\nquantiles = {quantiles:?}\nshares = {shares:?}\n");
        let baseline = Baseline::from_table(&table(&text)).unwrap();
        let Distribution::Numeric(x) = &baseline.features["x"] else {
            panic!()
        };
        assert_eq!(x.expected, shares);
    }

    #[test]
    fn a_target_and_categories_are_read() {
        let baseline = Baseline::from_table(&table(
            "[c.frequencies]\nDE = 0.25\nFR = 0.75\n[y]\nrole = \"target\"\n[y.frequencies]\nno = 0.4\nyes = 0.6\n",
        ))
        .unwrap();
        let Distribution::Categorical(c) = &baseline.features["c"] else {
            panic!()
        };
        assert_eq!((c.bin("FR"), c.bin("XX")), (1, 2));
        let (name, target) = baseline.target.unwrap();
        assert_eq!(name, "y");
        assert_eq!(target.bins(), 3);
    }

    #[test]
    fn every_malformed_entry_is_named() {
        let problems = Baseline::from_table(&table(
            "[a]\nquantiles = [3, 2, 1]\n[b.frequencies]\nx = 0.2\n[c]\nmean = 1\n[d]\nrole = \"label\"\nquantiles = []\n",
        ))
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        for name in [
            "baseline.a.quantiles",
            "baseline.b.frequencies",
            "baseline.c",
            "baseline.d.role",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(name)),
                "{name}: {problems:?}"
            );
        }
    }

    #[test]
    fn a_baseline_built_and_written_reads_back_equal() {
        let ages: Vec<f64> = (0..200).map(|i| 18.0 + f64::from(i) * 0.31).collect();
        let countries = ["US", "DE", "US", "FR", "GB", "US", "IN", "DE"];
        let prices: Vec<f64> = (0..50).map(|i| 100.0 + f64::from(i * i)).collect();
        let mut table = BaselineTable::default();
        for (name, stats) in [
            ("age", ColumnStats::numeric(&ages)),
            ("country", ColumnStats::categorical(&countries)),
            ("price", ColumnStats::numeric_target(&prices)),
        ] {
            table.columns.insert(name.to_owned(), stats.unwrap());
        }
        let mut manifest = crate::Manifest::from_toml("").unwrap();
        manifest.baseline = Some(table.clone());

        let text = manifest.to_toml().unwrap();
        let read = crate::Manifest::from_toml(&text).unwrap();
        assert_eq!(read, manifest, "{text}");
        assert!(
            text.contains("[baseline.age]\nquantiles = [18.0, ")
                && text.contains("[baseline.country.frequencies]\nDE = 0.25\nFR = 0.125\n")
                && text.contains("[baseline.price]\nquantiles = [")
                && text.contains("mean = 908.5\nstd = ")
                && text.contains("role = \"target\"\n"),
            "{text}"
        );

        let baseline = read.baseline().unwrap().unwrap();
        let Distribution::Numeric(age) = &baseline.features["age"] else {
            panic!("{baseline:?}")
        };
        assert_eq!((age.min, age.max), (18.0, ages[199]));
        assert_eq!(
            Some(&age.expected),
            table.columns["age"].shares.as_ref(),
            "the shares written are the bins' expected shares"
        );
        let Distribution::Categorical(country) = &baseline.features["country"] else {
            panic!("{baseline:?}")
        };
        assert_eq!(country.values, ["DE", "FR", "GB", "IN", "US"]);
        assert_eq!(country.expected, [0.25, 0.125, 0.125, 0.125, 0.375]);
        let (target, Distribution::Numeric(price)) = baseline.target.unwrap() else {
            panic!("a numeric target")
        };
        assert_eq!((target.as_str(), price.mean), ("price", Some(908.5)));
    }

    #[test]
    fn a_baseline_as_bundled_manifests_write_it_reads_and_writes_back_unchanged() {
        // From examples/models/credit/warden.toml (columns in the file's order, not sorted).
        let text = "[baseline.age]\n\
            quantiles = [18.17, 24.85, 30.74, 37.55, 44.47, 49.54, 56.99, 62.27, 68.65, 74.04, 79.96]\n\
            shares = [0.101667, 0.1, 0.1, 0.1, 0.1, 0.098333, 0.1, 0.1, 0.1, 0.1]\n\
            \n\
            [baseline.country.frequencies]\n\
            DE = 0.205\n\
            FR = 0.215\n\
            GB = 0.208333\n\
            IN = 0.178333\n\
            US = 0.193333\n\
            \n\
            [baseline.decision]\n\
            role = \"target\"\n\
            \n\
            [baseline.decision.frequencies]\n\
            approve = 0.428333\n\
            reject = 0.571667\n";
        let manifest = crate::Manifest::from_toml(text).unwrap();
        let written = manifest.to_toml().unwrap();
        assert!(written.ends_with(text), "{written}");
        assert!(manifest.baseline().unwrap().unwrap().target.is_some());
    }

    #[test]
    fn an_unknown_key_in_a_baseline_entry_is_refused() {
        let err = crate::Manifest::from_toml("[baseline.x]\nquantile = [1, 2]\n").unwrap_err();
        assert!(
            matches!(&err, crate::ManifestError::Syntax(m) if m.contains("unknown field `quantile`")),
            "{err}"
        );
    }
}
