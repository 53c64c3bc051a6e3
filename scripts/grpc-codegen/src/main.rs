//! Generates warden's checked-in gRPC code for the KServe V2 / Open Inference Protocol.
//!
//! Input:  `crates/server/proto/open_inference_grpc.proto` (vendored from kserve/open-inference-protocol).
//! Output: `crates/server/src/protocol/v2/generated/inference.rs` (prost messages plus the tonic
//!         server and client for `inference.GRPCInferenceService`) and
//!         `crates/server/src/protocol/v2/generated/inference_descriptor.bin` (the encoded
//!         `FileDescriptorSet`, imports included, source info stripped, for gRPC reflection).
//!
//! The proto is compiled by `protox` (a pure-Rust protobuf compiler), so neither this program
//! nor the warden build needs `protoc`; the warden build does not run this at all (no build.rs).
//! It does need `rustfmt` (the output is rustfmt-formatted, as `cargo fmt --check` wants).
//!
//! This crate is deliberately NOT a member of the warden workspace (it has its own
//! `[workspace]` table). Regenerate, from the repository root, with:
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/grpc-gen-target cargo run --manifest-path scripts/grpc-codegen/Cargo.toml
//! ```
//!
//! Add `-- --check` to only verify that the checked-in files are up to date (exit status 1 if
//! not). An optional positional argument names the repository root (default: two directories
//! above this crate's manifest). After bumping a codegen crate version in `Cargo.toml`, update
//! `GENERATOR_VERSIONS` below to match and regenerate.
//!
//! Generated names: prost camel-cases `GRPCInferenceService` to `GrpcInferenceService`, so the
//! code has the trait `grpc_inference_service_server::GrpcInferenceService`, the server
//! `GrpcInferenceServiceServer` and the client `GrpcInferenceServiceClient`; the wire name
//! (`SERVICE_NAME`) stays `inference.GRPCInferenceService`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use prost::Message;

/// Written into the generated file's header; keep in step with the `=` pins in Cargo.toml.
const GENERATOR_VERSIONS: &str = "protox 0.10.0, tonic-prost-build 0.14.9, prost-build 0.14.6";

const PROTO_DIR: &str = "crates/server/proto";
const PROTO_FILE: &str = "open_inference_grpc.proto";
const OUT_DIR: &str = "crates/server/src/protocol/v2/generated";
const OUT_RS: &str = "inference.rs";
const OUT_DESCRIPTOR: &str = "inference_descriptor.bin";
/// prost names its output after the proto package.
const PROST_OUTPUT: &str = "inference.rs";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("grpc-codegen: {err}");
            ExitCode::FAILURE
        }
    }
}

/// prost-build formats with prettyplease, whose output differs from rustfmt's; the warden CI
/// runs `cargo fmt --all -- --check`, which descends into this file when it is a `mod`, so the
/// checked-in code is rustfmt's (edition 2024, like the workspace). `$RUSTFMT` overrides the binary.
fn rustfmt(code: &str) -> Result<String, Box<dyn std::error::Error>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let bin = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let mut child = Command::new(&bin)
        .args(["--edition", "2024"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.to_string_lossy()))?;
    let mut stdin = child.stdin.take().ok_or("rustfmt: no stdin")?;
    let input = code.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| "rustfmt: stdin writer panicked")??;
    if !output.status.success() {
        return Err(format!("rustfmt failed: {}", output.status).into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut check = false;
    let mut root: Option<PathBuf> = None;
    for arg in std::env::args_os().skip(1) {
        if arg == "--check" {
            check = true;
        } else if root.is_none() {
            root = Some(PathBuf::from(arg));
        } else {
            return Err("usage: grpc-codegen [--check] [REPO_ROOT]".into());
        }
    }
    let root = root.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let proto_dir = root.join(PROTO_DIR);
    let out_dir = root.join(OUT_DIR);

    // Compile the proto. Source info is kept for code generation (it carries the comments that
    // become rustdoc) and stripped from the descriptor that is checked in for reflection.
    let fds = protox::Compiler::new([&proto_dir])?
        .include_source_info(true)
        .include_imports(true)
        .open_file(PROTO_FILE)?
        .file_descriptor_set();

    let mut stripped = fds.clone();
    for file in &mut stripped.file {
        file.source_code_info = None;
    }
    let descriptor = stripped.encode_to_vec();

    let scratch = tempfile::tempdir()?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(true)
        // Every `bytes` field (raw_input_contents, raw_output_contents, bytes_contents) as
        // `prost::bytes::Bytes`: tonic decodes from a `BytesMut`, so these become zero-copy
        // slices of the request buffer instead of fresh `Vec<u8>` copies.
        .bytes(".")
        .emit_rerun_if_changed(false)
        .out_dir(scratch.path())
        .compile_fds(fds)?;
    let body = std::fs::read_to_string(scratch.path().join(PROST_OUTPUT))?;
    let code = rustfmt(&format!(
        "// @generated by scripts/grpc-codegen ({GENERATOR_VERSIONS}) from \
         {PROTO_DIR}/{PROTO_FILE}.\n\
         // Do not edit by hand: see scripts/grpc-codegen/src/main.rs for how to regenerate.\n\
         {body}"
    ))?;

    let rs_path = out_dir.join(OUT_RS);
    let bin_path = out_dir.join(OUT_DESCRIPTOR);
    if check {
        let mut stale = Vec::new();
        if std::fs::read(&rs_path).ok().as_deref() != Some(code.as_bytes()) {
            stale.push(rs_path);
        }
        if std::fs::read(&bin_path).ok().as_deref() != Some(descriptor.as_slice()) {
            stale.push(bin_path);
        }
        if stale.is_empty() {
            eprintln!("grpc-codegen: generated files are up to date");
            return Ok(ExitCode::SUCCESS);
        }
        for path in stale {
            eprintln!("grpc-codegen: stale: {}", path.display());
        }
        return Ok(ExitCode::FAILURE);
    }

    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(&rs_path, code)?;
    std::fs::write(&bin_path, &descriptor)?;
    eprintln!(
        "grpc-codegen: wrote {} and {} ({} bytes)",
        rs_path.display(),
        bin_path.display(),
        descriptor.len()
    );
    Ok(ExitCode::SUCCESS)
}
