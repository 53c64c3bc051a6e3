//! The model zoo (tests/zoo, made by make_zoo.py) on both backends: every model kind people
//! export from scikit-learn, XGBoost and LightGBM, answered as ONNX Runtime's Python API
//! answered on the same rows, within 1e-5.

#![cfg(feature = "tract")]
#![allow(clippy::unwrap_used)]

#[path = "../../../tests/zoo/cases.rs"]
mod cases;
mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::{onnxruntime, root, tensor};
use serde_json::Value;
use warden_runtime::tract::Tract;
use warden_runtime::{Backend, LoadOptions, NamedTensor, Tensor, TensorData};

/// A zoo entry: its graph, test rows and reference answers.
struct Entry {
    name: String,
    graph: PathBuf,
    inputs: Vec<NamedTensor>,
    expected: Vec<NamedTensor>,
}

fn zoo() -> Vec<Entry> {
    let tensors = |value: &Value| -> Vec<NamedTensor> {
        value.as_array().unwrap().iter().map(tensor).collect()
    };
    cases::cases(&root().join("tests/zoo"))
        .into_iter()
        .map(|case| Entry {
            inputs: tensors(&case.json["inputs"]),
            expected: tensors(&case.json["outputs"]),
            name: case.name,
            graph: case.graph,
        })
        .collect()
}

/// Where the answers differ, if they do: floats within 1e-5 (relative above 1), labels equal.
fn difference(expected: &[NamedTensor], got: &[NamedTensor]) -> Option<String> {
    for want in expected {
        let Some(have) = got.iter().find(|t| t.name == want.name) else {
            return Some(format!("no output `{}`", want.name));
        };
        let numbers = |data: &TensorData| -> Option<Vec<f64>> {
            match data {
                TensorData::F32(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
                TensorData::F64(v) => Some(v.clone()),
                TensorData::I64(v) => Some(v.iter().map(|&x| x as f64).collect()),
                TensorData::I32(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
                _ => None,
            }
        };
        let same = match (numbers(&want.tensor.data), numbers(&have.tensor.data)) {
            (Some(a), Some(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(&b)
                        .all(|(x, y)| (x - y).abs() <= 1e-5 * x.abs().max(1.0))
            }
            _ => want.tensor.data == have.tensor.data,
        };
        if !same {
            return Some(format!(
                "`{}`: expected {:?}, got {:?}",
                want.name, want.tensor.data, have.tensor.data
            ));
        }
    }
    None
}

/// Runs one entry on one backend: `Ok(latency of one row)` or why it is refused.
fn serve(backend: &dyn Backend, entry: &Entry) -> Result<f64, String> {
    let bytes = std::fs::read(&entry.graph).unwrap();
    let mut model = backend
        .load(&bytes, &entry.graph, &LoadOptions::default())
        .map_err(|err| err.to_string())?;
    let got = model
        .run(entry.inputs.clone(), &[])
        .map_err(|err| err.to_string())?;
    if let Some(difference) = difference(&entry.expected, &got) {
        return Err(format!("answers differ: {difference}"));
    }
    let one_row: Vec<NamedTensor> = entry
        .inputs
        .iter()
        .map(|input| {
            let width: usize = input.tensor.shape[1..].iter().product();
            let data = match &input.tensor.data {
                TensorData::F32(v) => TensorData::F32(v[..width].to_vec()),
                TensorData::String(v) => TensorData::String(v[..width].to_vec()),
                other => other.clone(),
            };
            let mut shape = input.tensor.shape.clone();
            shape[0] = 1;
            NamedTensor {
                name: input.name.clone(),
                tensor: Tensor::new(shape, data).unwrap(),
            }
        })
        .collect();
    let mut times: Vec<f64> = (0..200)
        .map(|_| {
            let started = Instant::now();
            model.run(one_row.clone(), &[]).unwrap();
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

#[test]
fn every_zoo_model_answers_as_onnxruntime_python_did_on_both_backends() {
    let mut failures = Vec::new();
    for entry in zoo() {
        if let Err(err) = serve(onnxruntime(), &entry) {
            failures.push(format!("{} on onnxruntime: {err}", entry.name));
        }
        if let Err(err) = serve(&Tract, &entry) {
            failures.push(format!("{} on tract: {err}", entry.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_readme_zoo_table_shows_every_zoo_model_served_on_both_engines() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let rows: Vec<(String, String, String)> = readme
        .lines()
        .skip_while(|line| !line.starts_with("| model | ONNX Runtime serves it"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            (cells[0].into(), cells[1].into(), cells[2].into())
        })
        .collect();
    let mut listed: Vec<&str> = rows.iter().map(|(name, _, _)| name.as_str()).collect();
    listed.sort_unstable();
    let zoo = zoo();
    let mut names: Vec<&str> = zoo.iter().map(|entry| entry.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(listed, names, "the README's zoo table lists the zoo");
    for (name, onnxruntime, tract) in &rows {
        // The other test holds every model to serving on both; the table must say so.
        assert!(
            onnxruntime.starts_with("yes (") && tract.starts_with("yes ("),
            "README row {name}: {onnxruntime} | {tract}"
        );
    }
}

/// The README's zoo table: `cargo test -p warden-runtime --release --test zoo -- --ignored --nocapture`.
#[test]
#[ignore = "prints the README table with timings; run it in release mode"]
fn print_zoo_table() {
    println!(
        "| model | ONNX Runtime serves it (µs/row) | tract serves it (µs/row) |\n|---|---|---|"
    );
    for entry in zoo() {
        let cell = |result: Result<f64, String>| match result {
            Ok(micros) => format!("yes ({micros:.0})"),
            Err(err) => format!(
                "no: {}",
                err.split(':').next_back().unwrap_or_default().trim()
            ),
        };
        println!(
            "| {} | {} | {} |",
            entry.name,
            cell(serve(onnxruntime(), &entry)),
            cell(serve(&Tract, &entry))
        );
    }
}
