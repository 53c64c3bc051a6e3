//! What a protocol hands the front door: a [`Codec`], one value per request holding the request
//! as it came off the wire and what the protocol needs to answer it. The door calls it in a
//! fixed order (check, decode, release, encode); the protocol never calls the contract gate or
//! the scheduler itself, so a new protocol is a codec and its header and status translation.

use warden_contract::RowSource;
use warden_runtime::NamedTensor;

use crate::outcome::error::ApiError;
use crate::serving::{ExplainAsk, Explanation, ModelVersion, PredictError, TensorRequest};

/// A request's inputs as its protocol decoded them, before the contract gate.
pub enum Inputs<'a> {
    /// Tensors (KServe V2 over REST or gRPC).
    Tensors(TensorRequest),
    /// Rows by feature name, read one at a time from the request (the row API).
    Rows(&'a dyn RowSource),
}

impl std::fmt::Debug for Inputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Inputs::Tensors(tensors) => f.debug_tuple("Tensors").field(tensors).finish(),
            Inputs::Rows(rows) => f.debug_tuple("Rows").field(&rows.rows()).finish(),
        }
    }
}

/// One request in one protocol's wire format.
pub trait Codec: Send + 'static {
    /// The protocol's answer, before its header and status translation.
    type Answer: Send + 'static;

    /// The checks that need no model (strict JSON), made before the model is looked up, so a
    /// malformed body is called malformed whatever it names. Runs where decoding runs.
    fn check(&mut self) -> Result<(), ApiError> {
        Ok(())
    }

    /// The inputs for `model`, checked against its graph's signature as far as the wire format
    /// lets the codec locate problems. CPU-bound; runs off the async runtime for large bodies.
    /// The codec keeps what it needs to encode the answer (the request id, the outputs asked
    /// for as binary).
    fn decode(&mut self, model: &ModelVersion) -> Result<Inputs<'_>, PredictError>;

    /// Drops the request's body once its inputs are admitted: the answer may take a while and
    /// the body's bytes are no longer needed.
    fn release(&mut self);

    /// What the request asks to have explained (the `:explain` verb, V2's `contributions`
    /// output), known once the body is checked and decoded; `None` for a plain prediction.
    fn explain(&self) -> Option<&ExplainAsk> {
        None
    }

    /// The explanation of the rows, handed over before [`Codec::encode`] when
    /// [`Codec::explain`] asked for one.
    fn attach(&mut self, _explanation: Explanation) {}

    /// The answer to `rows` rows whose `outputs` `model` gave (already through the guards).
    fn encode(
        self,
        model: &ModelVersion,
        outputs: Vec<NamedTensor>,
        rows: usize,
    ) -> Result<Self::Answer, ApiError>;
}
