//! `warden init` through the real binary: it reproduces the bundled manifests from their
//! training data, writes folders that serve, and names every way a CSV disagrees with a graph.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::path::Path;
use std::process::Command;

use common::{examples, repo_root, warden_bin};

fn warden(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(warden_bin())
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn init(model: &str, repository: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let graph = examples().join(model).join("1/model.onnx");
    let mut args = vec![
        "init",
        graph.to_str().unwrap(),
        "--name",
        model,
        "--repository",
        repository.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    warden(&args)
}

#[test]
fn init_reproduces_the_bundled_manifests_from_their_training_data() {
    let repository = tempfile::tempdir().unwrap();
    for (model, target) in [("credit", "decision"), ("iris", "species")] {
        let data = repo_root().join(format!("examples/data/{model}.csv"));
        let (code, stderr) = init(
            model,
            repository.path(),
            &["--data", data.to_str().unwrap(), "--target", target],
        );
        assert_eq!(code, Some(0), "{stderr}");
        let written =
            std::fs::read_to_string(repository.path().join(model).join("warden.toml")).unwrap();
        let bundled = std::fs::read_to_string(examples().join(model).join("warden.toml")).unwrap();
        assert_eq!(
            written, bundled,
            "examples/models/{model}/warden.toml is not what `warden init` writes"
        );
        let copied = std::fs::read(repository.path().join(model).join("1/model.onnx")).unwrap();
        assert_eq!(
            copied,
            std::fs::read(examples().join(model).join("1/model.onnx")).unwrap()
        );
    }
}

#[test]
fn init_without_data_describes_the_graph_and_the_folder_serves() {
    let repository = tempfile::tempdir().unwrap();
    let (code, stderr) = init("iris", repository.path(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("it loads and passes its warm-up"),
        "{stderr}"
    );
    let manifest = std::fs::read_to_string(repository.path().join("iris/warden.toml")).unwrap();
    assert!(manifest.contains("name = \"float_input_3\""), "{manifest}");
    assert!(
        manifest.contains("labels = [\"setosa\", \"versicolor\", \"virginica\"]"),
        "{manifest}"
    );
    assert!(!manifest.contains("[example]"), "{manifest}");

    // A second run refuses to overwrite what the first wrote.
    let (code, stderr) = init("iris", repository.path(), &[]);
    assert_eq!(code, Some(73), "{stderr}");
    assert!(stderr.contains("already exists; pass --force"), "{stderr}");
}

#[test]
fn a_csv_that_does_not_match_the_graph_fails_naming_every_mismatch() {
    let repository = tempfile::tempdir().unwrap();
    let data = repository.path().join("renamed.csv");
    std::fs::write(
        &data,
        "age,salary,debt_ratio,nation,employment,decision\n42,52000,0.3,US,salaried,approve\n",
    )
    .unwrap();
    let (code, stderr) = init(
        "credit",
        repository.path(),
        &["--data", data.to_str().unwrap(), "--target", "decision"],
    );
    assert_eq!(code, Some(65), "{stderr}");
    for problem in [
        "graph input `income` has no column in the file",
        "graph input `country` has no column in the file",
        "column `salary` is not a graph input",
        "column `nation` is not a graph input",
    ] {
        assert!(
            stderr.contains(problem),
            "missing {problem:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("renamed.csv"), "{stderr}");
    assert!(
        !repository.path().join("credit").exists(),
        "nothing is written on failure"
    );
}

#[test]
fn cells_that_are_not_numbers_and_a_missing_target_are_named() {
    let repository = tempfile::tempdir().unwrap();
    let data = repository.path().join("iris.csv");
    std::fs::write(
        &data,
        "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n4.9,three,1.4,0.2,setosa\n",
    )
    .unwrap();
    let (code, stderr) = init(
        "iris",
        repository.path(),
        &["--data", data.to_str().unwrap(), "--target", "kind"],
    );
    assert_eq!(code, Some(65), "{stderr}");
    assert!(
        stderr.contains("graph input `float_input` has 4 columns but the file has 5"),
        "{stderr}"
    );

    let (code, stderr) = init(
        "iris",
        repository.path(),
        &["--data", data.to_str().unwrap(), "--target", "species"],
    );
    assert_eq!(code, Some(65), "{stderr}");
    assert!(
        stderr.contains("column `sepal_width` must hold numbers: line 3 has \"three\""),
        "{stderr}"
    );
}
