//! `inference.GRPCInferenceService`: the Open Inference Protocol's six calls, answered from the
//! same registry and serving path as the REST routes, each counted in the metrics (with
//! `protocol="grpc"`) and logged with its request id like an HTTP request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::codec;
use super::inference::grpc_inference_service_server::GrpcInferenceService;
use super::inference::model_metadata_response::TensorMetadata;
use super::inference::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
    ModelReadyRequest, ModelReadyResponse, ServerLiveRequest, ServerLiveResponse,
    ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
};
use crate::outcome::error::{ApiError, ErrorCode};
use crate::outcome::{ServedBy, decode_error, predict_error};
use crate::serving::ModelVersion;
use crate::state::AppState;
use crate::state::DecodeSlot;
use warden_runtime::TensorSpec;

/// The inference service over the server's state.
#[derive(Debug, Clone)]
pub struct Inference {
    state: AppState,
}

impl Inference {
    pub fn new(state: AppState) -> Inference {
        Inference { state }
    }

    /// Runs one call: its answer or error as gRPC, counted and logged under its request id
    /// (the client's `x-request-id` metadata, else a new one, returned in the answer).
    async fn call<T>(
        &self,
        route: &'static str,
        metadata: &MetadataMap,
        work: impl Future<Output = Result<(T, Option<ServedBy>), ApiError>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let request_id = super::request_id(metadata.as_ref().get("x-request-id"));
        let span = tracing::info_span!("request", request_id = %request_id);
        let outcome = work.instrument(span).await;
        let (served, error) = match &outcome {
            Ok((_, served)) => (served.clone(), None),
            Err(error) => (error.served_by(), Some(error)),
        };
        super::answered(
            &self.state,
            route,
            &request_id,
            served.as_ref(),
            error,
            started.elapsed(),
        );
        let id = MetadataValue::try_from(request_id.as_str()).ok();
        match outcome {
            Ok((answer, served)) => {
                let mut response = Response::new(answer);
                let metadata = response.metadata_mut();
                if let Some(id) = id {
                    metadata.insert("x-request-id", id);
                }
                if let Some(served) = served {
                    insert_text(metadata, "x-model-name", &served.model);
                    insert_text(metadata, "x-model-version", &served.version.to_string());
                }
                Ok(response)
            }
            Err(error) => {
                let mut status = super::status(&error);
                if let Some(id) = id {
                    status.metadata_mut().insert("x-request-id", id);
                }
                Err(status)
            }
        }
    }

    fn model(&self, name: &str, version: &str) -> Result<Arc<ModelVersion>, ApiError> {
        let version = (!version.is_empty()).then_some(version);
        Ok(self.state.registry.get(name, version)?)
    }

    async fn infer(
        &self,
        request: ModelInferRequest,
        deadline: Instant,
    ) -> Result<(ModelInferResponse, Option<ServedBy>), ApiError> {
        let model = self.model(&request.model_name, &request.model_version)?;
        let checking = Arc::clone(&model);
        let size = prost::Message::encoded_len(&request);
        // A large message is checked on the blocking pool under a permit, as a large body is.
        let slot = DecodeSlot::acquire(&self.state, size).await?;
        let raw = !request.raw_input_contents.is_empty();
        let id = request.id.clone();
        let admitted = slot
            .run(move || {
                let decoded = codec::decode(
                    &request,
                    &checking.signature,
                    checking.contract.max_batch_size,
                )
                .map_err(|err| decode_error(&checking, err))?;
                checking.admit_tensors(decoded)
            })
            .await?
            .map_err(|err| predict_error(&model, err))?;
        drop(slot);
        let answer = model
            .infer(admitted, deadline)
            .await
            .map_err(|err| predict_error(&model, err))?;
        let response = codec::encode(&model.name, model.version, id, answer.outputs, raw);
        Ok((response, Some(served_by(&model, Some(answer.timings)))))
    }
}

fn served_by(model: &ModelVersion, timings: Option<crate::serving::Timings>) -> ServedBy {
    ServedBy {
        model: model.name.clone(),
        version: model.version,
        timings,
    }
}

fn insert_text(metadata: &mut MetadataMap, key: &'static str, value: &str) {
    if let Ok(value) = MetadataValue::try_from(value) {
        metadata.insert(key, value);
    }
}

/// When the call must be answered: gRPC's own deadline (`grpc-timeout`, which every gRPC
/// client sends for a call with a timeout), else the server's default request timeout.
fn deadline(state: &AppState, metadata: &MetadataMap) -> Result<Instant, ApiError> {
    let timeout = match metadata.get("grpc-timeout") {
        None => state.request_timeout,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(parse_grpc_timeout)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidInput,
                    "grpc-timeout must be 1 to 8 digits and a unit (H, M, S, m, u or n)",
                )
            })?,
    };
    Ok(Instant::now() + timeout)
}

/// `grpc-timeout`'s format: up to eight digits and a unit.
pub(super) fn parse_grpc_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value * 3600),
        "M" => Duration::from_secs(value * 60),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

fn tensors(specs: &[TensorSpec]) -> Vec<TensorMetadata> {
    specs
        .iter()
        .map(|spec| TensorMetadata {
            name: spec.name.clone(),
            datatype: spec.data_type.protocol_name().to_owned(),
            shape: spec.shape.clone(),
        })
        .collect()
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(
        &self,
        request: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        self.call(
            "/inference.GRPCInferenceService/ServerLive",
            request.metadata(),
            async { Ok((ServerLiveResponse { live: true }, None)) },
        )
        .await
    }

    async fn server_ready(
        &self,
        request: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        self.call(
            "/inference.GRPCInferenceService/ServerReady",
            request.metadata(),
            async {
                let ready = self.state.registry.is_ready();
                Ok((ServerReadyResponse { ready }, None))
            },
        )
        .await
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let (metadata, _, asked) = request.into_parts();
        self.call(
            "/inference.GRPCInferenceService/ModelReady",
            &metadata,
            async {
                match self.model(&asked.name, &asked.version) {
                    Ok(model) => Ok((
                        ModelReadyResponse { ready: true },
                        Some(served_by(&model, None)),
                    )),
                    // A model that is loading, failed, unloaded or unknown is not ready: the
                    // readiness call answers, as tritonclient's `is_model_ready` expects, and as
                    // the REST route's 404/503 reads to the HTTP client.
                    Err(_) => Ok((ModelReadyResponse { ready: false }, None)),
                }
            },
        )
        .await
    }

    async fn server_metadata(
        &self,
        request: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        self.call(
            "/inference.GRPCInferenceService/ServerMetadata",
            request.metadata(),
            async {
                Ok((
                    ServerMetadataResponse {
                        name: "warden".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        extensions: vec!["binary_tensor_data".into(), "model_repository".into()],
                    },
                    None,
                ))
            },
        )
        .await
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let (metadata, _, asked) = request.into_parts();
        self.call(
            "/inference.GRPCInferenceService/ModelMetadata",
            &metadata,
            async {
                let model = self.model(&asked.name, &asked.version)?;
                let answer = ModelMetadataResponse {
                    name: model.name.clone(),
                    versions: vec![model.version.to_string()],
                    platform: model.platform.to_owned(),
                    inputs: tensors(&model.signature.inputs),
                    outputs: tensors(&model.signature.outputs),
                    properties: [("sha256".to_owned(), model.sha256.clone())].into(),
                };
                Ok((answer, Some(served_by(&model, None))))
            },
        )
        .await
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let (metadata, _, asked) = request.into_parts();
        self.call(
            "/inference.GRPCInferenceService/ModelInfer",
            &metadata,
            async {
                let deadline = deadline(&self.state, &metadata)?;
                self.infer(asked, deadline).await
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_the_specification_writes_them() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("5000u"), Some(Duration::from_millis(5)));
        assert_eq!(parse_grpc_timeout("123456789m"), None, "nine digits");
        assert_eq!(parse_grpc_timeout("m"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }
}
