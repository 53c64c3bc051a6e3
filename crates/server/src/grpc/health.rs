//! `grpc.health.v1.Health`, what Kubernetes' gRPC probes and `grpc_health_probe` call, answered
//! from the registry at each call rather than from a status set once at start: the empty
//! service name and `inference.GRPCInferenceService` are SERVING while the server is ready
//! (every model loaded, or with `--allow-partial` at least one), as `/v2/health/ready` says;
//! a model's name is SERVING while that model is served; anything else is NOT_FOUND (`Check`)
//! or SERVICE_UNKNOWN (`Watch`). `Watch` sends the status, then each change, checked once a
//! second, until the client goes away.

use std::time::Duration;

use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::serving::ModelEntry;
use crate::state::AppState;

/// The health service over the server's state.
pub(super) fn service(state: AppState) -> HealthServer<Registry> {
    HealthServer::new(Registry { state })
}

/// Health answered from the model registry.
#[derive(Debug)]
pub(super) struct Registry {
    state: AppState,
}

impl Registry {
    /// The status of `service`; `None` when no such service or model is known.
    fn status(&self, service: &str) -> Option<ServingStatus> {
        let serving = |yes: bool| {
            if yes {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
        };
        match service {
            "" | "inference.GRPCInferenceService" => Some(serving(self.state.registry.is_ready())),
            model => self
                .state
                .registry
                .snapshot()
                .get(model)
                .map(|entry| serving(matches!(entry, ModelEntry::Ready(_)))),
        }
    }
}

#[tonic::async_trait]
impl Health for Registry {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        match self.status(&service) {
            Some(status) => Ok(Response::new(HealthCheckResponse {
                status: status.into(),
            })),
            None => Err(Status::not_found(format!(
                "unknown service `{}`; ask \"\", inference.GRPCInferenceService or a model's name",
                warden_contract::clip(&service)
            ))),
        }
    }

    type WatchStream = ReceiverStream<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        let (send, receive) = tokio::sync::mpsc::channel(1);
        let registry = Registry {
            state: self.state.clone(),
        };
        tokio::spawn(async move {
            let mut last = None;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let status = registry
                    .status(&service)
                    .unwrap_or(ServingStatus::ServiceUnknown);
                if last != Some(status) {
                    let answer = HealthCheckResponse {
                        status: status.into(),
                    };
                    if send.send(Ok(answer)).await.is_err() {
                        return;
                    }
                    last = Some(status);
                } else if send.is_closed() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(receive)))
    }
}
