//! `warden init` through the real binary: it reproduces the bundled manifests from their
//! training data, writes folders that serve, and names every way a CSV disagrees with a graph.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{WardenProcess, examples, fixtures, repo_root, warden_bin};
use serde_json::{Value, json};

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
    init_graph(
        &examples().join(model).join("1/model.onnx"),
        model,
        repository,
        extra,
    )
}

fn init_graph(
    graph: &Path,
    name: &str,
    repository: &Path,
    extra: &[&str],
) -> (Option<i32>, String) {
    let mut args = vec![
        "init",
        graph.to_str().unwrap(),
        "--name",
        name,
        "--repository",
        repository.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    warden(&args)
}

fn zoo(model: &str) -> PathBuf {
    repo_root().join("tests/zoo").join(format!("{model}.onnx"))
}

/// The zoo model's 16 test rows (tests/zoo/NAME.json, every input's columns side by side) as
/// a CSV under `headers`; `blank` says which (row, column) cells to leave empty.
fn zoo_csv(model: &str, headers: &[&str], blank: &[(usize, usize)], path: &Path) {
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("tests/zoo").join(format!("{model}.json")))
            .unwrap(),
    )
    .unwrap();
    let mut rows = vec![Vec::new(); 16];
    for input in case["inputs"].as_array().unwrap() {
        let width = input["shape"][1].as_u64().unwrap() as usize;
        let data = input["data"].as_array().unwrap();
        for (r, row) in rows.iter_mut().enumerate() {
            for value in &data[r * width..(r + 1) * width] {
                row.push(match value {
                    Value::String(text) => text.clone(),
                    number => number.to_string(),
                });
            }
        }
    }
    for &(r, c) in blank {
        rows[r][c].clear();
    }
    let mut text = headers.join(",") + "\n";
    for row in rows {
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// The `[[features]]` table of `name` in a manifest.
fn feature_table<'a>(manifest: &'a str, name: &str) -> &'a str {
    let start = manifest
        .find(&format!("[[features]]\nname = \"{name}\"\n"))
        .unwrap_or_else(|| panic!("no feature `{name}` in:\n{manifest}"));
    let rest = &manifest[start + 1..];
    &manifest[start..start + 1 + rest.find("\n\n").unwrap_or(rest.len())]
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
        let background =
            std::fs::read(repository.path().join(model).join("background.jsonl")).unwrap();
        assert_eq!(
            background,
            std::fs::read(examples().join(model).join("background.jsonl")).unwrap(),
            "examples/models/{model}/background.jsonl is not what `warden init` writes"
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
    // No data, no observed range: the header must not talk about one.
    assert!(!manifest.contains("range seen in training"), "{manifest}");
    assert!(manifest.contains("--data train.csv"), "{manifest}");

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

const SIX: [&str; 6] = ["f0", "f1", "f2", "f3", "f4", "f5"];

#[tokio::test]
async fn blanks_in_the_data_do_not_make_a_feature_nullable_the_graph_cannot_take() {
    // scikit-learn's forests never track missing values: a NaN takes the false branch at every
    // split and the answer comes back confident. Blanks in f0 must not change that.
    let data = tempfile::tempdir().unwrap();
    let csv = data.path().join("forest.csv");
    zoo_csv("random_forest_regressor", &SIX, &[(3, 0), (7, 0)], &csv);
    let repository = tempfile::tempdir().unwrap();
    let (code, stderr) = init_graph(
        &zoo("random_forest_regressor"),
        "forest",
        repository.path(),
        &["--data", csv.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("column `f0` has 2 blank cells, but the graph cannot take a missing value"),
        "{stderr}"
    );
    let manifest = std::fs::read_to_string(repository.path().join("forest/warden.toml")).unwrap();
    assert!(!manifest.contains("nullable"), "{manifest}");

    // So a null for f0 is refused instead of answered.
    let warden = WardenProcess::serve(repository.path());
    let mut row = serde_json::Map::new();
    for (i, name) in SIX.iter().enumerate() {
        let value: Value = serde_json::from_str(&manifest_example(&manifest, name)).unwrap();
        row.insert((*name).to_owned(), if i == 0 { Value::Null } else { value });
    }
    let answer = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/models/forest:predict",
            warden.address
        ))
        .json(&json!({"instances": [row]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["details"][0]["loc"],
        json!(["instances", 0, "f0"]),
        "{body}"
    );
    assert!(
        body["details"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("not nullable"),
        "{body}"
    );
}

/// The value of `name` in the manifest's `[example]`, as written.
fn manifest_example(manifest: &str, name: &str) -> String {
    let example = &manifest[manifest.find("[example]\n").unwrap()..];
    let line = example
        .lines()
        .find(|l| l.starts_with(&format!("{name} = ")))
        .unwrap();
    line[name.len() + 3..].to_owned()
}

#[test]
fn trees_that_track_missing_values_make_exactly_their_split_features_nullable() {
    // LightGBM learned where a missing value goes at its splits on f1, f2, f3 and f5; f0 and f4
    // are never split on. The data has no blank at all: nullability comes from the graph.
    let data = tempfile::tempdir().unwrap();
    let csv = data.path().join("lgbm.csv");
    zoo_csv("lightgbm_regressor", &SIX, &[], &csv);
    let repository = tempfile::tempdir().unwrap();
    let (code, stderr) = init_graph(
        &zoo("lightgbm_regressor"),
        "lgbm",
        repository.path(),
        &["--data", csv.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let manifest = std::fs::read_to_string(repository.path().join("lgbm/warden.toml")).unwrap();
    for (name, nullable) in [
        ("f0", false),
        ("f1", true),
        ("f2", true),
        ("f3", true),
        ("f4", false),
        ("f5", true),
    ] {
        assert_eq!(
            feature_table(&manifest, name).contains("nullable = true"),
            nullable,
            "{name}:\n{manifest}"
        );
    }
    assert!(
        manifest.contains("trees that track missing values"),
        "{manifest}"
    );
}

#[test]
fn imputed_columns_are_nullable_and_blank_categories_are_not_a_category() {
    // a and b go through an Imputer; colour goes to a OneHotEncoder, which has no missing value.
    let data = tempfile::tempdir().unwrap();
    let csv = data.path().join("pipeline.csv");
    zoo_csv(
        "pipeline_impute_scale_onehot",
        &["a", "b", "colour"],
        &[(1, 2), (4, 2), (5, 0)],
        &csv,
    );
    let repository = tempfile::tempdir().unwrap();
    let (code, stderr) = init_graph(
        &zoo("pipeline_impute_scale_onehot"),
        "pipeline",
        repository.path(),
        &["--data", csv.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("column `colour` has 2 blank cells"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("column `a`"),
        "a blank in `a` is a missing value: {stderr}"
    );
    let manifest = std::fs::read_to_string(repository.path().join("pipeline/warden.toml")).unwrap();
    assert!(
        feature_table(&manifest, "a").contains("nullable = true"),
        "{manifest}"
    );
    assert!(
        feature_table(&manifest, "b").contains("nullable = true"),
        "{manifest}"
    );
    let colour = feature_table(&manifest, "colour");
    assert!(colour.contains("type = \"category\""), "{manifest}");
    assert!(!colour.contains("nullable"), "{manifest}");
    assert!(
        !colour.contains("\"\""),
        "a blank is not the category \"\": {manifest}"
    );
    assert!(
        !manifest.contains("\"\" = "),
        "no blank in the baseline: {manifest}"
    );
}

#[test]
fn a_graph_onnx_runtime_refuses_is_described_on_tract_as_serve_would_serve_it() {
    let repository = tempfile::tempdir().unwrap();
    let (code, stderr) = init_graph(
        &fixtures().join("../float64_tree_regressor.onnx"),
        "tree64",
        repository.path(),
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "ONNX Runtime cannot load the graph, so it is described and checked on tract"
        ),
        "{stderr}"
    );
    let manifest = std::fs::read_to_string(repository.path().join("tree64/warden.toml")).unwrap();
    assert!(manifest.contains("backend = \"auto\""), "{manifest}");
}

#[test]
fn a_float64_svm_onnx_runtime_has_no_kernel_for_is_described_on_tract() {
    let repository = tempfile::tempdir().unwrap();
    let (code, stderr) = init_graph(
        &fixtures().join("../float64_svm_regressor.onnx"),
        "svm64",
        repository.path(),
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "ONNX Runtime cannot load the graph, so it is described and checked on tract"
        ),
        "{stderr}"
    );
    assert!(repository.path().join("svm64/warden.toml").is_file());
}

#[test]
fn a_graph_no_engine_loads_is_refused_with_each_reason_and_a_hint() {
    let repository = tempfile::tempdir().unwrap();
    let (code, stderr) = init_graph(
        &fixtures().join("../unsupported.onnx"),
        "custom",
        repository.path(),
        &[],
    );
    assert_eq!(code, Some(65), "{stderr}");
    for needle in [
        "error: no inference engine can load unsupported.onnx",
        "= ONNX Runtime: ",
        "= tract: ",
        "operator `Frobnicate` (domain `ai.example`)",
        "= hint: export with standard ONNX and ONNX-ML operators",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(
        std::fs::read_dir(repository.path())
            .unwrap()
            .next()
            .is_none(),
        "nothing is written"
    );
}

/// `sqrt` answers NaN for a negative x, so a negative example row fails the warm-up.
fn sqrt_init(values: &[&str]) -> (Option<i32>, String, tempfile::TempDir, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let csv = data.path().join("x.csv");
    std::fs::write(&csv, format!("x\n{}\n", values.join("\n"))).unwrap();
    let repository = tempfile::tempdir().unwrap();
    let (code, stderr) = init_graph(
        &fixtures().join("sqrt/1/model.onnx"),
        "sqrt",
        repository.path(),
        &["--data", csv.to_str().unwrap()],
    );
    (code, stderr, repository, data)
}

#[test]
fn the_example_is_the_row_nearest_the_medians_that_the_model_answers_validly() {
    // The median (-1) and the rows nearest it make `sqrt` answer NaN; 4 is the nearest it
    // answers, and it must be the example whatever the file's order.
    let (code, stderr, repository, _data) = sqrt_init(&["-1", "9", "-2", "-3", "4"]);
    assert_eq!(code, Some(0), "{stderr}");
    let manifest = std::fs::read_to_string(repository.path().join("sqrt/warden.toml")).unwrap();
    assert!(manifest.contains("[example]\nx = 4.0\n"), "{manifest}");
    // The training range -3..9 widened by its width (12) on each side.
    assert!(manifest.contains("min = -15\nmax = 21\n"), "{manifest}");
}

#[test]
fn a_model_that_answers_no_row_validly_leaves_nothing_behind() {
    let (code, stderr, repository, _data) = sqrt_init(&["-1", "-4", "-9"]);
    assert_eq!(code, Some(65), "{stderr}");
    assert!(
        stderr.contains("model `sqrt` answers none of the 3 complete rows validly"),
        "{stderr}"
    );
    assert!(stderr.contains("line 2: warm-up inference"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(repository.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Every file and folder under `root`, relative to it, sorted (folders end with `/`).
fn tree(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                found.push(format!("{name}/"));
                pending.push(path);
            } else {
                found.push(name);
            }
        }
    }
    found.sort();
    found
}

/// Adds version 2 (a copy of iris's graph) to the model folder `folder`.
fn add_version_2(folder: &Path) {
    std::fs::create_dir_all(folder.join("2")).unwrap();
    std::fs::copy(
        examples().join("iris/1/model.onnx"),
        folder.join("2/model.onnx"),
    )
    .unwrap();
}

#[test]
fn force_replaces_the_whole_model_folder_so_no_other_version_survives() {
    let repository = tempfile::tempdir().unwrap();
    let (code, stderr) = init("iris", repository.path(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let folder = repository.path().join("iris");
    add_version_2(&folder);

    // Without --force: refused, saying what --force would remove; nothing changes.
    let (code, stderr) = init("iris", repository.path(), &[]);
    assert_eq!(code, Some(73), "{stderr}");
    assert!(
        stderr.contains(
            "warden.toml already exists; pass --force to overwrite it (--force replaces the \
             model folder as a whole, so its 2/ would go too)"
        ),
        "{stderr}"
    );
    assert!(folder.join("2/model.onnx").exists());

    // With --force the folder is what init writes, and only that: version 2 is not left to be
    // served under a manifest that was checked against version 1.
    let data = repo_root().join("examples/data/iris.csv");
    let (code, stderr) = init(
        "iris",
        repository.path(),
        &[
            "--force",
            "--data",
            data.to_str().unwrap(),
            "--target",
            "species",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("replaced the model folder as a whole, removing 2/"),
        "the removed version is named: {stderr}"
    );
    assert_eq!(
        tree(repository.path()),
        [
            "iris/",
            "iris/1/",
            "iris/1/model.onnx",
            "iris/background.jsonl",
            "iris/warden.toml"
        ],
        "no other version and nothing hidden is left behind"
    );
    let manifest = std::fs::read_to_string(folder.join("warden.toml")).unwrap();
    assert!(manifest.contains("[baseline.sepal_length]"), "{manifest}");
}

#[test]
fn a_folder_holding_other_versions_without_a_manifest_is_replaced_only_with_force() {
    let repository = tempfile::tempdir().unwrap();
    let folder = repository.path().join("iris");
    add_version_2(&folder);
    let (code, stderr) = init("iris", repository.path(), &[]);
    assert_eq!(code, Some(73), "{stderr}");
    assert!(
        stderr.contains(
            "already exists; pass --force to overwrite it (--force replaces the model folder \
             as a whole, so its 2/ would go too)"
        ),
        "{stderr}"
    );
    assert_eq!(tree(&folder), ["2/", "2/model.onnx"]);

    // A folder holding only the graph being described (copied into place by hand) is what
    // init writes anyway: no --force needed.
    let only_graph = tempfile::tempdir().unwrap();
    let graph = only_graph.path().join("iris/1/model.onnx");
    std::fs::create_dir_all(graph.parent().unwrap()).unwrap();
    std::fs::copy(examples().join("iris/1/model.onnx"), &graph).unwrap();
    let (code, stderr) = init_graph(&graph, "iris", only_graph.path(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        tree(only_graph.path()),
        ["iris/", "iris/1/", "iris/1/model.onnx", "iris/warden.toml"]
    );
}

#[test]
fn an_existing_manifest_is_refused_before_the_data_is_read() {
    let repository = tempfile::tempdir().unwrap();
    let (code, stderr) = init("iris", repository.path(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    // Data that would fail (a column the graph lacks): the refusal comes first, so a large
    // file is not profiled only to be refused.
    let data = repository.path().join("other.csv");
    std::fs::write(&data, "nope,species\n1,setosa\n").unwrap();
    let (code, stderr) = init(
        "iris",
        repository.path(),
        &["--data", data.to_str().unwrap(), "--target", "species"],
    );
    assert_eq!(code, Some(73), "{stderr}");
    assert!(
        stderr.contains("warden.toml already exists; pass --force to overwrite it"),
        "{stderr}"
    );
    assert!(!stderr.contains("nope"), "{stderr}");
}

#[test]
fn init_prints_a_summary_and_says_how_to_find_onnx_runtime_when_it_is_missing() {
    let data = repo_root().join("examples/data/credit.csv");
    let graph = examples().join("credit/1/model.onnx");
    let run = |repository: &Path, hide_onnxruntime: bool| {
        // Hidden: no variable, no python3 on PATH, and the binary away from the project's .venv.
        let binary = if hide_onnxruntime {
            // A hard link where it can: a copy's write descriptor, inherited by a process another
            // test forks at that moment, makes exec fail with "text file busy" until it closes.
            let copy = repository.join("warden");
            if std::fs::hard_link(warden_bin(), &copy).is_err() {
                std::fs::copy(warden_bin(), &copy).unwrap();
            }
            copy
        } else {
            warden_bin()
        };
        let mut command = Command::new(binary);
        command
            .args(["init", graph.to_str().unwrap(), "--name", "credit"])
            .args(["--repository", repository.to_str().unwrap()])
            .args(["--data", data.to_str().unwrap(), "--target", "decision"])
            .current_dir(repository);
        if hide_onnxruntime {
            command
                .env("PATH", "/nonexistent")
                .env_remove("WARDEN_ONNXRUNTIME_LIB")
                .env_remove("ORT_DYLIB_PATH");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let output = loop {
            match command.output() {
                Err(err)
                    if err.kind() == std::io::ErrorKind::ExecutableFileBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                result => break result.unwrap(),
            }
        };
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let repository = tempfile::tempdir().unwrap();
    let summary = run(repository.path(), false);
    let folder = repository.path().join("credit");
    assert!(
        summary.starts_with(&format!(
            "wrote {} (warden.toml, 1/model.onnx); it loads and passes its warm-up on ONNX Runtime\n",
            folder.display()
        )),
        "{summary}"
    );
    assert!(
        summary.contains("\n  age         float     served from 0 to 142\n"),
        "{summary}"
    );
    assert!(
        summary.contains("\n  country     category  5 values, unseen values refused\n"),
        "{summary}"
    );
    assert!(
        summary.contains("  - country, employment: the graph's OneHotEncoder ignores categories"),
        "{summary}"
    );
    assert!(
        summary.ends_with(&format!(
            "next: warden serve {}\n",
            repository.path().display()
        )),
        "{summary}"
    );
    assert!(!summary.contains("ONNX Runtime was not found"), "{summary}");

    let repository = tempfile::tempdir().unwrap();
    let summary = run(repository.path(), true);
    assert!(
        summary.contains("passes its warm-up on tract\n"),
        "{summary}"
    );
    assert!(
        summary.contains("ONNX Runtime was not found, so the model was checked on tract")
            && summary.contains("WARDEN_ONNXRUNTIME_LIB=")
            && summary.contains("--onnxruntime-lib"),
        "{summary}"
    );
}
