//! The real `warden` binary: serving, graceful shutdown with a request in flight, and the exit
//! codes and messages of start-up failures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{WardenProcess, examples, repo_root, warden_bin};

/// One iris row for the row API.
const IRIS_ROW: &str = r#"{"instances": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]}"#;

/// A connection to `warden` whose reads give up after 30 s.
fn connect(warden: &WardenProcess) -> TcpStream {
    let stream = TcpStream::connect(warden.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let mut warden = WardenProcess::serve(&examples());
    let body = IRIS_ROW.as_bytes();
    let (first_half, second_half) = body.split_at(body.len() / 2);

    let mut stream = connect(&warden);
    write!(
        stream,
        "POST /v1/models/iris:predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    )
    .unwrap();
    // The server answers 100 Continue once the handler reads the body: the request is in flight.
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    reader.read_line(&mut line).unwrap();
    stream.write_all(first_half).unwrap();

    warden.terminate();
    // Shutdown has begun once new connections are refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(warden.address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "warden kept accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    stream.write_all(second_half).unwrap();
    let mut response = String::new();
    reader.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"label\":\"setosa\""), "{response}");
    assert_eq!(warden.wait_exit(Duration::from_secs(10)), Some(0));
}

/// Every answered request leaves one JSON access-log line with its request id, status, model
/// and timings; the logging filter can turn the access log off by its target alone.
#[test]
fn the_access_log_has_one_line_per_request_and_the_filter_can_turn_it_off() {
    let requests = |filter: &str| {
        let mut command = WardenProcess::serve_command(&examples(), &[]);
        command.env("WARDEN_LOG", filter);
        let mut warden = WardenProcess::spawn(command);
        let body = IRIS_ROW;
        let mut stream = connect(&warden);
        write!(
            stream,
            "POST /v1/models/iris:predict?x=%22%0A HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: application/json\r\nx-request-id: a\"b\\c\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        warden.terminate();
        let lines = warden.log_until_exit(Duration::from_secs(30));
        assert_eq!(warden.wait_exit(Duration::from_secs(10)), Some(0));
        let events: Vec<serde_json::Value> = lines
            .iter()
            .map(|line| serde_json::from_str(line).expect("every log line is JSON"))
            .collect();
        // The other lines at info still flow whatever the access log's own directive says.
        assert!(
            events
                .iter()
                .any(|e| e["message"] == "stopped: every in-flight request was answered"),
            "{lines:#?}"
        );
        events
            .into_iter()
            .filter(|e| e["message"] == "request")
            .collect::<Vec<_>>()
    };

    let logged = requests("info");
    assert_eq!(logged.len(), 1, "{logged:#?}");
    let line = &logged[0];
    assert_eq!(line["request_id"], "a\"b\\c");
    assert_eq!(line["path"], "/v1/models/iris:predict");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["protocol"], "http");
    assert_eq!(line["status"], 200);
    assert_eq!(line["model"], "iris");
    assert_eq!(line["version"], 1);
    assert_eq!(line["batch_rows"], 1);
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "warden_server::outcome::access_log");
    for timing in ["duration_ms", "queue_ms", "inference_ms"] {
        assert!(line[timing].as_f64().unwrap() >= 0.0, "{line}");
    }
    assert!(line.get("code").is_none(), "{line}");

    assert_eq!(
        requests("info,warden_server::outcome::access_log=off"),
        Vec::<serde_json::Value>::new()
    );
    assert_eq!(
        requests("info,warden_server::outcome::access_log=warn"),
        Vec::<serde_json::Value>::new()
    );
}

fn run_warden(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(warden_bin())
        .args(args)
        .env("WARDEN_GRPC_PORT", "off")
        .envs(env.iter().copied())
        .current_dir(repo_root())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_model_path_exits_66_naming_the_path() {
    let (code, stderr) = run_warden(&["serve", "/nonexistent/models", "--port", "0"], &[]);
    assert_eq!(code, Some(66), "{stderr}");
    assert!(
        stderr.contains("error: /nonexistent/models does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("= hint:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn usage_errors_exit_64() {
    let (code, stderr) = run_warden(&["serve", "--bogus"], &[]);
    assert_eq!(code, Some(64), "{stderr}");
    let (code, stderr) = run_warden(&["serve", "x", "--port", "70000"], &[]);
    assert_eq!(code, Some(64), "{stderr}");
}

#[test]
fn a_bad_environment_variable_exits_78_naming_it() {
    let (code, stderr) = run_warden(&["serve", "examples/models"], &[("WARDEN_PORT", "abc")]);
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("WARDEN_PORT=\"abc\""), "{stderr}");
}

#[test]
fn a_port_in_use_exits_69_naming_the_address() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let (code, stderr) = run_warden(&["serve", "examples/models", "--port", &port], &[]);
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn an_onnxruntime_library_that_is_not_there_exits_69_naming_the_variable() {
    let (code, stderr) = run_warden(
        &["serve", "examples/models", "--port", "0"],
        &[("WARDEN_ONNXRUNTIME_LIB", "/nonexistent/libonnxruntime.so")],
    );
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("WARDEN_ONNXRUNTIME_LIB"), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/libonnxruntime.so"),
        "{stderr}"
    );
}

#[test]
fn a_manifest_that_disagrees_with_its_graph_exits_65_naming_each_problem() {
    let repository = tempfile::tempdir().unwrap();
    let model = repository.path().join("iris");
    std::fs::create_dir_all(model.join("1")).unwrap();
    std::fs::copy(
        examples().join("iris/1/model.onnx"),
        model.join("1/model.onnx"),
    )
    .unwrap();
    let mut manifest = std::fs::read_to_string(examples().join("iris/warden.toml")).unwrap();
    manifest.push_str("\n[[features]]\nname = \"colour\"\ntype = \"string\"\n");
    std::fs::write(model.join("warden.toml"), manifest).unwrap();
    let (code, stderr) = run_warden(
        &["serve", repository.path().to_str().unwrap(), "--port", "0"],
        &[],
    );
    assert_eq!(code, Some(65), "{stderr}");
    assert!(stderr.contains("model `iris`"), "{stderr}");
    assert!(
        stderr.contains(
            "graph input `float_input` has 4 columns but the manifest declares 5 features"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("feature `colour` is declared string"),
        "{stderr}"
    );
}

/// `warden health ARGS` with `env`: the exit code, and stdout then stderr.
fn health(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(warden_bin())
        .arg("health")
        .args(args)
        .env_remove("WARDEN_PORT")
        .env_remove("PORT")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[test]
fn warden_health_answers_for_a_running_server_and_fails_for_none() {
    let warden = WardenProcess::serve(&examples());
    let port = warden.address.port().to_string();
    let (code, output) = health(&[], &[("PORT", port.as_str())]);
    assert_eq!((code, output.trim()), (Some(0), "ready"), "{output}");
    let (code, output) = health(&["--port", &port, "--path", "/v2/models/nope/ready"], &[]);
    assert_eq!(code, Some(69), "{output}");
    assert!(output.contains("answered 404"), "{output}");
    drop(warden);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    // A setting it cannot read is an error, as for `serve`, not a silent fallback to 8000.
    let (code, output) = health(&[], &[("WARDEN_PORT", "eighty")]);
    assert_eq!(code, Some(78), "{output}");
    assert!(output.contains("WARDEN_PORT=\"eighty\""), "{output}");
    let (code, output) = health(&["--port", &closed_port], &[]);
    assert_eq!(code, Some(69), "{output}");
    assert!(
        output.contains("error: not ready: cannot connect to 127.0.0.1:"),
        "{output}"
    );
}
