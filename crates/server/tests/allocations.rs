//! Heap allocations per light request, counted by a counting global allocator and reported per
//! stage (`warden_server::stage`: transport, read, decode, admit, infer, encode, log).
//!
//! The server runs in this process, as `warden serve` assembles it, on the bundled iris model
//! (4 features, its drift monitor on, the metrics on), under the JSON subscriber `warden serve`
//! installs at its default `WARDEN_LOG=info` (so the request's span is made as in production)
//! writing to a sink. The access-log line itself is turned off by its target (it writes to
//! stderr directly, and 7,000 lines would bury the test's output); it is formatted into a buffer
//! each thread reuses (`outcome::access_log`). The client is this test's own thread on a raw
//! kept-alive connection, its allocations not counted. Requests go one at a time, so each
//! allocation is counted in the stage of the one request in flight. Run with `--nocapture` to
//! see the table:
//!
//! ```sh
//! cargo test -p warden-server --release --test allocations -- --nocapture
//! ```
//!
//! Each case asserts a ceiling on the total per request about 15% above what it measured on
//! 2026-12-05 (137 V2 and 179 rows on ONNX Runtime, 172 V2 on tract: the counts move by a few
//! between runs with the timers and the worker's wake-ups), so a change that adds allocations
//! to the light path fails here and says in which stage they went. Issue 29's target is 12.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use warden_runtime::Backend;
use warden_server::serving::Backends;
use warden_server::stage::{self, Stage};
use warden_server::startup::config::{Flags, ProcessEnv, onnxruntime_libraries};
use warden_server::startup::{self, Engines, Mode};

/// Counts every allocation and reallocation by the stage its thread is in, while counting is
/// on, except on the client's thread.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static COUNTS: [AtomicU64; Stage::ALL.len()] = [const { AtomicU64::new(0) }; Stage::ALL.len()];

thread_local! {
    /// The client's thread: its own allocations are not the server's.
    static CLIENT: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.load(Ordering::Relaxed) && !CLIENT.try_with(Cell::get).unwrap_or(true) {
        COUNTS[stage::current() as usize].fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed unchanged to the system allocator, which upholds the
// `GlobalAlloc` contract; counting only touches atomics and const-initialised thread-locals
// without destructors, which never allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const WARM_UP: usize = 300;
const MEASURED: usize = 2000;

/// Serves the bundled examples on `backend` and returns the allocations per request of each
/// stage for `request` (a whole HTTP/1.1 request, kept alive).
fn allocations_per_request(
    backend: Arc<dyn Backend>,
    request: &[u8],
) -> BTreeMap<&'static str, f64> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
    let environment: BTreeMap<String, String> =
        [("WARDEN_WORKERS", "1"), ("WARDEN_GRPC_PORT", "off")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let flags = Flags {
        models: Some(models),
        port: Some(0),
        ..Flags::default()
    };
    let prepared = runtime.block_on(async {
        startup::assemble(
            flags,
            &environment,
            Mode::Serve,
            Engines::Given(Backends::only(backend)),
        )
        .result
        .expect("the examples serve")
    });
    let listener = prepared.listener.expect("serve mode binds");
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(startup::serve(
        prepared.state,
        listener,
        None,
        prepared.connections,
        async {
            let _ = stopped.await;
        },
    ));

    CLIENT.with(|client| client.set(true));
    let mut connection = TcpStream::connect(address).unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut exchange = |connection: &mut TcpStream| {
        connection.write_all(request).unwrap();
        let mut filled = 0;
        loop {
            let read = connection.read(&mut buffer[filled..]).unwrap();
            assert!(read > 0, "the server closed the connection");
            filled += read;
            let Some(head_end) = find(&buffer[..filled], b"\r\n\r\n") else {
                continue;
            };
            let head = std::str::from_utf8(&buffer[..head_end]).unwrap();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .expect("a content-length");
            if filled >= head_end + 4 + length {
                assert_eq!(filled, head_end + 4 + length, "one answer per request");
                return;
            }
        }
    };
    for _ in 0..WARM_UP {
        exchange(&mut connection);
    }
    for counter in &COUNTS {
        counter.store(0, Ordering::Relaxed);
    }
    COUNTING.store(true, Ordering::Relaxed);
    for _ in 0..MEASURED {
        exchange(&mut connection);
    }
    COUNTING.store(false, Ordering::Relaxed);
    CLIENT.with(|client| client.set(false));

    let _ = stop.send(());
    drop(connection);
    runtime.block_on(server).unwrap().unwrap();
    Stage::ALL
        .iter()
        .map(|&stage| {
            let count = COUNTS[stage as usize].load(Ordering::Relaxed);
            (stage.name(), count as f64 / MEASURED as f64)
        })
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn v2_one_row() -> Vec<u8> {
    post(
        "/v2/models/iris/infer",
        r#"{"inputs":[{"name":"float_input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#,
    )
}

fn rows_one_row() -> Vec<u8> {
    post(
        "/v1/models/iris:predict",
        r#"{"instances":[{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}]}"#,
    )
}

/// Prints the table and checks the total against `ceiling`.
fn report(case: &str, per_stage: &BTreeMap<&'static str, f64>, ceiling: f64) {
    let total: f64 = per_stage.values().sum();
    let stages: Vec<String> = Stage::ALL
        .iter()
        .map(|stage| format!("{} {:.1}", stage.name(), per_stage[stage.name()]))
        .collect();
    eprintln!(
        "{case}: {total:.1} allocations per request ({})",
        stages.join(", ")
    );
    assert!(
        total <= ceiling,
        "{case}: {total:.1} allocations per request, over the ceiling of {ceiling}: {per_stage:?}"
    );
}

/// The cases share the process-wide counters, so they run one after the other in one test.
#[test]
fn a_light_request_allocates_within_its_ceiling_at_every_stage() {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,warden_server::outcome::access_log=off",
        ))
        .with_writer(std::io::sink)
        .init();
    let onnxruntime: Arc<dyn Backend> =
        startup::init_onnxruntime(&onnxruntime_libraries(None, &ProcessEnv))
            .expect("ONNX Runtime must be available for the tests: run scripts/test");
    report(
        "V2 JSON, 1 row, onnxruntime",
        &allocations_per_request(Arc::clone(&onnxruntime), &v2_one_row()),
        160.0,
    );
    report(
        "rows, 1 row, onnxruntime",
        &allocations_per_request(onnxruntime, &rows_one_row()),
        205.0,
    );
    report(
        "V2 JSON, 1 row, tract",
        &allocations_per_request(Arc::new(warden_runtime::tract::Tract), &v2_one_row()),
        200.0,
    );
}
