//! The `warden` binary: parse, install logging, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use warden_server::cli::Cli;
use warden_server::exit;
use warden_server::startup::config::ProcessEnv;
use warden_server::startup::diagnostics::Diagnostic;

/// Fixes glibc's mmap threshold at 256 KiB. By default glibc raises the threshold to the size
/// of the largest block freed (up to 32 MiB), so once a few megabyte request bodies have come
/// and gone, later ones are carved from the heap arenas and stay resident after they are freed:
/// a burst of large bodies left the server at twice its resident size for good. With the
/// threshold fixed, blocks above it are mapped and unmapped on their own and go back to the
/// system when freed. musl (the static build) returns memory by itself and has no `mallopt`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    const MMAP_THRESHOLD_BYTES: libc::c_int = 256 * 1024;
    // SAFETY: `mallopt` only sets a parameter of the allocator; it is called once, first thing
    // in `main`, before any other thread exists. A refusal (0) leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are not errors; anything else clap rejects is a usage error.
            let code = if err.use_stderr() { exit::USAGE } else { 0 };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    warden_server::startup::telemetry::init(&ProcessEnv);
    // A bug must still end in one line and a distinct exit code, never a Rust panic dump.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()));
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(
            panic = %message,
            location = location.as_deref().unwrap_or(""),
            "internal error (a bug in warden)"
        );
    }));
    let outcome =
        std::panic::catch_unwind(|| warden_server::run(cli, &ProcessEnv, &mut std::io::stdout()));
    let Ok(result) = outcome else {
        eprintln!("error: internal error (a bug in warden); the log line above has the details");
        return ExitCode::from(exit::SOFTWARE);
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Once, as the diagnostic: a JSON log line repeating it made every failure print twice.
            eprint!("{}", Diagnostic(&err));
            ExitCode::from(err.exit_code())
        }
    }
}
