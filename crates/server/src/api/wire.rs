//! The JSON bodies of the routes other than V2 inference (whose types live with their codec in
//! [`crate::protocol::v2`]). Handlers answer with these types and the OpenAPI document is
//! derived from them, so the two cannot drift.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::protocol::v2::TensorMetadata;

/// `GET /v2/health/live`
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Live {
    pub live: bool,
}

/// `GET /v2/health/ready` when every model is ready.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Ready {
    pub ready: bool,
}

/// `GET /v2`
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ServerMetadata {
    pub name: &'static str,
    pub version: &'static str,
    pub extensions: Vec<&'static str>,
}

/// `GET /v2/models/{model}[/versions/{version}]`
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ModelMetadata<'a> {
    pub name: &'a str,
    pub versions: Vec<String>,
    /// The engine serving it: `onnxruntime` or `tract`.
    pub platform: &'static str,
    pub inputs: Vec<TensorMetadata<'a>>,
    pub outputs: Vec<TensorMetadata<'a>>,
    /// The graph file's SHA-256.
    pub sha256: &'a str,
}

/// `GET /v2/models/{model}[/versions/{version}]/ready` when it is.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ModelReady<'a> {
    pub name: &'a str,
    pub version: String,
    pub ready: bool,
}

/// `POST /v1/models/{model}:predict`: one object per row, keyed by feature name (or an array
/// of values in feature order).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // the handler reads the body as JSON; this type documents it
#[schema(example = json!({"instances": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]}))]
pub(super) struct RowRequest {
    #[schema(value_type = Vec<Object>)]
    pub instances: Vec<Map<String, Value>>,
}

/// `POST /v1/models/{model}:explain`: the rows to explain, as `:predict` takes them.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // the handler reads the body as JSON; this type documents it
#[schema(example = json!({"instances": [{"age": 42, "income": 52000, "debt_ratio": 0.3, "country": "US", "employment": "salaried"}], "top_k": 3}))]
pub(super) struct ExplainRequest {
    #[schema(value_type = Vec<Object>)]
    pub instances: Vec<Map<String, Value>>,
    /// The strongest reasons to list per row, by magnitude (0 to 1000); default: none.
    pub top_k: Option<u32>,
    /// The class to explain (a label); default: the second of two classes, else each row's
    /// predicted class.
    pub class: Option<String>,
    /// `auto` (default: from the model's structure where it allows, else exact enumeration),
    /// `tree`, `linear` or `exact`.
    pub method: Option<String>,
}

/// The answer of `:explain`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ExplainResponse<'a> {
    pub model: ModelIdentity<'a>,
    #[serde(flatten)]
    pub explanation: crate::protocol::explain::ExplainAnswer,
}

/// The model version that answered.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ModelIdentity<'a> {
    pub name: &'a str,
    pub version: String,
    pub sha256: &'a str,
}

/// The answer of the row API: one prediction per row, in order.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RowResponse<'a> {
    pub predictions: Vec<Value>,
    pub model: ModelIdentity<'a>,
}
