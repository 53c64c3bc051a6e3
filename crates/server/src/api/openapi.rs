//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, generated from the code.
//!
//! Success bodies and request bodies come from the handlers' `#[utoipa::path]` annotations and
//! the wire types they answer with. Error answers are added here from the one error table
//! ([`ErrorCode::ALL`], [`ViolationType::ALL`]), per route from [`errors_of`], so a new code or
//! violation type appears in the document without anyone editing it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use warden_contract::ViolationType;

use super::path::ApiPath;
use super::{drift, model_openapi, operations, rollout, served, v1, v2};
use crate::auth::Access;
use crate::outcome::ServedBy;
use crate::outcome::error::{ApiError, ErrorCode};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "warden",
        description = "A model server that cannot fail silently: KServe V2 (Open Inference Protocol) and a row API in TF Serving's convention, with every error a stable `code` from one table."
    ),
    paths(
        v2::live,
        v2::ready,
        v2::server_metadata,
        v2::model_metadata,
        v2::model_version_metadata,
        v2::model_ready,
        v2::model_version_ready,
        v2::infer,
        v2::infer_version,
        v1::predict,
        v1::predict_version,
        v1::explain,
        v1::explain_version,
        drift::drift,
        drift::drift_version,
        rollout::report,
        rollout::change,
        model_openapi,
        model_version_openapi,
        operations::metrics,
        operations::index,
        operations::load,
        operations::unload,
        openapi_json,
    )
)]
struct ApiDoc;

/// `GET /v1/models/{model}/openapi.json`
#[utoipa::path(get, path = "/v1/models/{model}/openapi.json", tag = "rows",
    params(("model" = String, Path, description = "The model's name")),
    responses((status = 200, description = "The OpenAPI 3.1 document of this model's row API, typed from its contract", body = Object)))]
pub(super) async fn model_openapi(
    State(state): State<AppState>,
    ApiPath(model): ApiPath<String>,
) -> Result<Response, ApiError> {
    let model = state.registry.get(&model, None)?;
    Ok(served(
        ServedBy::of(&model, None),
        Json(model_openapi::document(&model, document())).into_response(),
    ))
}

/// `GET /v1/models/{model}/versions/{version}/openapi.json`
#[utoipa::path(get, path = "/v1/models/{model}/versions/{version}/openapi.json", tag = "rows",
    params(("model" = String, Path, description = "The model's name"),
           ("version" = String, Path, description = "A loaded version number (see the manifest's `version_policy`)")),
    responses((status = 200, description = "As `/v1/models/{model}/openapi.json`, for that version", body = Object)))]
pub(super) async fn model_version_openapi(
    State(state): State<AppState>,
    ApiPath((model, version)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let model = state.registry.get(&model, Some(&version))?;
    Ok(served(
        ServedBy::of(&model, None),
        Json(model_openapi::document(&model, document())).into_response(),
    ))
}

/// `GET /openapi.json`
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", body = Object)))]
pub(super) async fn openapi_json() -> Json<serde_json::Value> {
    Json(document().clone())
}

/// The whole document, built once (it depends on nothing but the code).
pub(super) fn document() -> &'static serde_json::Value {
    static DOCUMENT: OnceLock<serde_json::Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert("ErrorCode".into(), RefOr::T(error_code_schema()));
    components
        .schemas
        .insert("Violation".into(), RefOr::T(violation_schema()));
    components
        .schemas
        .insert("ErrorBody".into(), RefOr::T(error_body_schema()));
    components.security_schemes.insert(
        "bearer".into(),
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            add_errors(operation, path);
            // Routes that need a token when tokens are configured; health is always open.
            let open = Access::of(path) == Access::Open;
            operation.security = Some(if open {
                vec![SecurityRequirement::default()]
            } else {
                vec![
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                    SecurityRequirement::default(),
                ]
            });
        }
    }
    serde_json::to_value(&doc).unwrap_or_default()
}

/// The error codes a route can answer with.
pub(super) fn errors_of(path: &str) -> Vec<ErrorCode> {
    let mut codes = vec![ErrorCode::Internal];
    if Access::of(path) != Access::Open {
        codes.push(ErrorCode::Unauthorized);
    }
    if path == "/v2/health/ready" {
        codes.push(ErrorCode::ModelNotReady);
    }
    let model_route = path.starts_with("/v2/models/") || path.starts_with("/v1/models/");
    if model_route {
        codes.extend([ErrorCode::ModelNotFound, ErrorCode::ModelNotReady]);
    }
    let rows = path.ends_with(":predict") || path.ends_with(":explain");
    if path.ends_with("/infer") || rows {
        codes.extend([
            ErrorCode::MalformedJson,
            ErrorCode::InvalidInput,
            ErrorCode::BatchTooLarge,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::InvalidOutput,
            ErrorCode::Overloaded,
            ErrorCode::DeadlineExceeded,
        ]);
    }
    if rows {
        codes.push(ErrorCode::NotFound);
    }
    // V2 explains when asked for the output `contributions`.
    if path.ends_with("/infer") || path.ends_with(":explain") {
        codes.extend([ErrorCode::ExplainUnavailable, ErrorCode::ExplainTooCostly]);
    }
    if Access::of(path) == Access::Admin {
        codes.extend([ErrorCode::Forbidden, ErrorCode::NotFound]);
        if path.contains("{model}") {
            codes.push(ErrorCode::ModelNotFound);
        }
        if path.ends_with("/load") {
            codes.push(ErrorCode::LoadFailed);
        }
        if path.ends_with("/rollout") {
            codes.extend([
                ErrorCode::InvalidInput,
                ErrorCode::ModelNotReady,
                ErrorCode::PayloadTooLarge,
            ]);
        }
    }
    codes
}

/// One response per status the route's error codes use, each an `ErrorBody`.
fn add_errors(operation: &mut Operation, path: &str) {
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in errors_of(path) {
        by_status
            .entry(code.status().as_u16())
            .or_default()
            .push(code);
    }
    for (status, codes) in by_status {
        let description = codes
            .iter()
            .map(|c| format!("`{}`: {}", c.as_str(), c.meaning()))
            .collect::<Vec<_>>()
            .join("; ");
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .insert(status.to_string(), RefOr::T(response));
    }
}

fn error_code_schema() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("A stable error code from the README's error table"))
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .build(),
    )
}

fn violation_schema() -> Schema {
    let segment = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        );
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("One problem in a request, located precisely"))
            .property(
                "loc",
                ArrayBuilder::new()
                    .items(segment)
                    .description(Some("Where: keys and indexes into the request body")),
            )
            .required("loc")
            .property("msg", ObjectBuilder::new().schema_type(Type::String))
            .required("msg")
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(ViolationType::ALL.iter().map(|t| t.as_str()))),
            )
            .required("type")
            .build(),
    )
}

fn error_body_schema() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "Every error answer: a stable code, a message for humans, and each violation when there are any",
            ))
            .property("code", Ref::from_schema_name("ErrorCode"))
            .required("code")
            .property("error", ObjectBuilder::new().schema_type(Type::String))
            .required("error")
            .property(
                "details",
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("Violation"))
                    .max_items(Some(warden_contract::MAX_LISTED_VIOLATIONS)),
            )
            .property(
                "details_omitted",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .description(Some(
                        "How many more violations were found than `details` lists (it lists at most the first 100)",
                    )),
            )
            .build(),
    )
}
