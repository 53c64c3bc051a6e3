//! How a failure below the protocols becomes an answer: a body the transport would not read, a
//! model lookup, a refused token, a prediction that failed; each mapped once onto the error
//! table, for REST and gRPC alike, with what the client is not told logged instead.

use crate::auth::Denied;
use crate::outcome::error::{ApiError, ErrorCode};
use crate::serving::{ExplainError, InferError, LookupError, ModelVersion, PredictError};
use crate::transport::body::BodyRefusal;

/// A body (HTTP, `what` = "the request body") or message (gRPC, "the message") the transport
/// refused to read, under a body limit of `limit_bytes` and a body timeout of `timeout`.
pub(crate) fn body_refusal(
    refusal: BodyRefusal,
    what: &str,
    limit_bytes: usize,
    timeout: std::time::Duration,
) -> ApiError {
    match refusal {
        BodyRefusal::TooLarge => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("{what} is over the server's limit of {limit_bytes} bytes (--max-body-bytes)"),
        ),
        BodyRefusal::TimedOut => ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "{what} did not arrive within {} ms of its headers",
                timeout.as_millis()
            ),
        ),
        BodyRefusal::ClientDeadline => ApiError::new(
            ErrorCode::DeadlineExceeded,
            format!("the request's own deadline passed before {what} arrived"),
        ),
        BodyRefusal::OverBudget => ApiError::new(
            ErrorCode::Overloaded,
            "the request bodies in flight fill the server's memory budget; retry after the \
             Retry-After delay",
        ),
        BodyRefusal::Broken => {
            ApiError::new(ErrorCode::InvalidInput, format!("{what} could not be read"))
        }
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> ApiError {
        let code = match denied {
            Denied::MissingToken | Denied::InvalidToken => ErrorCode::Unauthorized,
            Denied::NotAdmin => ErrorCode::Forbidden,
        };
        ApiError::new(code, denied.to_string())
    }
}

impl From<LookupError> for ApiError {
    fn from(err: LookupError) -> ApiError {
        let code = match err {
            LookupError::UnknownModel(_) | LookupError::UnknownVersion { .. } => {
                ErrorCode::ModelNotFound
            }
            LookupError::NotReady { .. } => ErrorCode::ModelNotReady,
        };
        ApiError::new(code, err.to_string())
    }
}

/// Maps an explanation's failure for `model` to its answer, logging what the client is not told.
pub(crate) fn explain_error(model: &std::sync::Arc<ModelVersion>, err: ExplainError) -> ApiError {
    let name = &model.name;
    let error = match err {
        ExplainError::Unavailable(_) => {
            ApiError::new(ErrorCode::ExplainUnavailable, err.to_string())
        }
        ExplainError::TooCostly(_) => ApiError::new(ErrorCode::ExplainTooCostly, err.to_string()),
        ExplainError::Invalid(_) => ApiError::new(ErrorCode::InvalidInput, err.to_string()),
        ExplainError::TooManyRows { .. } => {
            ApiError::new(ErrorCode::BatchTooLarge, err.to_string())
        }
        ExplainError::Overloaded => ApiError::new(
            ErrorCode::Overloaded,
            format!(
                "model `{name}`'s explanation queue (`queue_capacity` under [explain] in its \
                 warden.toml) is full; retry after the Retry-After delay"
            ),
        ),
        ExplainError::Deadline(_) => ApiError::new(
            ErrorCode::DeadlineExceeded,
            format!(
                "the explanation of model `{name}` did not finish within its deadline (the \
                 request's, or `timeout_ms` under [explain]); send fewer rows"
            ),
        ),
        ExplainError::Engine(cause) => {
            ApiError::internal(&format!("explaining model `{name}`: {cause}"))
        }
    };
    error.about(model)
}

/// A model with no background set, asked for an explanation.
pub(crate) fn explain_unavailable(model: &std::sync::Arc<ModelVersion>) -> ApiError {
    explain_error(
        model,
        ExplainError::Unavailable(format!(
            "model `{}` version {} has no background set to explain against; store one with \
             `warden init MODEL.onnx --name {} --repository DIR --data TRAIN.csv` (it writes \
             background.jsonl and `[explain]` in warden.toml) and reload",
            model.name, model.version, model.name
        )),
    )
}

/// Maps a prediction failure of `model` to its answer, logging what the client is not told.
pub(crate) fn predict_error(model: &std::sync::Arc<ModelVersion>, err: PredictError) -> ApiError {
    predict_error_code(model, err).about(model)
}

fn predict_error_code(model: &ModelVersion, err: PredictError) -> ApiError {
    match err {
        PredictError::Invalid(violations) => ApiError::invalid_input(violations),
        PredictError::BatchTooLarge { .. } => {
            ApiError::new(ErrorCode::BatchTooLarge, err.to_string())
        }
        PredictError::NoRowContract(_) => ApiError::new(ErrorCode::InvalidInput, err.to_string()),
        PredictError::Infer(InferError::Overloaded) => ApiError::new(
            ErrorCode::Overloaded,
            format!(
                "model `{}` is at capacity: its queue (`queue_capacity` under [batching] in its \
                 warden.toml) is full; retry after the Retry-After delay",
                model.name
            ),
        ),
        PredictError::Infer(InferError::DeadlineExceeded(waited)) => ApiError::new(
            ErrorCode::DeadlineExceeded,
            format!(
                "model `{}` did not answer within the request's deadline ({} ms); allow longer with x-timeout-ms (HTTP) or a longer call deadline (gRPC)",
                model.name,
                waited.as_millis()
            ),
        ),
        PredictError::Infer(InferError::WorkerStopped) => ApiError::new(
            ErrorCode::ModelNotReady,
            format!("model `{}` is not running", model.name),
        ),
        PredictError::InvalidOutput(_) => ApiError::new(
            ErrorCode::InvalidOutput,
            format!(
                "model `{}` version {} produced an invalid output; the values are withheld",
                model.name, model.version
            ),
        ),
        PredictError::Infer(InferError::Runtime(cause)) => ApiError::internal(&cause),
        PredictError::Encode(cause) => ApiError::internal(&cause),
    }
}
