//! `inference.GRPCInferenceService`: the Open Inference Protocol's six calls, answered from the
//! same registry as the REST routes, `ModelInfer` through the same front door, each counted in
//! the metrics (with `protocol="grpc"`) and logged with its request id like an HTTP request.

use std::sync::Arc;
use std::time::Instant;

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::inference::grpc_inference_service_server::GrpcInferenceService;
use super::inference::model_metadata_response::TensorMetadata;
use super::inference::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse,
    ModelReadyRequest, ModelReadyResponse, ServerLiveRequest, ServerLiveResponse,
    ServerMetadataRequest, ServerMetadataResponse, ServerReadyRequest, ServerReadyResponse,
};
use crate::front_door::{Call, Protocol};
use crate::outcome::ServedBy;
use crate::outcome::error::ApiError;
use crate::protocol::v2::GrpcCodec;
use crate::serving::ModelVersion;
use crate::state::AppState;
use crate::transport::deadline::{Arrived, Deadline};
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
        arrived: Option<&Arrived>,
        work: impl Future<Output = Result<(T, Option<ServedBy>), ApiError>>,
    ) -> Result<Response<T>, Status> {
        let started = arrived.map_or_else(Instant::now, |arrived| arrived.0);
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
                    insert_text(metadata, "x-model-name", &served.model.name);
                    insert_text(metadata, "x-model-version", &served.model.version_label);
                    insert_text(metadata, "x-model-sha256", &served.model.sha256);
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
        request_id: String,
        deadline: Deadline,
        sticky: &axum::http::HeaderMap,
    ) -> Result<(ModelInferResponse, Option<ServedBy>), ApiError> {
        let answered = self
            .state
            .door
            .infer(Call {
                protocol: Protocol::Grpc,
                sticky,
                request_id,
                model: request.model_name.clone(),
                version: (!request.model_version.is_empty()).then(|| request.model_version.clone()),
                deadline,
                size: prost::Message::encoded_len(&request),
                codec: GrpcCodec::new(request),
            })
            .await?;
        Ok((answered.answer, Some(answered.by)))
    }
}

fn insert_text(metadata: &mut MetadataMap, key: &'static str, value: &str) {
    if let Ok(value) = MetadataValue::try_from(value) {
        metadata.insert(key, value);
    }
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
            request.extensions().get::<Arrived>(),
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
            request.extensions().get::<Arrived>(),
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
        let (metadata, extensions, asked) = request.into_parts();
        self.call(
            "/inference.GRPCInferenceService/ModelReady",
            &metadata,
            extensions.get::<Arrived>(),
            async {
                match self.model(&asked.name, &asked.version) {
                    Ok(model) => Ok((
                        ModelReadyResponse { ready: true },
                        Some(ServedBy::of(&model, None)),
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
            request.extensions().get::<Arrived>(),
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
        let (metadata, extensions, asked) = request.into_parts();
        self.call(
            "/inference.GRPCInferenceService/ModelMetadata",
            &metadata,
            extensions.get::<Arrived>(),
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
                Ok((answer, Some(ServedBy::of(&model, None))))
            },
        )
        .await
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let (metadata, extensions, asked) = request.into_parts();
        let request_id = super::request_id(metadata.as_ref().get("x-request-id"));
        self.call(
            "/inference.GRPCInferenceService/ModelInfer",
            &metadata,
            extensions.get::<Arrived>(),
            async {
                // Fixed at arrival by the message reader (`super::bounded_message`).
                let deadline = extensions.get::<Deadline>().copied().unwrap_or_else(|| {
                    Deadline::new(Instant::now(), None, self.state.request_timeout)
                });
                self.infer(asked, request_id.clone(), deadline, metadata.as_ref())
                    .await
            },
        )
        .await
    }
}
