//! The catalogue of start-up failures, over the real binary: for each, `warden serve` exits
//! with the expected code and a message naming the file, address or variable involved, and
//! `warden check` agrees on the code. Nothing prints a panic, a backtrace or a `Debug` dump.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{examples, fixtures, repo_root, warden_bin};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// How to run the binary for one case.
#[derive(Default)]
struct Invocation {
    args: Vec<String>,
    env: Vec<(String, String)>,
    remove_env: Vec<String>,
    cwd: Option<PathBuf>,
    binary: Option<PathBuf>,
    as_nobody: bool,
}

impl Invocation {
    fn new(args: &[&str]) -> Invocation {
        Invocation {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            ..Invocation::default()
        }
    }

    fn env(mut self, name: &str, value: &str) -> Invocation {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    fn run(&self, command: &str) -> Run {
        let binary = self.binary.clone().unwrap_or_else(warden_bin);
        let mut process = if self.as_nobody && running_as_root() {
            let mut setpriv = Command::new("setpriv");
            setpriv.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
            setpriv.arg(&binary);
            setpriv
        } else {
            Command::new(&binary)
        };
        // No gRPC listener unless a case asks: tests run in parallel and 8001 is one port.
        process
            .arg(command)
            .args(&self.args)
            .env("WARDEN_GRPC_PORT", "off")
            .current_dir(self.cwd.clone().unwrap_or_else(repo_root));
        for (name, value) in &self.env {
            process.env(name, value);
        }
        for name in &self.remove_env {
            process.env_remove(name);
        }
        // A case that unexpectedly starts serving must fail the test, not hang it.
        let mut child = process
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                let _ = child.wait();
                panic!("`warden {command}` did not exit within 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// Runs `serve` and `check` for a case and asserts the code, the named things, and agreement.
fn expect(case: &str, invocation: &Invocation, code: i32, needles: &[&str]) {
    let serve = invocation.run("serve");
    assert_eq!(serve.code, Some(code), "{case}: serve\n{}", serve.stderr);
    for needle in needles {
        assert!(
            serve.stderr.contains(needle),
            "{case}: serve's message lacks {needle:?}:\n{}",
            serve.stderr
        );
    }
    for forbidden in ["panicked", "RUST_BACKTRACE", "\nError: ", "stack backtrace"] {
        assert!(
            !serve.stderr.contains(forbidden),
            "{case}: {forbidden:?} in\n{}",
            serve.stderr
        );
    }
    assert!(
        serve.stderr.contains("error: "),
        "{case}: no diagnostic:\n{}",
        serve.stderr
    );
    let check = invocation.run("check");
    assert_eq!(
        check.code,
        Some(code),
        "{case}: check disagrees with serve\n{}\n{}",
        check.stdout,
        check.stderr
    );
    if code != 64 {
        assert!(
            check.stdout.contains("FAIL"),
            "{case}: check printed no failure:\n{}",
            check.stdout
        );
        assert!(
            check
                .stdout
                .contains(&format!("would exit with code {code}")),
            "{case}: {}",
            check.stdout
        );
    }
}

/// A repository in a fresh folder holding `model` with the given graph bytes and manifest.
fn repository(model: &str, graph: &[u8], manifest: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join(model);
    std::fs::create_dir_all(dir.join("1")).unwrap();
    std::fs::write(dir.join("1/model.onnx"), graph).unwrap();
    std::fs::write(dir.join("warden.toml"), manifest).unwrap();
    root
}

fn iris_graph() -> Vec<u8> {
    std::fs::read(examples().join("iris/1/model.onnx")).unwrap()
}

/// The example iris manifest without its `[explain]` table (whose background set these
/// repositories do not hold).
fn iris_manifest() -> String {
    let manifest = std::fs::read_to_string(examples().join("iris/warden.toml")).unwrap();
    match manifest.split_once("\n[explain]") {
        Some((before, _)) => format!("{before}\n"),
        None => manifest,
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

fn serve_args(path: &Path) -> Invocation {
    Invocation::new(&[&path_str(path), "--port", "0"])
}

#[test]
fn missing_and_empty_repositories_exit_66() {
    expect(
        "missing path",
        &Invocation::new(&["/nonexistent/models", "--port", "0"]),
        66,
        &["/nonexistent/models does not exist", "hint"],
    );
    let empty = tempfile::tempdir().unwrap();
    let path = path_str(empty.path());
    expect(
        "empty repository",
        &serve_args(empty.path()),
        66,
        &[
            &format!("{path} holds no model"),
            "NAME/warden.toml and NAME/1/model.onnx",
        ],
    );
}

#[test]
fn a_model_file_the_user_cannot_read_exits_77() {
    let root = repository("iris", &iris_graph(), &iris_manifest());
    let graph = root.path().join("iris/1/model.onnx");
    for dir in [
        root.path().to_path_buf(),
        root.path().join("iris"),
        root.path().join("iris/1"),
    ] {
        set_mode(&dir, 0o755);
    }
    set_mode(&root.path().join("iris/warden.toml"), 0o644);
    set_mode(&graph, 0o000);
    let mut invocation = serve_args(root.path());
    invocation.as_nobody = true;
    expect(
        "unreadable model",
        &invocation,
        77,
        &[&path_str(&graph), "Permission denied", "chmod a+r"],
    );
}

/// A repository readable by everyone: iris at versions 1 and 2, and credit.
fn world_readable_repository() -> tempfile::TempDir {
    let root = repository("iris", &iris_graph(), &iris_manifest());
    let iris = root.path().join("iris");
    std::fs::create_dir(iris.join("2")).unwrap();
    std::fs::write(iris.join("2/model.onnx"), iris_graph()).unwrap();
    let credit = root.path().join("credit");
    std::fs::create_dir_all(credit.join("1")).unwrap();
    for file in ["warden.toml", "1/model.onnx"] {
        std::fs::copy(examples().join("credit").join(file), credit.join(file)).unwrap();
    }
    for dir in [
        root.path(),
        &iris,
        &iris.join("1"),
        &iris.join("2"),
        &credit,
        &credit.join("1"),
    ] {
        set_mode(dir, 0o755);
    }
    root
}

#[test]
fn an_unreadable_model_or_version_folder_exits_77_naming_it() {
    // A model folder the server's user cannot read: today's silent skip served the others and
    // `check` said every check passed.
    let root = world_readable_repository();
    let credit = root.path().join("credit");
    set_mode(&credit, 0o000);
    let mut invocation = serve_args(root.path());
    invocation.as_nobody = true;
    expect(
        "unreadable model folder",
        &invocation,
        77,
        &[&path_str(&credit), "Permission denied"],
    );
    set_mode(&credit, 0o755);

    // The highest version unreadable: version 1 must not be served in its place.
    let version = root.path().join("iris/2");
    set_mode(&version, 0o000);
    expect(
        "unreadable version folder",
        &invocation,
        77,
        &[&path_str(&version), "Permission denied"],
    );
    set_mode(&version, 0o755);

    // The only model and its only version unreadable: not "holds no model" (66).
    std::fs::remove_dir_all(&credit).unwrap();
    std::fs::remove_dir_all(&version).unwrap();
    let iris = root.path().join("iris");
    set_mode(&iris, 0o000);
    expect(
        "unreadable lone model",
        &invocation,
        77,
        &[&path_str(&iris), "Permission denied"],
    );
    set_mode(&iris, 0o755);
    let only = root.path().join("iris/1");
    set_mode(&only, 0o000);
    expect(
        "unreadable lone version",
        &invocation,
        77,
        &[&path_str(&only), "Permission denied"],
    );
    set_mode(&only, 0o755);

    // Folders that are never models are passed over, readable or not.
    let lost = root.path().join("lost+found");
    std::fs::create_dir(&lost).unwrap();
    set_mode(&lost, 0o000);
    let check = invocation.run("check");
    assert_eq!(check.code, Some(0), "{}\n{}", check.stdout, check.stderr);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn files_that_are_not_onnx_exit_65_saying_what_they_are() {
    let iris = iris_graph();
    let noise: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let pickle =
        b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x15sklearn.linear_model".to_vec();
    let cases: [(&str, Vec<u8>, &[&str]); 4] = [
        (
            "truncated",
            iris[..iris.len() / 2].to_vec(),
            &[
                "is not a readable ONNX model (truncated, or not ONNX at all)",
                "copy it again",
            ],
        ),
        (
            "random bytes",
            noise,
            &["is not a readable ONNX model (truncated"],
        ),
        (
            "empty file",
            Vec::new(),
            &["is an empty file, not an ONNX model"],
        ),
        (
            "pickle",
            pickle,
            &[
                "a Python pickle",
                "warden never unpickles",
                "from skl2onnx import to_onnx",
            ],
        ),
    ];
    for (case, bytes, needles) in cases {
        let root = repository("iris", &bytes, &iris_manifest());
        let graph = path_str(&root.path().join("iris/1/model.onnx"));
        let mut needles = needles.to_vec();
        needles.push(&graph);
        expect(case, &serve_args(root.path()), 65, &needles);
    }
}

#[test]
fn an_operator_the_engine_cannot_run_is_named_with_its_node() {
    expect(
        "unsupported operator",
        &serve_args(&fixtures().join("../unsupported.onnx")),
        65,
        &[
            "operator `Frobnicate` (domain `ai.example`) of node `frobnicate_1`",
            "hint",
        ],
    );
}

#[test]
fn a_background_set_that_changed_or_breaks_the_contract_exits_65_naming_it() {
    let manifest = format!(
        "{}\n[explain]\nbackground = \"background.jsonl\"\nbackground_sha256 = \"{}\"\n",
        iris_manifest().trim_end(),
        "0".repeat(64)
    );
    let repo = repository("iris", &iris_graph(), &manifest);
    let background = repo.path().join("iris/background.jsonl");
    std::fs::write(&background, "{\"sepal_length\": 5.1, \"sepal_width\": 3.5, \"petal_length\": 1.4, \"petal_width\": 0.2}\n").unwrap();
    expect(
        "background changed",
        &serve_args(repo.path()),
        65,
        &[
            "the background set of model `iris`",
            "background.jsonl",
            "but the manifest pins 0000000000000000000000000000000000000000000000000000000000000000: the file changed",
            "warden init",
        ],
    );
    let unpinned = manifest.replace(&format!("background_sha256 = \"{}\"\n", "0".repeat(64)), "");
    let repo = repository("iris", &iris_graph(), &unpinned);
    std::fs::write(
        repo.path().join("iris/background.jsonl"),
        "{\"sepal_length\": \"long\", \"sepal_width\": 3.5, \"petal_length\": 1.4, \"petal_width\": 0.2}\n",
    )
    .unwrap();
    expect(
        "background breaks the contract",
        &serve_args(repo.path()),
        65,
        &[
            "the background set of model `iris`",
            "a row breaks the contract",
            "sepal_length",
        ],
    );
}

#[test]
fn manifest_problems_exit_65_naming_each_one() {
    let manifest = iris_manifest();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "TOML syntax error",
            manifest.replace("name = \"sepal_width\"", "name = \"sepal_width"),
            vec!["TOML parse error at line", "warden.toml"],
        ),
        (
            "unknown key",
            manifest.replace(
                "backend = \"auto\"",
                "backend = \"auto\"\nbakend = \"tract\"",
            ),
            vec!["unknown field `bakend`", "`backend`", "line"],
        ),
        (
            "feature missing from the graph",
            format!("{manifest}\n[[features]]\nname = \"colour\"\ntype = \"float\"\n"),
            vec!["graph input `float_input` has 4 columns but the manifest declares 5 features"],
        ),
        (
            "dtype disagrees with the graph",
            manifest
                .replacen(
                    "type = \"float\"",
                    "type = \"category\"\nvalues = [\"a\"]",
                    1,
                )
                .replace("min = 0.6\nmax = 11.5\n", ""),
            vec![
                "feature `sepal_length` is declared category but graph input `float_input` holds floating-point values",
            ],
        ),
        (
            "output that is not in the graph",
            manifest.replace("name = \"probabilities\"", "name = \"probs\""),
            vec![
                "output `probs` is not a graph output",
                "label, probabilities",
            ],
        ),
    ];
    for (case, text, needles) in cases {
        let root = repository("iris", &iris_graph(), &text);
        let mut needles = needles;
        needles.push("iris");
        expect(case, &serve_args(root.path()), 65, &needles);
    }
}

#[test]
fn a_failing_warm_up_exits_65() {
    let manifest = iris_manifest();
    let at = manifest.find("[example]\nsepal_length = ").unwrap() + "[example]\n".len();
    let end = at + manifest[at..].find('\n').unwrap();
    let bad_example = format!(
        "{}sepal_length = \"long\"{}",
        &manifest[..at],
        &manifest[end..]
    );
    let root = repository("iris", &iris_graph(), &bad_example);
    expect(
        "example breaks the contract",
        &serve_args(root.path()),
        65,
        &[
            "warm-up inference of model `iris` failed",
            "sepal_length",
            "[example]",
        ],
    );
    let sqrt = std::fs::read(fixtures().join("sqrt/1/model.onnx")).unwrap();
    let manifest = std::fs::read_to_string(fixtures().join("sqrt/warden.toml"))
        .unwrap()
        .replace("x = 4.0", "x = -4.0");
    let root = repository("sqrt", &sqrt, &manifest);
    expect(
        "warm-up output fails the guards",
        &serve_args(root.path()),
        65,
        &["warm-up inference of model `sqrt` failed", "non-finite"],
    );
}

/// A copy of the binary far from the project's .venv, with no python3 on PATH and no library
/// variables: as in a bare container.
fn bare_container(args: &[&str]) -> (tempfile::TempDir, Invocation) {
    let bare = tempfile::tempdir().unwrap();
    let binary = bare.path().join("warden");
    if std::fs::hard_link(warden_bin(), &binary).is_err() {
        std::fs::copy(warden_bin(), &binary).unwrap();
    }
    let invocation = Invocation {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: vec![("PATH".into(), "/nonexistent".into())],
        remove_env: vec!["WARDEN_ONNXRUNTIME_LIB".into(), "ORT_DYLIB_PATH".into()],
        cwd: Some(bare.path().to_path_buf()),
        binary: Some(binary),
        as_nobody: false,
    };
    (bare, invocation)
}

#[tokio::test]
async fn with_no_onnx_runtime_anywhere_auto_serves_on_tract() {
    let models = path_str(&examples());
    let (_bare, invocation) = bare_container(&[&models, "--port", "0"]);
    let check = invocation.run("check");
    assert_eq!(check.code, Some(0), "{}", check.stdout);
    assert!(
        check.stdout.contains("skip  ONNX Runtime"),
        "{}",
        check.stdout
    );
    assert!(
        check.stdout.contains("model iris version 1: tract_onnx"),
        "{}",
        check.stdout
    );

    let mut command = Command::new(invocation.binary.as_ref().unwrap());
    command
        .arg("serve")
        .args(&invocation.args)
        .env("WARDEN_GRPC_PORT", "off")
        .current_dir(invocation.cwd.as_ref().unwrap());
    command
        .env("PATH", "/nonexistent")
        .env_remove("WARDEN_ONNXRUNTIME_LIB")
        .env_remove("ORT_DYLIB_PATH");
    let mut warden = crate::common::WardenProcess::spawn(command);
    let base = format!("http://{}", warden.address);
    let metadata: serde_json::Value = reqwest::get(format!("{base}/v2/models/credit"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["platform"], "tract_onnx");
    let row = serde_json::json!({"instances": [{"age": 42.0, "income": 52000.0, "debt_ratio": 0.3, "country": "US", "employment": "salaried"}]});
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/v1/models/credit:predict"))
        .json(&row)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["predictions"][0]["label"], "approve", "{answer}");
    warden.terminate();
    assert_eq!(
        warden.wait_exit(std::time::Duration::from_secs(10)),
        Some(0)
    );
}

#[test]
fn onnx_runtime_required_but_missing_or_unusable_exits_69() {
    let manifest = iris_manifest().replace("backend = \"auto\"", "backend = \"onnxruntime\"");
    let root = repository("iris", &iris_graph(), &manifest);
    let (_bare, invocation) = bare_container(&[&path_str(root.path()), "--port", "0"]);
    expect(
        "library required but not found",
        &invocation,
        69,
        &[
            "the `onnxruntime` backend is not available",
            "was not found",
            "pip install onnxruntime",
        ],
    );

    let bare = tempfile::tempdir().unwrap();
    let not_a_library = bare.path().join("libonnxruntime.so");
    std::fs::write(&not_a_library, "not a shared library").unwrap();
    expect(
        "library unusable",
        &serve_args(&examples()).env("WARDEN_ONNXRUNTIME_LIB", &path_str(&not_a_library)),
        69,
        &[&path_str(&not_a_library), "WARDEN_ONNXRUNTIME_LIB"],
    );
    expect(
        "a directory named as the library",
        &serve_args(&examples()).env("WARDEN_ONNXRUNTIME_LIB", &path_str(bare.path())),
        69,
        &[
            &path_str(bare.path()),
            "WARDEN_ONNXRUNTIME_LIB names a directory, not the library file",
        ],
    );
}

#[test]
fn the_bound_port_is_printed_plainly() {
    use std::io::BufRead;
    let mut child = Command::new(warden_bin())
        .args([
            "serve",
            &path_str(&examples()),
            "--port",
            "0",
            "--grpc-port",
            "0",
        ])
        .current_dir(repo_root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let line = received.recv_timeout(std::time::Duration::from_secs(60));
    let grpc_line = received.recv_timeout(std::time::Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a line on stdout");
    let address = line
        .strip_prefix("warden listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("{line}"));
    assert!(address.parse::<u16>().is_ok_and(|port| port > 0), "{line}");
    // With --grpc-port 0 the gRPC port is any free one, and printed the same way.
    let grpc_line = grpc_line.expect("a second line on stdout");
    let grpc_port = grpc_line
        .strip_prefix("warden gRPC listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("{grpc_line}"));
    assert!(
        grpc_port.parse::<u16>().is_ok_and(|port| port > 0) && grpc_port != address,
        "{grpc_line}"
    );
}

#[test]
fn a_start_up_failure_is_printed_once() {
    let run = Invocation::new(&["/nonexistent/models", "--port", "0"]).run("serve");
    assert_eq!(run.code, Some(66));
    assert_eq!(
        run.stderr.matches("does not exist").count(),
        1,
        "printed more than once:\n{}",
        run.stderr
    );
}

#[test]
fn addresses_ports_and_variables() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let models = path_str(&examples());
    expect(
        "port in use",
        &Invocation::new(&[&models, "--port", &port]),
        69,
        &[&format!("127.0.0.1:{port}"), "ss -ltnp"],
    );
    expect(
        "address not available",
        &Invocation::new(&[&models, "--host", "192.0.2.1", "--port", "0"]),
        69,
        &["192.0.2.1", "not an address of this machine"],
    );
    expect(
        "port out of range",
        &Invocation::new(&[&models, "--port", "70000"]),
        64,
        &["70000"],
    );
    expect(
        "port out of range in the environment",
        &Invocation::new(&[&models]).env("WARDEN_PORT", "70000"),
        78,
        &["WARDEN_PORT=\"70000\" is not a port number"],
    );
    expect(
        "invalid environment value",
        &Invocation::new(&[&models]).env("WARDEN_PORT", "abc"),
        78,
        &["WARDEN_PORT=\"abc\""],
    );
    drop(holder);
}

#[test]
fn config_files_missing_or_malformed_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.toml");
    expect(
        "config file missing",
        &Invocation::new(&["--config", &path_str(&missing)]),
        78,
        &[&format!("{} does not exist", path_str(&missing))],
    );
    let malformed = dir.path().join("warden.toml");
    std::fs::write(
        &malformed,
        "models = \"examples/models\"\nport = \"eighty\"\n",
    )
    .unwrap();
    expect(
        "config file malformed",
        &Invocation::new(&["--config", &path_str(&malformed)]),
        78,
        &[&path_str(&malformed), "line 2"],
    );
}

#[test]
fn every_broken_model_is_reported_then_exit_65() {
    let root = tempfile::tempdir().unwrap();
    for (model, graph, manifest) in [
        ("broken-a", Vec::new(), iris_manifest()),
        (
            "broken-b",
            iris_graph(),
            iris_manifest().replace("backend", "bakend"),
        ),
        ("iris", iris_graph(), iris_manifest()),
    ] {
        let dir = root.path().join(model);
        std::fs::create_dir_all(dir.join("1")).unwrap();
        std::fs::write(dir.join("1/model.onnx"), graph).unwrap();
        std::fs::write(dir.join("warden.toml"), manifest).unwrap();
    }
    // A manifest that does not parse stops the scan; the model files are checked on load.
    std::fs::write(root.path().join("broken-b/warden.toml"), iris_manifest()).unwrap();
    std::fs::write(root.path().join("broken-b/1/model.onnx"), b"\x80\x04\x95").unwrap();
    expect(
        "two broken models",
        &serve_args(root.path()),
        65,
        &[
            "2 of 3 models failed to load",
            "model `broken-a`",
            "model `broken-b`",
        ],
    );
    let partial = serve_args(root.path());
    let mut partial = partial;
    partial.args.push("--allow-partial".into());
    let check = partial.run("check");
    assert_eq!(check.code, Some(0), "{}", check.stdout);
    assert_eq!(check.stdout.matches("FAIL").count(), 2, "{}", check.stdout);
}

#[tokio::test]
async fn allow_partial_serves_the_good_models_and_reports_the_bad_not_ready() {
    let root = tempfile::tempdir().unwrap();
    for (model, graph) in [("broken", b"\x80\x04\x95".to_vec()), ("iris", iris_graph())] {
        let dir = root.path().join(model);
        std::fs::create_dir_all(dir.join("1")).unwrap();
        std::fs::write(dir.join("1/model.onnx"), graph).unwrap();
        std::fs::write(dir.join("warden.toml"), iris_manifest()).unwrap();
    }
    let mut warden = crate::common::WardenProcess::serve_with(root.path(), &["--allow-partial"]);
    let status = |path: &'static str| {
        let url = format!("http://{}{path}", warden.address);
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/v2/health/ready").await, 200);
    assert_eq!(status("/v2/models/iris/ready").await, 200);
    assert_eq!(status("/v2/models/broken/ready").await, 503);
    warden.terminate();
    assert_eq!(
        warden.wait_exit(std::time::Duration::from_secs(10)),
        Some(0)
    );
}

#[test]
fn a_graph_that_is_not_the_one_its_manifest_pins_is_never_served() {
    let pinned = "42e15d042985a6c28f8210be9272ca9223d106a04ca4aeb0c97c7a7fe6052442";
    let manifest = iris_manifest();
    assert!(
        manifest.contains(pinned),
        "the bundled manifest pins the graph"
    );
    let wrong = "0".repeat(64);
    let root = repository("iris", &iris_graph(), &manifest.replace(pinned, &wrong));
    expect(
        "checksum mismatch",
        &serve_args(root.path()),
        65,
        &[
            &format!("the graph's sha256 is {pinned}, but the manifest pins {wrong}"),
            "hint: the file is not the one the manifest pins",
        ],
    );
}

#[test]
fn require_checksum_refuses_a_version_that_pins_none_and_serves_one_that_does() {
    let manifest = iris_manifest();
    let start = manifest.find("[versions.1]").unwrap();
    let unpinned: String = manifest[..start].to_owned();
    let root = repository("iris", &iris_graph(), &unpinned);
    let mut invocation = serve_args(root.path());
    invocation.args.push("--require-checksum".into());
    expect(
        "no sha256 with --require-checksum",
        &invocation,
        65,
        &[
            "model `iris` version 1 pins no sha256",
            "--require-checksum",
            "hint: pin the graph's hash",
        ],
    );
    // The same flag through the environment, on the bundled models that pin theirs: served.
    let mut command = Command::new(warden_bin());
    command
        .args(["serve", &path_str(&examples()), "--port", "0"])
        .env("WARDEN_REQUIRE_CHECKSUM", "true")
        .env("WARDEN_GRPC_PORT", "off")
        .current_dir(repo_root());
    let mut served = crate::common::WardenProcess::spawn(command);
    served.terminate();
    assert_eq!(
        served.wait_exit(std::time::Duration::from_secs(30)),
        Some(0)
    );
}

#[cfg(unix)]
#[test]
fn a_model_folder_linked_from_outside_the_repository_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("1")).unwrap();
    std::fs::write(outside.path().join("1/model.onnx"), iris_graph()).unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("iris")).unwrap();
    std::fs::write(root.path().join("iris/warden.toml"), iris_manifest()).unwrap();
    std::os::unix::fs::symlink(outside.path().join("1"), root.path().join("iris/1")).unwrap();
    let linked = root.path().join("iris/1/model.onnx");
    expect(
        "version folder linked from outside",
        &serve_args(root.path()),
        65,
        &[
            &format!("{} resolves outside the model repository", linked.display()),
            "hint: copy the files into the repository",
        ],
    );
}
