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
            "predict",
            "prediction_log",
            "protocol",
            "serving",
            "startup",
            "state",
            "transport",
        ],
    ),
    ("init", &["exit", "init", "serving"]),
    (
        "predict",
        &["exit", "outcome", "predict", "prediction_log", "serving"],
    ),
    (
        "api",
        &[
            "api",
            "auth",
            "front_door",
            "metrics",
            "outcome",
            "prediction_log",
            "protocol",
            "serving",
            "stage",
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
            "stage",
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
            "prediction_log",
            "serving",
            "state",
            "transport",
        ],
    ),
    (
        "front_door",
        &["front_door", "outcome", "serving", "stage", "transport"],
    ),
    (
        "outcome",
        &["auth", "metrics", "outcome", "serving", "transport"],
    ),
    (
        "prediction_log",
        &[
            "front_door",
            "metrics",
            "outcome",
            "prediction_log",
            "serving",
        ],
    ),
    ("transport", &["metrics", "transport"]),
    ("serving", &["exit", "metrics", "serving", "stage"]),
    ("auth", &["auth"]),
    ("metrics", &["metrics"]),
    ("stage", &["stage"]),
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

/// The sibling modules a file names through `super::NAME` (comments aside).
fn named_siblings(code: &str, siblings: &[String]) -> Vec<String> {
    let mut named: Vec<String> = code
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| {
            line.match_indices("super::").map(move |(at, _)| {
                line[at + "super::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
        })
        .filter(|name| siblings.contains(name))
        .collect();
    // `use super::{a, b}` names several.
    for line in code
        .lines()
        .filter(|l| l.trim_start().starts_with("use super::{"))
    {
        let inner = line
            .split("super::{")
            .nth(1)
            .unwrap_or_default()
            .trim_end_matches("};");
        for name in inner
            .split(',')
            .map(|n| n.trim().split("::").next().unwrap_or(""))
        {
            if siblings.iter().any(|s| s == name) {
                named.push(name.to_owned());
            }
        }
    }
    named.sort();
    named.dedup();
    named
}

#[test]
fn no_two_modules_of_a_folder_name_each_other() {
    let mut folders = vec![src()];
    let mut cycles = Vec::new();
    while let Some(folder) = folders.pop() {
        let mut modules: Vec<(String, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path.clone());
                if path.join("mod.rs").exists() {
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    modules.push((name, path.join("mod.rs")));
                }
            } else if path.extension().is_some_and(|x| x == "rs") {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                if name != "mod" && name != "lib" && name != "main" {
                    modules.push((name, path));
                }
            }
        }
        if folder == src() {
            continue; // the layers test holds the top level
        }
        let names: Vec<String> = modules.iter().map(|(name, _)| name.clone()).collect();
        let edges: Vec<(String, Vec<String>)> = modules
            .iter()
            .map(|(name, path)| {
                let code = std::fs::read_to_string(path).unwrap();
                // Unit tests may reach across (a decoder's test encodes its input).
                let code = code.split("#[cfg(test)]").next().unwrap_or_default();
                let named = named_siblings(code, &names)
                    .into_iter()
                    .filter(|other| other != name)
                    .collect();
                (name.clone(), named)
            })
            .collect();
        // A cycle through any number of modules: follow every path from each module.
        for (start, _) in &edges {
            let mut todo = vec![vec![start.clone()]];
            while let Some(path) = todo.pop() {
                let last = path.last().unwrap();
                let next = &edges.iter().find(|(name, _)| name == last).unwrap().1;
                for module in next {
                    if module == start {
                        cycles.push(format!(
                            "{}: {} -> {start}",
                            folder.display(),
                            path.join(" -> ")
                        ));
                    } else if !path.contains(module) {
                        let mut longer = path.clone();
                        longer.push(module.clone());
                        todo.push(longer);
                    }
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that name each other:\n{}",
        cycles.join("\n")
    );
}
