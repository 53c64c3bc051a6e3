//! The `[example]` row: the candidates (complete training rows, nearest the typical row first)
//! and the choice among them, the first the model answers validly through the same warm-up
//! `warden serve` runs at load. Apart from the statistics because it is the one part of `init`
//! that runs the model, and what it picks must pass the server's warm-up.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use warden_contract::{Feature, FeatureType, Manifest};

use crate::serving::{Backends, LoadError, ModelSource};

use super::render::render;
use super::table::Table;
use super::{InitError, InitRequest, NotServable, would_not_serve};

/// Candidate `[example]` rows tried before giving up: a model that answers none of the rows
/// nearest the medians soundly is broken (each try is one inference on the loaded model).
const MAX_EXAMPLE_TRIES: usize = 50;
/// Failed candidate rows quoted when none passes.
const MAX_EXAMPLE_FAILURES_SHOWN: usize = 3;

/// Checks the folder as `warden serve` would load it (the manifest as written and read back,
/// the contract against the graph, the warm-up, the output guards), with the model loaded once
/// and the candidate `[example]` rows run through its warm-up in order until one passes;
/// returns the manifest's text with that row, and the manifest as read back from it.
pub(super) fn check_with_example(
    request: &InitRequest,
    backends: &Backends,
    graph: &Path,
    mut manifest: Manifest,
    examples: &[Example],
) -> Result<(String, Manifest), InitError> {
    let read_back = |manifest: &Manifest| -> Result<(String, Manifest), InitError> {
        let text = render(manifest, request)?;
        let written = Manifest::from_toml(&text).map_err(|err| {
            InitError::Graph(format!("the manifest init wrote does not read back: {err}"))
        })?;
        Ok((text, written))
    };
    let source = |written: Manifest| ModelSource {
        name: request.name.clone(),
        version: 1,
        graph: graph.to_path_buf(),
        manifest: Some(written),
        default: true,
    };
    let Some(first) = examples.first() else {
        manifest.example = None;
        let (text, written) = read_back(&manifest)?;
        backends
            .load(&source(written.clone()))
            .map_err(|err| would_not_serve(request, &err))?;
        return Ok((text, written));
    };
    // Each row as the manifest holds it once written and read back, so the row the warm-up
    // passes is the row the server's warm-up will run.
    let rows = examples
        .iter()
        .map(|example| as_written(&example.row).map(Value::Object))
        .collect::<Result<Vec<Value>, InitError>>()?;
    manifest.example = Some(first.row.clone());
    let (_, written) = read_back(&manifest)?;
    let trial = backends
        .first_passing_example(&source(written), &rows)
        .map_err(|err| would_not_serve(request, &err))?;
    let failures: Vec<(u64, LoadError)> = trial
        .failures
        .into_iter()
        .map(|(rank, err)| (examples[rank].line, err))
        .collect();
    for (line, err) in &failures {
        tracing::debug!(line, error = %err, "not a usable [example] row");
    }
    if let Some(rank) = trial.passed {
        let example = &examples[rank];
        if rank > 0 {
            tracing::info!(
                line = example.line,
                skipped = rank,
                "[example] is line {} of the data: the model answered the {rank} rows \
                 nearer the medians invalidly",
                example.line
            );
        }
        manifest.example = Some(example.row.clone());
        let (text, written) = read_back(&manifest)?;
        if written.example.clone().map(Value::Object).as_ref() != Some(&rows[rank]) {
            return Err(InitError::Graph(
                "the manifest init wrote does not read back the [example] row it checked"
                    .to_owned(),
            ));
        }
        // The trials run the warm-up only; a background set is checked (read, admitted, its
        // method chosen) by the load `warden serve` makes.
        if written.explain.background.is_some() {
            backends
                .load(&source(written.clone()))
                .map_err(|err| would_not_serve(request, &err))?;
        }
        return Ok((text, written));
    }
    let mut details: Vec<String> = failures
        .iter()
        .take(MAX_EXAMPLE_FAILURES_SHOWN)
        .map(|(line, err)| format!("line {line}: {err}"))
        .collect();
    if failures.len() > MAX_EXAMPLE_FAILURES_SHOWN {
        details.push(format!(
            "and {} more rows",
            failures.len() - MAX_EXAMPLE_FAILURES_SHOWN
        ));
    }
    details.push(
        "hint: the model answers NaN, infinity or a broken probability for ordinary training \
         rows; check the model (and that the data is the one it was trained on)"
            .to_owned(),
    );
    let candidates = match examples.len() {
        1 => "the one complete row".to_owned(),
        n if n < MAX_EXAMPLE_TRIES => format!("the {n} complete rows"),
        n => format!("the {n} complete rows nearest the medians"),
    };
    Err(InitError::Check(NotServable {
        reason: format!(
            "model `{}` answers none of {candidates} validly, so there is no [example] row for \
             its warm-up; nothing was written",
            request.name
        ),
        path: request.data.clone(),
        details,
    }))
}

/// `row` as a manifest holds it once written as TOML and read back.
fn as_written(
    row: &serde_json::Map<String, Value>,
) -> Result<serde_json::Map<String, Value>, InitError> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Example {
        example: serde_json::Map<String, Value>,
    }
    let unreadable =
        |err: String| InitError::Graph(format!("the [example] row does not read back: {err}"));
    let text = toml::to_string(&Example {
        example: row.clone(),
    })
    .map_err(|err| unreadable(err.to_string()))?;
    toml::from_str::<Example>(&text)
        .map(|e| e.example)
        .map_err(|err| unreadable(err.to_string()))
}

/// A candidate `[example]` row and its line in the data.
pub(super) struct Example {
    pub(super) line: u64,
    pub(super) row: serde_json::Map<String, Value>,
}

/// The rows with no blank feature cell, nearest the typical row first, as candidate
/// `[example]` rows (at most [`MAX_EXAMPLE_TRIES`]). Near the medians is where a model is
/// surest to answer soundly, and it shows a reader an ordinary input. Distance: for a number,
/// its distance from the median as a share of the observed range, squared; for anything else,
/// 1 unless it is the most frequent value. Ties keep the file's order.
pub(super) fn example_candidates(table: &Table, features: &[Feature]) -> Vec<Example> {
    enum Centre<'a> {
        Number {
            median: f64,
            range: f64,
        },
        Mode(&'a str),
        /// No value at all in the data (a nullable feature left blank throughout).
        Unknown,
    }
    let mut measured = Vec::new();
    for feature in features {
        let Some(index) = table.index(&feature.name) else {
            continue;
        };
        let cells: Vec<&str> = table
            .rows
            .iter()
            .map(|row| row[index].as_str())
            .filter(|c| !c.is_empty())
            .collect();
        let centre = if feature.kind.is_numeric() {
            let mut values: Vec<f64> = cells.iter().filter_map(|c| c.parse().ok()).collect();
            values.sort_by(f64::total_cmp);
            match (values.first(), values.last()) {
                (Some(first), Some(last)) => Centre::Number {
                    median: values[values.len() / 2],
                    range: last - first,
                },
                _ => Centre::Unknown,
            }
        } else {
            let mut counts = BTreeMap::<&str, usize>::new();
            for cell in &cells {
                *counts.entry(cell).or_default() += 1;
            }
            // The first of the most frequent, in sorted order, so ties are deterministic.
            let top = counts.values().max().copied().unwrap_or(0);
            counts
                .iter()
                .find(|(_, n)| **n == top)
                .map_or(Centre::Unknown, |(mode, _)| Centre::Mode(mode))
        };
        measured.push((feature, index, centre));
    }
    let mut ranked: Vec<(f64, usize)> = table
        .rows
        .iter()
        .enumerate()
        .filter(|(_, row)| measured.iter().all(|(_, i, _)| !row[*i].is_empty()))
        .map(|(r, row)| {
            let distance = measured
                .iter()
                .map(|(_, i, centre)| match centre {
                    Centre::Number { median, range } => {
                        let x: f64 = row[*i].parse().unwrap_or(f64::INFINITY);
                        if *range > 0.0 {
                            ((x - median) / range).powi(2)
                        } else {
                            0.0
                        }
                    }
                    Centre::Mode(mode) => f64::from(u8::from(row[*i] != *mode)),
                    Centre::Unknown => 0.0,
                })
                .sum();
            (distance, r)
        })
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    ranked
        .into_iter()
        .take(MAX_EXAMPLE_TRIES)
        .map(|(_, r)| Example {
            line: table.lines[r],
            row: measured
                .iter()
                .map(|(feature, i, _)| {
                    (
                        feature.name.clone(),
                        example_value(feature, &table.rows[r][*i]),
                    )
                })
                .collect(),
        })
        .collect()
}

pub(super) fn example_value(feature: &Feature, cell: &str) -> Value {
    match feature.kind {
        FeatureType::Float => cell.parse::<f64>().map_or(Value::Null, Value::from),
        FeatureType::Int => cell
            .parse::<f64>()
            .map_or(Value::Null, |x| Value::from(x as i64)),
        FeatureType::Bool => Value::Bool(matches!(cell, "1" | "true" | "True" | "TRUE")),
        FeatureType::String | FeatureType::Category => Value::from(cell),
    }
}
