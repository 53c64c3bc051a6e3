//! The server crate's layers, as the README draws them: every `crate::` path in a layer's code
//! points at a layer allowed below it (so there is no import cycle), and the README's tree names
//! every folder there is.

use std::path::{Path, PathBuf};

/// Each layer and the layers its code may name (itself included).
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "startup",
        &[
            "api",
            "auth",
            "exit",
            "front_door",
            "grpc",
            "init",
            "metrics",
            "outcome",
            "protocol",
            "serving",
            "startup",
            "state",
            "transport",
        ],
    ),
    ("init", &["exit", "init", "serving"]),
    (
        "api",
        &[
            "api",
            "auth",
            "front_door",
            "metrics",
            "outcome",
            "protocol",
            "serving",
            "state",
            "transport",
        ],
    ),
    (
        "grpc",
        &[
            "auth",
            "front_door",
            "grpc",
            "metrics",
            "outcome",
            "protocol",
            "serving",
            "state",
            "transport",
        ],
    ),
    (
        "protocol",
        &["front_door", "outcome", "protocol", "serving"],
    ),
    (
        "state",
        &[
            "auth",
            "front_door",
            "metrics",
            "outcome",
            "serving",
            "state",
            "transport",
        ],
    ),
    (
        "front_door",
        &["front_door", "outcome", "serving", "transport"],
    ),
    (
        "outcome",
        &["auth", "metrics", "outcome", "serving", "transport"],
    ),
    ("transport", &["metrics", "transport"]),
    ("serving", &["exit", "metrics", "serving"]),
    ("auth", &["auth"]),
    ("metrics", &["metrics"]),
    ("exit", &["exit"]),
    ("probe", &["probe"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The `.rs` files of a layer: `src/NAME.rs` or everything under `src/NAME/`.
fn files(layer: &str) -> Vec<PathBuf> {
    let single = src().join(format!("{layer}.rs"));
    if single.exists() {
        return vec![single];
    }
    let mut found = Vec::new();
    let mut todo = vec![src().join(layer)];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                found.push(path);
            }
        }
    }
    assert!(!found.is_empty(), "layer {layer} has no files");
    found
}

/// The layers named by `crate::NAME` in the code (comments and doc comments aside).
fn named_layers(code: &str) -> Vec<String> {
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| {
            line.match_indices("crate::").map(move |(at, _)| {
                line[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn every_import_points_down_the_layers() {
    let mut wrong = Vec::new();
    for (layer, allowed) in ALLOWED {
        for file in files(layer) {
            let code = std::fs::read_to_string(&file).unwrap();
            for name in named_layers(&code) {
                if !allowed.contains(&name.as_str()) {
                    wrong.push(format!("{} names crate::{name}", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_module_of_the_crate_is_in_a_layer_and_in_the_readme() {
    let readme = std::fs::read_to_string(src().join("../../../README.md")).unwrap();
    let tree = readme
        .split("crates/server/src\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the README draws the server crate's tree");
    let layers: Vec<&str> = ALLOWED.iter().map(|(layer, _)| *layer).collect();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if ["lib", "main", "cli"].contains(&name.as_str()) {
            continue; // the top: run(), the binary and its command line
        }
        assert!(layers.contains(&name.as_str()), "src/{name} is in no layer");
        let shown = if path.is_dir() {
            format!("{name}/")
        } else {
            format!("{name}.rs")
        };
        assert!(
            tree.contains(&shown),
            "the README's tree does not show {shown}"
        );
    }
}
