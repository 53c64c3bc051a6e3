//! Feature inference: which features the model has and how they map onto its graph inputs
//! (one per `[N, 1]` input, or the columns of one `[N, F]` input named by the CSV's header),
//! checked against the CSV's columns; which of them the graph can take a missing value for
//! (`nullable`); the rows that describe no input the model can be asked about; and what each
//! graph output means. Everything here comes from the graph, with the data only naming and
//! filtering, so it is apart from the statistics measured on the data (`profile`).

use std::collections::BTreeSet;

use warden_contract::{GraphElement, GraphInput, Output, OutputKind};
use warden_runtime::graph_facts::{InputColumns, column_facts};
use warden_runtime::{DataType, TensorSpec};

use super::InitError;
use super::table::Table;

/// One feature: its name, the graph element it feeds, and where: which graph input, which
/// column of it.
#[derive(Debug, Clone)]
pub(super) struct FeatureColumn {
    pub(super) name: String,
    pub(super) element: GraphElement,
    pub(super) input: String,
    pub(super) column: usize,
}

/// What the graph says about each feature, in feature order, from one walk of its nodes.
pub(super) struct GraphFacts {
    /// Whether the feature is nullable: a float the graph can take a missing value for. The
    /// contract sends `null` to the graph as NaN, and only an `Imputer` or a tree that tracks
    /// missing values turns a NaN into a meaningful answer; blanks in the training data say
    /// nothing about that.
    pub(super) nullable: Vec<bool>,
    /// Whether the feature reaches a `OneHotEncoder` that turns a category it was not fitted
    /// on into zeros (skl2onnx's `handle_unknown="ignore"`): the pipeline was built to take
    /// unseen values there (reported; the manifest still refuses them by default).
    pub(super) ignores_unseen: Vec<bool>,
}

/// The [`GraphFacts`] of each feature.
pub(super) fn graph_facts(
    graph: &[u8],
    inputs: &[GraphInput],
    columns: &[FeatureColumn],
) -> GraphFacts {
    let described: Vec<InputColumns<'_>> = inputs
        .iter()
        .map(|input| InputColumns {
            name: &input.name,
            rank: input.shape.len(),
            width: columns.iter().filter(|c| c.input == input.name).count(),
        })
        .collect();
    let facts = column_facts(graph, &described);
    let each = |set: &BTreeSet<(String, usize)>, float_only: bool| {
        columns
            .iter()
            .map(|c| {
                (!float_only || c.element == GraphElement::Float)
                    && set.contains(&(c.input.clone(), c.column))
            })
            .collect()
    };
    GraphFacts {
        nullable: each(&facts.takes_missing_values, true),
        ignores_unseen: each(&facts.ignores_unseen_categories, false),
    }
}

/// Drops the rows with a blank in a feature the graph cannot take a missing value for, saying
/// how many per column: such a row is not an input the model can be asked about, so it must
/// not shape the ranges, the categories (a blank is not the category ""), the example or the
/// baseline.
pub(super) fn drop_rows_with_blanks(
    table: &mut Table,
    columns: &[FeatureColumn],
    nullable: &[bool],
) -> Result<(), InitError> {
    let strict: Vec<(usize, &str)> = columns
        .iter()
        .zip(nullable)
        .filter(|(_, nullable)| !**nullable)
        .filter_map(|(c, _)| Some((table.index(&c.name)?, c.name.as_str())))
        .collect();
    let mut blank_columns = Vec::new();
    for &(index, name) in &strict {
        let blanks = table
            .rows
            .iter()
            .filter(|row| row[index].is_empty())
            .count();
        if blanks > 0 {
            tracing::warn!(
                column = name,
                blank_rows = blanks,
                "column `{name}` has {blanks} blank {}, but the graph cannot take a missing \
                 value for it (no Imputer, no tree that tracks missing values): those rows are \
                 left out of the statistics, and a request with null for `{name}` is refused",
                if blanks == 1 { "cell" } else { "cells" }
            );
            blank_columns.push(name);
        }
    }
    if blank_columns.is_empty() {
        return Ok(());
    }
    let keep: Vec<bool> = table
        .rows
        .iter()
        .map(|row| strict.iter().all(|&(index, _)| !row[index].is_empty()))
        .collect();
    let mut kept = keep.iter();
    table.rows.retain(|_| kept.next().copied().unwrap_or(false));
    let mut kept = keep.iter();
    table
        .lines
        .retain(|_| kept.next().copied().unwrap_or(false));
    if table.rows.is_empty() {
        return Err(InitError::Data {
            path: table.path.clone(),
            problems: vec![format!(
                "every row has a blank in {}, which the graph cannot take a missing value for",
                blank_columns
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )],
        });
    }
    Ok(())
}
/// The features in model order, each with its graph input and column, checked against the CSV.
pub(super) fn feature_columns(
    inputs: &[GraphInput],
    table: Option<&Table>,
    target: Option<&str>,
) -> Result<Vec<FeatureColumn>, InitError> {
    let data_columns: Option<Vec<&String>> = table.map(|t| {
        t.headers
            .iter()
            .filter(|h| Some(h.as_str()) != target)
            .collect()
    });
    let data_error = |problems: Vec<String>| InitError::Data {
        path: table.map(|t| t.path.clone()).unwrap_or_default(),
        problems,
    };
    if let [input] = inputs
        && let [_, width] = input.shape.as_slice()
        && *width != 1
    {
        // One [N, F] input: the CSV's column names name its columns.
        return match data_columns {
            Some(columns) => {
                if *width > 0 && columns.len() != *width as usize {
                    return Err(data_error(vec![format!(
                        "graph input `{}` has {width} columns but the file has {} feature columns ({}){}",
                        input.name,
                        columns.len(),
                        columns
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        if target.is_none() {
                            "; name the label column with --target"
                        } else {
                            ""
                        }
                    )]));
                }
                Ok(columns
                    .into_iter()
                    .enumerate()
                    .map(|(column, name)| FeatureColumn {
                        name: name.clone(),
                        element: input.element,
                        input: input.name.clone(),
                        column,
                    })
                    .collect())
            }
            None if *width > 0 => Ok((0..*width as usize)
                .map(|column| FeatureColumn {
                    name: format!("{}_{column}", input.name),
                    element: input.element,
                    input: input.name.clone(),
                    column,
                })
                .collect()),
            None => Err(InitError::Graph(format!(
                "graph input `{}` has a dynamic number of columns; pass --data so the CSV's columns name them",
                input.name
            ))),
        };
    }
    let mut problems = Vec::new();
    for input in inputs {
        let is_column = matches!(input.shape.as_slice(), [_] | [_, 1] | [_, -1]);
        if !is_column {
            problems.push(format!(
                "graph input `{}` has shape {:?}; warden describes one [N, F] input or [N, 1] inputs",
                input.name, input.shape
            ));
        }
    }
    if !problems.is_empty() {
        return Err(InitError::Graph(problems.join("; ")));
    }
    if let Some(columns) = &data_columns {
        for input in inputs {
            if !columns.iter().any(|c| **c == input.name) {
                problems.push(format!(
                    "graph input `{}` has no column in the file",
                    input.name
                ));
            }
        }
        for column in columns {
            if !inputs.iter().any(|input| input.name == **column) {
                problems.push(format!(
                    "column `{column}` is not a graph input (the graph's inputs are: {}){}",
                    inputs
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if target.is_none() {
                        "; if it is the label, pass --target"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(data_error(problems));
    }
    Ok(inputs
        .iter()
        .map(|i| FeatureColumn {
            name: i.name.clone(),
            element: i.element,
            input: i.name.clone(),
            column: 0,
        })
        .collect())
}

/// What each graph output means: a string (or integer) label, per-class probabilities when the
/// width matches the classifier's classes, otherwise a value or scores.
pub(super) fn outputs(specs: &[TensorSpec], classes: Option<&[String]>) -> Vec<Output> {
    let labels = classes.map(<[String]>::to_vec);
    specs
        .iter()
        .filter_map(|spec| {
            let width = match spec.shape.as_slice() {
                [_] => Some(1),
                [_, width] => Some(*width),
                _ => None,
            };
            let kind = match (spec.data_type, width, classes) {
                (DataType::String, Some(1), Some(_)) => OutputKind::Label,
                (dtype, Some(1), Some(_)) if dtype.is_integer() => OutputKind::Label,
                (dtype, Some(w), Some(classes))
                    if dtype.is_float() && w == classes.len() as i64 =>
                {
                    OutputKind::Probability
                }
                (dtype, Some(1), _) if dtype.is_float() => OutputKind::Value,
                (dtype, _, _) if dtype.is_float() => OutputKind::Score,
                _ => return None,
            };
            Some(Output {
                name: spec.name.clone(),
                kind,
                labels: matches!(kind, OutputKind::Label | OutputKind::Probability)
                    .then(|| labels.clone())
                    .flatten(),
                relax: Vec::new(),
            })
        })
        .collect()
}
