//! The V2 REST codec for the front door: a body's JSON part (and, with the binary tensor
//! extension, the bytes after it) in, the JSON (and binary) answer out.

use bytes::Bytes;
use warden_runtime::NamedTensor;

use super::contributions::{CONTRIBUTIONS, ContributionsAsk};
use super::decode::{BinaryOutputs, decode_request};
use super::encode::{EncodedResponse, encode_response};
use crate::front_door::{Codec, Inputs};
use crate::outcome::error::ApiError;
use crate::protocol::json::strict_text;
use crate::serving::{ExplainAsk, Explanation, ModelVersion, PredictError, TensorRequest};

/// One V2 REST inference request.
#[derive(Debug)]
pub struct RestCodec {
    /// The JSON part.
    json: Bytes,
    /// The binary tensor data after it (empty without the extension).
    binary: Bytes,
    id: Option<String>,
    binary_outputs: BinaryOutputs,
    contributions: ContributionsAsk,
}

impl RestCodec {
    /// A request whose body was split at `Inference-Header-Content-Length` (all JSON without it).
    pub fn new(json: Bytes, binary: Bytes) -> RestCodec {
        RestCodec {
            json,
            binary,
            id: None,
            binary_outputs: BinaryOutputs::default(),
            contributions: ContributionsAsk::default(),
        }
    }
}

impl Codec for RestCodec {
    type Answer = EncodedResponse;

    fn check(&mut self) -> Result<(), ApiError> {
        self.json = strict_text(std::mem::take(&mut self.json))?;
        Ok(())
    }

    fn decode(&mut self, model: &ModelVersion) -> Result<Inputs<'_>, PredictError> {
        let request = decode_request(
            &self.json,
            &self.binary,
            &model.signature,
            model.contract.max_request_rows,
        )
        .map_err(|err| err.for_model(&model.name))?;
        self.id = request.id;
        self.binary_outputs = request.binary_outputs;
        let outputs = self.contributions.engine_outputs(
            model,
            request.outputs,
            request.contributions,
            request.listed_any,
        );
        Ok(Inputs::Tensors(TensorRequest {
            inputs: request.inputs,
            outputs,
            rows: request.rows,
        }))
    }

    fn release(&mut self) {
        self.json = Bytes::new();
        self.binary = Bytes::new();
    }

    fn explain(&self) -> Option<&ExplainAsk> {
        self.contributions.ask.as_ref()
    }

    fn attach(&mut self, explanation: Explanation) {
        self.contributions.explanation = Some(explanation);
    }

    fn encode(
        self,
        model: &ModelVersion,
        outputs: Vec<NamedTensor>,
        _rows: usize,
    ) -> Result<EncodedResponse, ApiError> {
        let (outputs, described) = self.contributions.finish(outputs);
        encode_response(
            &model.name,
            model.version,
            self.id.as_deref(),
            &outputs,
            &self.binary_outputs,
            described.as_ref().map(|p| (CONTRIBUTIONS, p)),
        )
        .map_err(|err| ApiError::internal(&err))
    }
}
