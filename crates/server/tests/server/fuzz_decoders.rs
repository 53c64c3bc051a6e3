//! Fuzzing the decoders a client's bytes meet first — JSON parsing, row validation and the KServe
//! V2 decoder — with proptest on the stable toolchain (cargo-fuzz needs nightly, which these
//! machines cannot fetch). Inputs are the checked-in corpus in `tests/fuzz_corpus/` and
//! mutations of it (bytes flipped, cut, or spliced with JSON tokens that have broken decoders
//! before), plus arbitrary JSON values. The properties: nothing panics, and every error answer
//! is smaller than [`ANSWER_LIMIT`] whatever the input.
//!
//! CI runs the default number of cases (`PROPTEST_CASES`, 256 per property, a few seconds);
//! a longer run is `PROPTEST_CASES=100000 cargo test --release --test server fuzz_decoders`.

use std::path::PathBuf;

use axum::response::IntoResponse;
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;
use warden_contract::{
    Feature, Manifest, check_strict, mark_bare_non_finite, parse_strict, validate_rows,
};
use warden_runtime::{DataType, Signature, TensorSpec};
use warden_server::outcome::error::{ApiError, ErrorCode};
use warden_server::protocol::rows::RowsBody;
use warden_server::protocol::v2::{DecodeError, decode_request};

/// Every error answer is smaller than this, whatever the request.
const ANSWER_LIMIT: usize = 64 * 1024;
const MAX_BATCH_SIZE: usize = 64;

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus in {dir:?} is empty");
    files
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

fn iris_features() -> Vec<Feature> {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/iris/warden.toml"),
    )
    .unwrap();
    Manifest::from_toml(&text).unwrap().features
}

fn signatures() -> Vec<Signature> {
    let spec = |name: &str, data_type, shape: &[i64]| TensorSpec {
        name: name.into(),
        data_type,
        shape: shape.to_vec(),
    };
    vec![
        Signature {
            inputs: vec![spec("float_input", DataType::F32, &[-1, 4])],
            outputs: vec![
                spec("label", DataType::I64, &[-1]),
                spec("probabilities", DataType::F32, &[-1, 3]),
            ],
        },
        Signature {
            inputs: vec![
                spec("age", DataType::F32, &[-1, 1]),
                spec("country", DataType::String, &[-1, 1]),
            ],
            outputs: vec![spec("label", DataType::String, &[-1])],
        },
    ]
}

/// The size of the answer an error becomes.
fn answer_size(error: ApiError) -> usize {
    let response = error.into_response();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
        .unwrap()
        .len()
}

/// Runs `bytes` through every decoder a request body meets, as the server does (checked as
/// strict JSON without a tree, bare non-finite tokens marked, then rows found and parsed one at
/// a time, or V2 decoded from the text); panics are failures, and every error answer must be
/// within [`ANSWER_LIMIT`].
fn decode_everything(bytes: &[u8], features: &[Feature], signatures: &[Signature]) {
    assert_eq!(
        check_strict(bytes).is_ok(),
        parse_strict(bytes).is_ok(),
        "checking and parsing disagree on {:?}",
        String::from_utf8_lossy(bytes)
    );
    let text = match check_strict(bytes) {
        Ok(()) => bytes.to_vec(),
        Err(err) => match mark_bare_non_finite(bytes).filter(|m| check_strict(m).is_ok()) {
            Some(marked) => marked,
            None => {
                let size = answer_size(ApiError::new(
                    ErrorCode::MalformedJson,
                    format!("the body is not valid JSON: {err}"),
                ));
                assert!(size < ANSWER_LIMIT, "{size} bytes");
                return;
            }
        },
    };
    check_decoders(&text, bytes, features, signatures);
}

fn check_decoders(text: &[u8], bytes: &[u8], features: &[Feature], signatures: &[Signature]) {
    let rows = RowsBody::split(Bytes::copy_from_slice(text));
    let checked = rows
        .source()
        .and_then(|source| validate_rows(features, source, "instances").map(|_| ()));
    if let Err(violations) = checked {
        let size = answer_size(ApiError::invalid_input(violations));
        assert!(size < ANSWER_LIMIT, "rows: {size} bytes");
    }
    let binary = &bytes[bytes.len().saturating_sub(16)..];
    for signature in signatures {
        for tail in [&[][..], binary] {
            match decode_request(text, tail, signature, MAX_BATCH_SIZE) {
                Ok(request) => assert!(request.rows <= MAX_BATCH_SIZE),
                Err(DecodeError::BatchTooLarge { rows, max }) => assert!(rows > max),
                Err(DecodeError::Invalid(violations)) => {
                    assert!(violations.total() > 0);
                    let size = answer_size(ApiError::invalid_input(violations));
                    assert!(size < ANSWER_LIMIT, "v2: {size} bytes");
                }
            }
        }
    }
}

/// Tokens spliced into the corpus: structure, the spellings of non-finite numbers, huge and
/// imprecise numbers, control characters, the protocol's own keys and datatypes.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "\"",
    ",",
    ":",
    "null",
    "true",
    "NaN",
    "-Infinity",
    "\"nan\"",
    "1e999",
    "-0",
    "9007199254740993",
    "18446744073709551616",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "[[[[[[",
    "]]]]",
    "\"name\"",
    "\"shape\"",
    "\"data\"",
    "\"datatype\"",
    "\"BYTES\"",
    "\"FP64\"",
    "\"instances\"",
    "\"parameters\"",
    "\"binary_data_size\"",
    "[-1]",
    "[0, 4]",
    "[4611686018427387904, 4]",
    "\"float_input\"",
    "\"sepal_length\"",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Cut(usize, usize),
    Splice(usize, usize),
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = bytes.len().max(1);
        match *mutation {
            Mutation::Flip(at, bits) => {
                if let Some(byte) = bytes.get_mut(at % len) {
                    *byte ^= bits;
                }
            }
            Mutation::Cut(at, count) => {
                let start = (at % len).min(bytes.len());
                let end = (start + count).min(bytes.len());
                bytes.drain(start..end);
            }
            Mutation::Splice(at, token) => {
                let at = (at % len).min(bytes.len());
                let token = TOKENS[token % TOKENS.len()].as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
        }
    }
    bytes
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, bits)| Mutation::Flip(at, bits)),
        (any::<usize>(), 1usize..32).prop_map(|(at, n)| Mutation::Cut(at, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(at, t)| Mutation::Splice(at, t)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z_]{0,12}".prop_map(Value::from),
        prop::sample::select(vec!["float_input", "FP32", "BYTES", "age", "country", "US"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "inputs",
                        "name",
                        "shape",
                        "datatype",
                        "data",
                        "parameters",
                        "outputs",
                        "instances",
                        "binary_data_size",
                        "sepal_length",
                    ]),
                    inner,
                ),
                0..6,
            )
            .prop_map(|fields| Value::Object(
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

#[test]
fn the_corpus_itself_decodes_within_bounds() {
    let (features, signatures) = (iris_features(), signatures());
    for bytes in corpus() {
        decode_everything(&bytes, &features, &signatures);
    }
}

proptest! {
    #[test]
    fn mutated_corpus_bodies_never_panic_and_answer_within_bounds(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let corpus = corpus();
        let bytes = mutate(corpus[seed.index(corpus.len())].clone(), &mutations);
        decode_everything(&bytes, &iris_features(), &signatures());
    }

    #[test]
    fn arbitrary_json_never_panics_and_answers_within_bounds(body in json_value()) {
        let bytes = serde_json::to_vec(&body).unwrap();
        check_decoders(&bytes, &bytes, &iris_features(), &signatures());
    }
}
