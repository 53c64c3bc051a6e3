//! Statistics of the training data: each feature's declaration refined by its column (type,
//! observed `min`/`max`, category `values`) and its drift baseline (deciles and bin shares, or
//! category frequencies), and the target's distribution. Measuring only: which column is which
//! feature is decided in `features`, and the baseline's format belongs to the contract crate.

use std::collections::BTreeSet;

use warden_contract::baseline::ColumnStats;
use warden_contract::{Feature, FeatureType};

use super::features::FeatureColumn;

/// Category columns with more distinct values than this are declared `string` instead.
const MAX_CATEGORY_VALUES: usize = 64;
/// Violations reported per CSV column before the rest are summarised.
const MAX_CELL_PROBLEMS: usize = 5;

pub(super) struct FeatureProfile {
    pub(super) feature: Feature,
    pub(super) baseline: Option<ColumnStats>,
}

/// The feature's declaration and baseline from its column of the data (`cells`, with each row's
/// line in the file), when there is data.
pub(super) fn profile_feature(
    column: &FeatureColumn,
    nullable: bool,
    data: Option<(Vec<&str>, &[u64])>,
    problems: &mut Vec<String>,
) -> FeatureProfile {
    let mut feature = Feature::plain(&column.name, column.element);
    feature.nullable = nullable;
    let Some((cells, lines)) = data else {
        return FeatureProfile {
            feature,
            baseline: None,
        };
    };
    // Blanks left are missing values of a nullable feature (the others' rows were dropped):
    // they describe no value, so the statistics leave them out.
    let (present, present_lines): (Vec<&str>, Vec<u64>) = cells
        .iter()
        .zip(lines)
        .filter(|(cell, _)| !cell.is_empty())
        .map(|(cell, line)| (*cell, *line))
        .unzip();
    let baseline = match feature.kind {
        FeatureType::Float | FeatureType::Int => {
            numbers(&column.name, &present, &present_lines, problems).and_then(|values| {
                let (low, high) = (*values.first()?, *values.last()?);
                (feature.min, feature.max) = bounds(feature.kind, low, high);
                ColumnStats::numeric(&values)
            })
        }
        FeatureType::String => {
            let distinct: BTreeSet<&str> = present.iter().copied().collect();
            if distinct.is_empty() || distinct.len() > MAX_CATEGORY_VALUES {
                None
            } else {
                feature.kind = FeatureType::Category;
                feature.values = Some(distinct.iter().map(|v| (*v).to_owned()).collect());
                ColumnStats::categorical(&present)
            }
        }
        FeatureType::Bool | FeatureType::Category => None,
    };
    FeatureProfile { feature, baseline }
}

/// The hard bounds of a numeric feature seen in training between `low` and `high`: the training
/// range widened by its own width on each side, so a value merely unseen in training is served
/// (the drift monitor counts it outside the training range the baseline keeps) while an
/// impossible one is refused; never below 0 for a column that was never negative (a count, an
/// amount); rounded outward to a readable step, whole numbers for an `int` feature.
pub(super) fn bounds(kind: FeatureType, low: f64, high: f64) -> (Option<f64>, Option<f64>) {
    let width = high - low;
    let margin = if width > 0.0 {
        width
    } else {
        high.abs().max(1.0)
    };
    // A step a tenth of the margin's order of magnitude: 61.8 -> 1, 242000 -> 10000, 1.5 -> 0.1.
    let mut exponent = margin.log10().floor() as i32 - 1;
    if kind == FeatureType::Int {
        exponent = exponent.max(0);
    }
    let round = |x: f64, outward: fn(f64) -> f64| {
        if exponent >= 0 {
            let step = 10f64.powi(exponent);
            outward(x / step) * step
        } else {
            let per_unit = 10f64.powi(-exponent);
            outward(x * per_unit) / per_unit
        }
    };
    let mut min = round(low - margin, f64::floor);
    if low >= 0.0 {
        min = min.max(0.0);
    }
    (Some(min), Some(round(high + margin, f64::ceil)))
}

/// The column's numbers, sorted; every cell that is not one is a problem, named by its line.
pub(super) fn numbers(
    name: &str,
    cells: &[&str],
    lines: &[u64],
    problems: &mut Vec<String>,
) -> Option<Vec<f64>> {
    let mut values = Vec::with_capacity(cells.len());
    let mut bad = Vec::new();
    for (cell, line) in cells.iter().zip(lines) {
        match cell.parse::<f64>() {
            Ok(x) if x.is_finite() => values.push(x),
            _ => bad.push(format!("line {line} has {cell:?}")),
        }
    }
    if !bad.is_empty() {
        let more = bad.len().saturating_sub(MAX_CELL_PROBLEMS);
        bad.truncate(MAX_CELL_PROBLEMS);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        problems.push(format!(
            "column `{name}` must hold numbers: {}{tail}",
            bad.join(", ")
        ));
        return None;
    }
    values.sort_by(f64::total_cmp);
    (!values.is_empty()).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_widen_the_training_range_by_its_width_to_a_readable_step() {
        // A count seen from 0 to 8: whole numbers, never below 0.
        assert_eq!(bounds(FeatureType::Int, 0.0, 8.0), (Some(0.0), Some(16.0)));
        // Ages 18.17 to 79.96: 61.79 on each side, stepped by 1, not below 0.
        assert_eq!(
            bounds(FeatureType::Float, 18.17, 79.96),
            (Some(0.0), Some(142.0))
        );
        // A ratio 0.1 to 2.5: stepped by a tenth.
        assert_eq!(bounds(FeatureType::Float, 0.1, 2.5), (Some(0.0), Some(4.9)));
        // A column that goes negative keeps going: -3 to 9 widens to -15 to 21.
        assert_eq!(
            bounds(FeatureType::Float, -3.0, 9.0),
            (Some(-15.0), Some(21.0))
        );
        // Incomes: a step of 10,000.
        assert_eq!(
            bounds(FeatureType::Float, 8000.0, 250000.0),
            (Some(0.0), Some(500000.0))
        );
        // One value seen: its own size (at least 1) on each side.
        assert_eq!(bounds(FeatureType::Int, 5.0, 5.0), (Some(0.0), Some(10.0)));
        assert_eq!(
            bounds(FeatureType::Float, -0.5, -0.5),
            (Some(-1.5), Some(0.5))
        );
    }
}
