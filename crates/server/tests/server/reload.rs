//! Hot reload over the real binary: a new version swapped in under continuous load with no
//! failed request; a corrupt version and a version whose graph breaks the contract never
//! served while the old one keeps answering and readiness stays 200; SIGHUP, removal and the
//! repository API.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{WardenProcess, examples, repository_with};
use serde_json::{Value, json};

fn iris_row() -> Value {
    json!({"instances": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]})
}

/// Adds version `version` of `model` with the given graph bytes.
fn add_version(repository: &Path, model: &str, version: u64, graph: &[u8]) {
    let dir = repository.join(model).join(version.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.onnx"), graph).unwrap();
}

fn iris_graph() -> Vec<u8> {
    std::fs::read(examples().join("iris/1/model.onnx")).unwrap()
}

/// One prediction: the status and the version that answered.
async fn predict(client: &reqwest::Client, base: &str) -> (u16, Option<String>) {
    match client
        .post(format!("{base}/v1/models/iris:predict"))
        .json(&iris_row())
        .send()
        .await
    {
        Ok(response) => (
            response.status().as_u16(),
            response
                .headers()
                .get("x-model-version")
                .map(|v| v.to_str().unwrap().to_owned()),
        ),
        Err(_) => (0, None),
    }
}

async fn status_of(client: &reqwest::Client, url: String) -> u16 {
    client.get(url).send().await.unwrap().status().as_u16()
}

/// The value of a sample in `/metrics`, by its full name with labels as printed.
async fn metric(client: &reqwest::Client, base: &str, sample: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// POSTs to a repository API route: the status and the JSON answer.
async fn repository_call(client: &reqwest::Client, base: &str, path: &str) -> (u16, Value) {
    let response = client
        .post(format!("{base}/v2/repository/{path}"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Sends SIGHUP to the server (by its PID, through `kill`).
fn hangup(server: &WardenProcess) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Polls `check` until it returns true, failing after `limit`.
async fn until<F: Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_is_swapped_in_under_load_and_broken_ones_are_never_served() {
    let repository = repository_with(&examples(), "iris", |m| m);
    let server = WardenProcess::serve(repository.path());
    let base = format!("http://{}", server.address);
    let client = reqwest::Client::new();

    // Continuous load: 4 clients, each bounded to 3000 requests or until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (client, base, stop) = (client.clone(), base.clone(), Arc::clone(&stop));
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) && answers.len() < 3000 {
                answers.push(predict(&client, &base).await);
            }
            answers
        }));
    }
    until("version 1 answering", Duration::from_secs(30), || async {
        predict(&client, &base).await == (200, Some("1".into()))
    })
    .await;

    add_version(repository.path(), "iris", 2, &iris_graph());
    until("version 2 answering", Duration::from_secs(30), || async {
        predict(&client, &base).await.1.as_deref() == Some("2")
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for task in clients {
        answers.extend(task.await.unwrap());
    }
    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "failed requests during the swap: {failed:?}"
    );
    let versions: std::collections::BTreeSet<_> =
        answers.iter().filter_map(|(_, v)| v.clone()).collect();
    assert!(versions.contains("1"), "{versions:?}");
    assert_eq!(
        metric(
            &client,
            &base,
            "warden_model_loaded_version{model=\"iris\"}"
        )
        .await,
        2.0
    );

    // A corrupt version 3: counted, not served; version 2 answers and the server stays ready.
    let failures = "warden_model_load_failures_total{model=\"iris\"}";
    add_version(repository.path(), "iris", 3, b"not an onnx graph at all");
    until(
        "the corrupt version to be refused",
        Duration::from_secs(30),
        || async { metric(&client, &base, failures).await == 1.0 },
    )
    .await;
    assert_eq!(predict(&client, &base).await, (200, Some("2".into())));
    assert_eq!(
        status_of(&client, format!("{base}/v2/health/ready")).await,
        200
    );

    // Version 3 replaced by a graph that breaks iris's contract (credit's graph).
    add_version(
        repository.path(),
        "iris",
        3,
        &std::fs::read(examples().join("credit/1/model.onnx")).unwrap(),
    );
    until(
        "the mismatched version to be refused",
        Duration::from_secs(30),
        || async { metric(&client, &base, failures).await == 2.0 },
    )
    .await;
    assert_eq!(predict(&client, &base).await, (200, Some("2".into())));
    assert_eq!(
        status_of(&client, format!("{base}/v2/health/ready")).await,
        200
    );
    let (_, index) = repository_call(&client, &base, "index").await;
    assert_eq!(index[0]["name"], "iris");
    assert_eq!(index[0]["version"], "2");
    assert_eq!(index[0]["state"], "READY");
    let reason = index[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("does not match its graph")
            && !reason.contains(repository.path().to_str().unwrap()),
        "the reason names the mismatch without the repository's path: {reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rescans_and_the_repository_api_loads_and_unloads() {
    let repository = tempfile::tempdir().unwrap();
    for model in ["iris", "credit"] {
        let dir = repository.path().join(model);
        std::fs::create_dir_all(dir.join("1")).unwrap();
        for file in ["warden.toml", "background.jsonl", "1/model.onnx"] {
            std::fs::copy(examples().join(model).join(file), dir.join(file)).unwrap();
        }
    }
    let server = WardenProcess::serve_with(repository.path(), &["--watch", "off"]);
    let base = format!("http://{}", server.address);
    let client = reqwest::Client::new();
    assert_eq!(predict(&client, &base).await, (200, Some("1".into())));

    // Without watching, a new version waits for SIGHUP.
    add_version(repository.path(), "iris", 2, &iris_graph());
    let loads = "warden_model_loads_total{model=\"iris\"}";
    assert_eq!(metric(&client, &base, loads).await, 1.0);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    until(
        "version 2 after SIGHUP",
        Duration::from_secs(30),
        || async { predict(&client, &base).await.1.as_deref() == Some("2") },
    )
    .await;

    // Unload: the model answers 503 model_not_ready, and readiness ignores it.
    let (status, _) = repository_call(&client, &base, "models/iris/unload").await;
    assert_eq!(status, 200);
    let (status, _) = predict(&client, &base).await;
    assert_eq!(status, 503);
    assert_eq!(
        status_of(&client, format!("{base}/v2/health/ready")).await,
        200
    );
    let (_, index) = repository_call(&client, &base, "index").await;
    assert_eq!(
        index,
        json!([
            {"name": "credit", "version": "1", "state": "READY", "reason": ""},
            {"name": "iris", "version": "2", "state": "UNAVAILABLE", "reason": "unloaded"},
        ])
    );
    // Load: served again. A name that is not in the repository is 404, and never a path
    // (`%2E%2E` is normalised to `..` by the client, leaving no route: `not_found`).
    let (status, _) = repository_call(&client, &base, "models/iris/load").await;
    assert_eq!(status, 200);
    assert_eq!(predict(&client, &base).await, (200, Some("2".into())));
    for name in ["nope", "..%2Firis", "%2E%2E"] {
        let (status, body) = repository_call(&client, &base, &format!("models/{name}/load")).await;
        assert_eq!(status, 404, "{name}");
        let code = if name == "%2E%2E" {
            "not_found"
        } else {
            "model_not_found"
        };
        assert_eq!(body["code"], code, "{name}");
    }
    // A version that fails through the API: 400 load_failed, and version 2 still answers.
    add_version(repository.path(), "iris", 3, b"garbage");
    let (status, body) = repository_call(&client, &base, "models/iris/load").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "load_failed");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("iris/3/model.onnx")
            && !body["error"]
                .as_str()
                .unwrap()
                .contains(repository.path().to_str().unwrap()),
        "{body}"
    );
    assert_eq!(predict(&client, &base).await, (200, Some("2".into())));

    // A model added broken while serving: 503 on its own routes, readiness untouched.
    std::fs::create_dir_all(repository.path().join("broken/1")).unwrap();
    std::fs::copy(
        examples().join("iris/warden.toml"),
        repository.path().join("broken/warden.toml"),
    )
    .unwrap();
    std::fs::write(repository.path().join("broken/1/model.onnx"), b"garbage").unwrap();
    hangup(&server);
    until(
        "the broken model to be rejected",
        Duration::from_secs(30),
        || async { status_of(&client, format!("{base}/v2/models/broken/ready")).await == 503 },
    )
    .await;
    assert_eq!(
        status_of(&client, format!("{base}/v2/health/ready")).await,
        200
    );

    // A model removed from the repository stops being served after the next rescan.
    std::fs::remove_dir_all(repository.path().join("credit")).unwrap();
    hangup(&server);
    until("credit to be removed", Duration::from_secs(30), || async {
        status_of(&client, format!("{base}/v2/models/credit")).await == 404
    })
    .await;
    assert_eq!(
        status_of(&client, format!("{base}/v2/health/ready")).await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_finds_a_new_version_where_file_events_are_not_used() {
    let repository = repository_with(&examples(), "iris", |m| m);
    let server = WardenProcess::serve_with(
        repository.path(),
        &["--watch", "poll", "--poll-interval-ms", "100"],
    );
    assert!(
        server
            .startup_log
            .iter()
            .any(|line| line.contains("polling the model repository")),
        "{:?}",
        server.startup_log
    );
    let base = format!("http://{}", server.address);
    let client = reqwest::Client::new();
    assert_eq!(predict(&client, &base).await, (200, Some("1".into())));
    add_version(repository.path(), "iris", 2, &iris_graph());
    until(
        "version 2 found by polling",
        Duration::from_secs(30),
        || async { predict(&client, &base).await.1.as_deref() == Some("2") },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_new_version_keeps_the_served_one_and_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let repository = repository_with(&examples(), "iris", |m| m);
    for dir in ["", "iris", "iris/1"] {
        mode(&repository.path().join(dir), 0o755);
    }
    // As an unprivileged user (root reads everything), as the server runs in production.
    let running_as_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    let mut command = if running_as_root {
        let mut setpriv = std::process::Command::new("setpriv");
        setpriv
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(crate::common::warden_bin());
        setpriv
    } else {
        std::process::Command::new(crate::common::warden_bin())
    };
    command
        .args(["serve", repository.path().to_str().unwrap(), "--port", "0"])
        .args(["--watch", "off", "--grpc-port", "off"])
        .current_dir(crate::common::repo_root());
    let server = WardenProcess::spawn(command);
    let base = format!("http://{}", server.address);
    let client = reqwest::Client::new();
    assert_eq!(predict(&client, &base).await, (200, Some("1".into())));

    add_version(repository.path(), "iris", 2, &iris_graph());
    let version = repository.path().join("iris/2");
    mode(&version, 0o000);
    hangup(&server);
    until(
        "the unreadable version to be reported",
        Duration::from_secs(30),
        || async {
            let (_, index) = repository_call(&client, &base, "index").await;
            index.to_string().contains("Permission denied")
        },
    )
    .await;
    let (_, index) = repository_call(&client, &base, "index").await;
    let iris = &index.as_array().unwrap()[0];
    assert_eq!(iris["state"], "READY", "{index}");
    assert_eq!(iris["version"], "1", "{index}");
    // Named relative to the repository: the API does not show where the repository lives.
    assert!(
        iris["reason"]
            .as_str()
            .unwrap()
            .contains("cannot read iris/2: Permission denied"),
        "{index}"
    );
    assert_eq!(predict(&client, &base).await, (200, Some("1".into())));
    mode(&version, 0o755);
}
