//! The front door: the one inference pipeline every protocol goes through, written once.
//!
//! A protocol turns its request into a [`Call`] (the model it names, its deadline fixed at
//! arrival, its body's size and a [`Codec`] holding the body) and hands it to [`FrontDoor::infer`],
//! which, in order:
//!
//! 1. waits for a decode slot (large bodies decode off the runtime, a few at a time), no longer
//!    than the request's deadline;
//! 2. has the codec check the body (strict JSON), looks the model version up, has the codec
//!    decode the inputs, and admits them through the version's contract gate; then drops the
//!    body;
//! 3. runs the admitted inputs on the version (the scheduler, the engine, the output guards and
//!    the drift monitor: `serving::ModelVersion::infer`) until the deadline;
//! 4. tells every [`Observer`] about the request, once, whatever its outcome;
//! 5. has the codec encode the answer, and returns it with the version that answered
//!    ([`ServedBy`]: name, version, sha256, timings), or the error from the one error table,
//!    marked with the version it is about.
//!
//! The protocols (`api` for REST, `grpc`) only translate headers and statuses around it and
//! record the outcome (`outcome::record`: the log line and the metrics, for every request,
//! inference or not). Nothing above this layer calls the contract gate or the scheduler.
//!
//! Why its own layer rather than part of `serving`: the door maps failures onto the error table
//! (`outcome`, which sits above `serving` because it maps serving's errors) and bounds waits by
//! the transport's deadline, so it sits above both, and below the protocols.

mod codec;
mod observer;
mod slot;

pub use codec::{Codec, Inputs};
pub use observer::{Observed, Observer, Protocol};
pub use slot::LARGE_BODY_BYTES;

use std::sync::Arc;

use tokio::sync::Semaphore;
use warden_runtime::NamedTensor;

use crate::outcome::error::ApiError;
use crate::outcome::{ServedBy, explain_error, explain_unavailable, predict_error};
use crate::serving::{
    Admitted, Leg, LookupError, ModelRegistry, ModelVersion, Route, ShadowSink, StickyKey, Timings,
};
use crate::stage::{self, Stage};
use crate::transport::deadline::Deadline;
use slot::DecodeSlot;

/// What the door needs of the server: the served models, the decode permits and the observers.
#[derive(Debug, Clone)]
pub struct FrontDoor {
    registry: Arc<ModelRegistry>,
    /// Permits to decode a large body or message (one per CPU).
    large_bodies: Arc<Semaphore>,
    observers: Arc<[Arc<dyn Observer>]>,
    /// Where shadow runs' answers go besides the rollout's comparison (the prediction log).
    shadow_sink: Option<Arc<dyn ShadowSink>>,
}

/// One inference request, as its protocol hands it to the door.
#[derive(Debug)]
pub struct Call<'a, C> {
    pub protocol: Protocol,
    /// The request's headers (or gRPC metadata), for a rollout's sticky key.
    pub sticky: &'a (dyn StickyKey + Sync),
    pub request_id: String,
    /// The model's name and the version asked for (`None`: the served one).
    pub model: String,
    pub version: Option<String>,
    pub deadline: Deadline,
    /// The body's size in bytes (whether its decoding is large).
    pub size: usize,
    pub codec: C,
}

/// An answer, and the version that gave it.
#[derive(Debug)]
pub struct Served<A> {
    pub answer: A,
    pub by: ServedBy,
}

/// How far a request got before it failed, for the observers.
struct Refused {
    model: Option<Arc<ModelVersion>>,
    error: ApiError,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Refused {
        Refused { model: None, error }
    }
}

impl FrontDoor {
    /// A door to `registry`'s models, decoding at most `decode_permits` large bodies at once.
    pub fn new(
        registry: Arc<ModelRegistry>,
        decode_permits: usize,
        observers: Vec<Arc<dyn Observer>>,
    ) -> FrontDoor {
        FrontDoor {
            registry,
            large_bodies: Arc::new(Semaphore::new(decode_permits.max(1))),
            observers: observers.into(),
            shadow_sink: None,
        }
    }

    /// The same door, with `observers` seeing every request it answers (added to any it has).
    pub fn with_observers(mut self, observers: Vec<Arc<dyn Observer>>) -> FrontDoor {
        let all: Vec<Arc<dyn Observer>> = self.observers.iter().cloned().chain(observers).collect();
        self.observers = all.into();
        self
    }

    /// The same door, telling `sink` each shadow run's answer.
    pub fn with_shadow_sink(mut self, sink: Arc<dyn ShadowSink>) -> FrontDoor {
        self.shadow_sink = Some(sink);
        self
    }

    /// Runs one inference request through the pipeline (see the module's documentation).
    pub async fn infer<C: Codec>(&self, call: Call<'_, C>) -> Result<Served<C::Answer>, ApiError> {
        let Call {
            protocol,
            sticky,
            request_id,
            model,
            version,
            deadline,
            size,
            codec,
        } = call;
        let report = |model: Option<&ModelVersion>,
                      inputs: Option<&Arc<[NamedTensor]>>,
                      rows: usize,
                      outcome: Result<&[NamedTensor], &ApiError>,
                      timings: Option<Timings>| {
            if self.observers.is_empty() {
                return;
            }
            let observed = Observed {
                protocol,
                request_id: &request_id,
                model,
                inputs,
                rows,
                outcome,
                timings,
                elapsed: deadline.arrived.elapsed(),
            };
            for observer in self.observers.iter() {
                observer.observe(&observed);
            }
        };
        // Routed before the slot (the sticky key borrows the request); a lookup error is
        // answered after the body's own check, as before.
        let route = self.registry.route(&model, version.as_deref(), sticky);
        let (mut codec, model, leg, admitted) = match self.admit(route, deadline, size, codec).await
        {
            Ok(admitted) => admitted,
            Err(refused) => {
                report(refused.model.as_deref(), None, 0, Err(&refused.error), None);
                return Err(refused.error);
            }
        };
        let rows = admitted.rows();
        // An explanation is refused before the prediction runs when it cannot be given.
        let explain = match codec.explain().cloned() {
            None => None,
            Some(ask) => {
                let checked = match model.explainer() {
                    None => Err(explain_unavailable(&model)),
                    Some(explainer) => explainer
                        .admit(&ask, rows)
                        .map_err(|err| explain_error(&model, err)),
                };
                if let Err(error) = checked {
                    report(Some(&model), None, rows, Err(&error), None);
                    return Err(error);
                }
                Some((ask, admitted.inputs().to_vec()))
            }
        };
        stage::enter(Stage::Infer);
        let inputs = self
            .observers
            .iter()
            .any(|o| o.wants_inputs(&request_id, &model))
            .then(|| Arc::<[NamedTensor]>::from(admitted.inputs()));
        let budget = deadline.at.saturating_duration_since(deadline.arrived);
        let shadow = leg
            .as_ref()
            .and_then(|leg| leg.prepare_shadow(&admitted, budget))
            .map(|run| match &self.shadow_sink {
                Some(sink) => run.tell(Arc::clone(sink), &request_id, protocol.as_str()),
                None => run,
            });
        let result = model.infer(admitted, deadline.at).await;
        if let Some(leg) = leg {
            leg.finish(result.as_ref(), deadline.arrived.elapsed(), rows, shadow);
        }
        match result {
            Ok(answer) => {
                report(
                    Some(&model),
                    inputs.as_ref(),
                    rows,
                    Ok(&answer.outputs),
                    Some(answer.timings),
                );
                if let Some((ask, inputs)) = explain
                    && let Some(explainer) = model.explainer()
                {
                    let explanation = explainer
                        .explain(inputs, &answer.outputs, rows, &ask, deadline.at)
                        .await
                        .map_err(|err| explain_error(&model, err))?;
                    codec.attach(explanation);
                }
                stage::enter(Stage::Encode);
                let encoded = codec.encode(&model, answer.outputs, rows)?;
                Ok(Served {
                    answer: encoded,
                    by: ServedBy::of(&model, Some(answer.timings)),
                })
            }
            Err(err) => {
                let error = predict_error(&model, err);
                report(Some(&model), inputs.as_ref(), rows, Err(&error), None);
                Err(error)
            }
        }
    }

    /// Steps 1 and 2: a decode slot, the body checked, the version looked up, the inputs
    /// decoded and admitted, the body dropped.
    async fn admit<C: Codec>(
        &self,
        route: Result<Route, LookupError>,
        deadline: Deadline,
        size: usize,
        mut codec: C,
    ) -> Result<(C, Arc<ModelVersion>, Option<Leg>, Admitted), Refused> {
        let slot = DecodeSlot::acquire(&self.large_bodies, size, deadline).await?;
        let admitted = slot
            .run(move || {
                stage::enter(Stage::Decode);
                codec.check()?;
                let Route {
                    version: model,
                    leg,
                } = route.map_err(ApiError::from)?;
                let admitted = match codec.decode(&model) {
                    Ok(inputs) => {
                        stage::enter(Stage::Admit);
                        match inputs {
                            Inputs::Tensors(tensors) => model.admit_tensors(tensors),
                            Inputs::Rows(rows) => model.admit_rows(rows),
                        }
                    }
                    Err(err) => Err(err),
                };
                codec.release();
                match admitted {
                    Ok(admitted) => Ok((codec, model, leg, admitted)),
                    Err(err) => Err(Refused {
                        error: predict_error(&model, err),
                        model: Some(model),
                    }),
                }
            })
            .await?;
        drop(slot);
        admitted
    }
}
