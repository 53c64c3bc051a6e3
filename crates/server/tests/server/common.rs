//! Shared harness for the integration tests: the real router served on 127.0.0.1:0 with the
//! checked-in example models, and the real binary started as a child process.

#![allow(clippy::zombie_processes)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use warden_runtime::onnxruntime::OnnxRuntime;
use warden_runtime::{Backend, LoadOptions, LoadedModel, NamedTensor, RuntimeError, Signature};
use warden_server::serving::Backends;
use warden_server::startup::config::{Flags, ProcessEnv, onnxruntime_libraries};
use warden_server::startup::{self, Engines, Mode};
use warden_server::state::AppState;

/// The repository's root.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test fixtures' model repository (graphs made by examples/make_models.py).
pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}

/// The bundled example repository.
pub(crate) fn examples() -> PathBuf {
    repo_root().join("examples/models")
}

/// The process's one ONNX Runtime (ONNX Runtime allows a single environment per process).
pub(crate) fn onnxruntime() -> Arc<OnnxRuntime> {
    static RUNTIME: OnceLock<Arc<OnnxRuntime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            startup::init_onnxruntime(&onnxruntime_libraries(None, &ProcessEnv))
                .expect("ONNX Runtime must be available for the tests: run scripts/test")
        })
        .clone()
}

/// A server on an ephemeral port, stopped when dropped.
pub(crate) struct TestServer {
    pub base: String,
    /// `http://host:port` of the gRPC listener, when the test asked for one
    /// (`WARDEN_GRPC_PORT=0`).
    pub grpc: Option<String>,
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Serves `path` on the process's ONNX Runtime, configured as `warden serve` would be.
    pub(crate) async fn start(path: &Path) -> TestServer {
        TestServer::start_with(path, &[], Backends::only(onnxruntime())).await
    }

    /// Serves `path` with a given body limit.
    pub(crate) async fn start_with_limit(path: &Path, body_limit: usize) -> TestServer {
        let limit = body_limit.to_string();
        TestServer::start_with(
            path,
            &[("WARDEN_MAX_BODY_BYTES", limit.as_str())],
            Backends::only(onnxruntime()),
        )
        .await
    }

    /// Serves `path` on a given backend.
    pub(crate) async fn start_on(path: &Path, backend: &ScriptedBackend) -> TestServer {
        TestServer::start_on_backends(path, Backends::only(Arc::new(backend.clone()))).await
    }

    /// Serves `path` with the given engines.
    pub(crate) async fn start_on_backends(path: &Path, backends: Backends) -> TestServer {
        TestServer::start_with(path, &[], backends).await
    }

    /// Serves `path` through the start-up assembly `warden serve` uses, with `env` as the
    /// environment (`WARDEN_*` settings), on 127.0.0.1:0; by default with one worker per version
    /// and at most 1,000 connections.
    pub(crate) async fn start_with(
        path: &Path,
        env: &[(&str, &str)],
        backends: Backends,
    ) -> TestServer {
        TestServer::start_observed(path, env, backends, Vec::new()).await
    }

    /// As [`TestServer::start_with`], with `observers` at the front door.
    pub(crate) async fn start_observed(
        path: &Path,
        env: &[(&str, &str)],
        backends: Backends,
        observers: Vec<Arc<dyn warden_server::front_door::Observer>>,
    ) -> TestServer {
        let mut environment: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        // One worker per version unless a test says otherwise, so a test that occupies "the"
        // worker occupies the model on any machine.
        // No gRPC listener unless a test asks: tests run in parallel and 8001 is one port.
        for (key, value) in [
            ("WARDEN_MAX_CONNECTIONS", "1000"),
            ("WARDEN_WORKERS", "1"),
            ("WARDEN_GRPC_PORT", "off"),
        ] {
            environment
                .entry(key.into())
                .or_insert_with(|| value.into());
        }
        let flags = Flags {
            models: Some(path.to_path_buf()),
            port: Some(0),
            ..Flags::default()
        };
        let outcome = startup::assemble(flags, &environment, Mode::Serve, Engines::Given(backends));
        let prepared = match outcome.result {
            Ok(prepared) => prepared,
            Err(err) => panic!("the server did not start: {err:?}"),
        };
        let listener = prepared.listener.expect("serve mode binds");
        let address: SocketAddr = listener.local_addr().unwrap();
        let grpc_listener = prepared.grpc_listener;
        let grpc = grpc_listener
            .as_ref()
            .map(|listener| format!("http://{}", listener.local_addr().unwrap()));
        let mut state = prepared.state;
        state.door = state.door.with_observers(observers);
        let (shutdown, signal) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        let limits = prepared.connections;
        let task = tokio::spawn(async move {
            startup::serve(served, listener, grpc_listener, limits, async {
                let _ = signal.await;
            })
            .await
            .expect("server runs");
        });
        TestServer {
            base: format!("http://{address}"),
            grpc,
            state,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server and waits until it has finished.
    pub(crate) async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The `warden` binary cargo built for these tests.
pub(crate) fn warden_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_warden"))
}

/// The real binary, serving on an ephemeral port, with its stderr read line by line.
pub(crate) struct WardenProcess {
    pub child: Child,
    pub address: SocketAddr,
    /// The lines logged before `listening`.
    pub startup_log: Vec<String>,
    /// The lines logged after `listening`; held also so the reader thread keeps draining the
    /// pipe (a full pipe would block warden).
    stderr: mpsc::Receiver<String>,
}

impl WardenProcess {
    /// Starts `warden serve PATH --port 0` and waits (with a deadline) for its `listening` line.
    pub(crate) fn serve(path: &Path) -> WardenProcess {
        WardenProcess::serve_with(path, &[])
    }

    /// As [`WardenProcess::serve`], with extra arguments.
    pub(crate) fn serve_with(path: &Path, extra: &[&str]) -> WardenProcess {
        WardenProcess::spawn(WardenProcess::serve_command(path, extra))
    }

    /// The `warden serve PATH --port 0 EXTRA…` command (no gRPC listener) the helpers above
    /// start, for a test that sets more of its environment before [`WardenProcess::spawn`].
    pub(crate) fn serve_command(path: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(warden_bin());
        command
            .args(["serve", path.to_str().unwrap(), "--port", "0"])
            .args(extra)
            .env("WARDEN_GRPC_PORT", "off")
            .current_dir(repo_root());
        command
    }

    /// Starts a prepared `warden serve` command and waits for its `listening` line.
    pub(crate) fn spawn(mut command: Command) -> WardenProcess {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("warden starts");
        let stderr = child.stderr.take().unwrap();
        let (lines, stderr_lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match stderr_lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                        && event["message"] == "listening"
                    {
                        let address = event["address"].as_str().unwrap().parse().unwrap();
                        return WardenProcess {
                            child,
                            address,
                            startup_log: seen,
                            stderr: stderr_lines,
                        };
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = child.kill();
        panic!(
            "warden did not report listening; stderr:\n{}",
            seen.join("\n")
        );
    }

    /// The lines logged after `listening` until stderr closes (the process exited), waiting at
    /// most `limit` in all.
    pub(crate) fn log_until_exit(&self, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return lines,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "stderr still open after {limit:?}; so far:\n{}",
                        lines.join("\n")
                    )
                }
            }
        }
    }

    /// Sends SIGTERM to the process (by its PID, through `kill`).
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, with a deadline, and returns its exit code.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("warden did not exit within {limit:?}");
    }
}

impl Drop for WardenProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a [`ScriptedBackend`]'s models do when run after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Script {
    /// Run the real model.
    Run,
    /// Fail with an engine error that mentions an internal path.
    Fail,
    /// Signal `entered`, then wait for `release` before running.
    Block,
}

/// ONNX Runtime wrapped to count every run and, once armed, to fail or block on demand, so tests
/// can prove what reached the model and drive the error paths a healthy model never takes.
#[derive(Debug, Clone)]
pub(crate) struct ScriptedBackend {
    pub runs: Arc<AtomicUsize>,
    pub script: Arc<Mutex<Script>>,
    pub entered: Arc<Mutex<mpsc::Sender<()>>>,
    pub release: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl ScriptedBackend {
    /// A backend, the receiver of its `entered` signals, and the sender that releases blocked runs.
    pub(crate) fn new() -> (ScriptedBackend, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (entered, entered_rx) = mpsc::channel();
        let (release_tx, release) = mpsc::channel();
        let backend = ScriptedBackend {
            runs: Arc::new(AtomicUsize::new(0)),
            script: Arc::new(Mutex::new(Script::Run)),
            entered: Arc::new(Mutex::new(entered)),
            release: Arc::new(Mutex::new(release)),
        };
        (backend, entered_rx, release_tx)
    }

    pub(crate) fn arm(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }

    pub(crate) fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

impl Backend for ScriptedBackend {
    fn platform(&self) -> &'static str {
        "onnxruntime_onnx"
    }

    fn load(
        &self,
        model: &[u8],
        origin: &Path,
        options: &LoadOptions,
    ) -> Result<Box<dyn LoadedModel>, RuntimeError> {
        Ok(Box::new(ScriptedModel {
            inner: onnxruntime().load(model, origin, options)?,
            backend: self.clone(),
        }))
    }
}

#[derive(Debug)]
struct ScriptedModel {
    inner: Box<dyn LoadedModel>,
    backend: ScriptedBackend,
}

impl LoadedModel for ScriptedModel {
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn run(
        &mut self,
        inputs: Vec<NamedTensor>,
        outputs: &[String],
    ) -> Result<Vec<NamedTensor>, RuntimeError> {
        self.backend.runs.fetch_add(1, Ordering::SeqCst);
        let script = *self.backend.script.lock().unwrap();
        match script {
            Script::Run => {}
            Script::Fail => {
                return Err(RuntimeError::Inference(
                    "kernel failed in /opt/secret/onnxruntime/core.cc".into(),
                ));
            }
            Script::Block => {
                let _ = self.backend.entered.lock().unwrap().send(());
                let _ = self
                    .backend
                    .release
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(30));
            }
        }
        self.inner.run(inputs, outputs)
    }
}

/// Polls `condition` every few milliseconds until it holds, failing after `limit`.
pub(crate) async fn eventually(what: &str, limit: Duration, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A copy of `source/model` (graph, manifest and background set, if any) in a fresh
/// repository, its manifest edited.
pub(crate) fn repository_with(
    source: &Path,
    model: &str,
    edit: impl Fn(String) -> String,
) -> tempfile::TempDir {
    let repository = tempfile::tempdir().unwrap();
    let dir = repository.path().join(model);
    std::fs::create_dir_all(dir.join("1")).unwrap();
    std::fs::copy(
        source.join(model).join("1/model.onnx"),
        dir.join("1/model.onnx"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(source.join(model).join("warden.toml")).unwrap();
    std::fs::write(dir.join("warden.toml"), edit(manifest)).unwrap();
    let background = source.join(model).join("background.jsonl");
    if background.exists() {
        std::fs::copy(background, dir.join("background.jsonl")).unwrap();
    }
    repository
}

/// GETs `path` and reads the JSON answer.
pub(crate) async fn get_json(
    server: &TestServer,
    path: &str,
) -> (reqwest::StatusCode, serde_json::Value) {
    let response = reqwest::get(server.url(path)).await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// POSTs `body` as JSON to `path` and reads the JSON answer.
pub(crate) async fn post_json(
    server: &TestServer,
    path: &str,
    body: &serde_json::Value,
) -> (reqwest::StatusCode, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(server.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Sends `body` to `url` while the backend is armed with [`Script::Block`], and returns once the
/// model holds that request (so its worker is busy): the handle answers the request's status
/// after the backend is released.
pub(crate) async fn occupy_worker(
    url: &str,
    body: &serde_json::Value,
    entered: mpsc::Receiver<()>,
) -> tokio::task::JoinHandle<reqwest::StatusCode> {
    let (url, body) = (url.to_owned(), body.clone());
    let running = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    });
    tokio::task::spawn_blocking(move || entered.recv_timeout(Duration::from_secs(30)).unwrap())
        .await
        .unwrap();
    running
}

/// The real router (`api::router`) driven in-process, without a socket, as axum's testing
/// example does.
pub(crate) struct InProcess {
    router: axum::Router,
}

impl InProcess {
    /// The router over `state`, with the default body limit.
    pub(crate) fn new(state: AppState) -> InProcess {
        InProcess {
            router: warden_server::api::router(state),
        }
    }

    /// The router over what `warden check` assembles from `path` on `backends` (every
    /// start-up check run, no socket kept).
    pub(crate) fn assemble(path: &Path, backends: Backends) -> InProcess {
        let flags = Flags {
            models: Some(path.to_path_buf()),
            port: Some(0),
            ..Flags::default()
        };
        let env = BTreeMap::new();
        let outcome = startup::assemble(flags, &env, Mode::Check, Engines::Given(backends));
        match outcome.result {
            Ok(prepared) => InProcess::new(prepared.state),
            Err(err) => panic!("the checks failed: {err:?}"),
        }
    }

    /// Sends one request; the status, headers and the body as JSON.
    pub(crate) async fn send(
        &self,
        request: axum::http::Request<axum::body::Body>,
    ) -> (
        reqwest::StatusCode,
        axum::http::HeaderMap,
        serde_json::Value,
    ) {
        use tower::ServiceExt;
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (parts.status, parts.headers, json)
    }

    pub(crate) async fn get(&self, path: &str) -> (reqwest::StatusCode, serde_json::Value) {
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, _, body) = self.send(request).await;
        (status, body)
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let request = axum::http::Request::post(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        let (status, _, body) = self.send(request).await;
        (status, body)
    }
}

/// What a [`FakeEngine`] answers to a run's inputs.
pub(crate) type Answer = dyn Fn(&[NamedTensor]) -> Vec<NamedTensor> + Send + Sync;

/// An engine that needs no ONNX Runtime: it reports a fixed signature whatever the graph and
/// answers each run with `answer`, after recording the inputs it was given.
#[derive(Clone)]
pub(crate) struct FakeEngine {
    pub signature: Signature,
    pub answer: Arc<Answer>,
    /// Every run's inputs, in order (the warm-up's first).
    pub seen: Arc<Mutex<Vec<Vec<NamedTensor>>>>,
}

impl std::fmt::Debug for FakeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeEngine").finish_non_exhaustive()
    }
}

impl Backend for FakeEngine {
    fn platform(&self) -> &'static str {
        "fake"
    }

    fn load(
        &self,
        _model: &[u8],
        _origin: &Path,
        _options: &LoadOptions,
    ) -> Result<Box<dyn LoadedModel>, RuntimeError> {
        Ok(Box::new(FakeModel(self.clone())))
    }
}

#[derive(Debug)]
struct FakeModel(FakeEngine);

impl LoadedModel for FakeModel {
    fn signature(&self) -> &Signature {
        &self.0.signature
    }

    fn run(
        &mut self,
        inputs: Vec<NamedTensor>,
        _outputs: &[String],
    ) -> Result<Vec<NamedTensor>, RuntimeError> {
        let answer = (self.0.answer)(&inputs);
        self.0.seen.lock().unwrap().push(inputs);
        Ok(answer)
    }
}
