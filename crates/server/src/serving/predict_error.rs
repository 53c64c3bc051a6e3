//! Why a request could not be answered with predictions, below the protocols: refused by the
//! contract gate ([`super::admission`]), by the scheduler, or by the output guards. Its own module
//! so the gate and the model version both name it without naming each other.

use warden_contract::Violations;

use super::scheduler::InferError;

/// Why a request could not be answered with predictions.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("{}", describe_violations(.0))]
    Invalid(Violations),
    #[error(
        "the request has {rows} rows; model `{model}` accepts at most {max} per request: send \
         fewer, or raise `max_request_rows` under [batching] in its warden.toml"
    )]
    BatchTooLarge {
        model: String,
        rows: usize,
        max: usize,
    },
    #[error("model `{0}` declares no named features; use the V2 inference API")]
    NoRowContract(String),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("model output failed its guards: {}", .0.join("; "))]
    InvalidOutput(Vec<String>),
    #[error("could not encode the request: {0}")]
    Encode(String),
}

/// Violations in one line, for logs and start-up messages: `sepal_length: expected …; …`.
fn describe_violations(violations: &Violations) -> String {
    violations
        .listed()
        .iter()
        .map(|v| {
            let field = v
                .loc
                .last()
                .map_or_else(String::new, |segment| match segment {
                    warden_contract::LocSegment::Key(key) => format!("{key}: "),
                    warden_contract::LocSegment::Index(index) => format!("[{index}]: "),
                });
            format!("{field}{}", v.msg)
        })
        .collect::<Vec<_>>()
        .join("; ")
}
