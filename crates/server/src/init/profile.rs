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
                feature.min = values.first().copied();
                feature.max = values.last().copied();
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
