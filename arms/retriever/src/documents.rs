//! `POST /v1/documents`: add documents to the knowledge store.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use service_kit::text::required_text_schema;
use service_kit::{ApiJson, FieldError, Problem};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::store::{KnowledgeStore, NewDocument};

/// Most documents in one request.
pub const MAX_DOCUMENTS: usize = 100;
/// Longest title, in characters.
pub const TITLE_MAX_CHARS: usize = 500;
/// Longest body, in characters.
pub const BODY_MAX_CHARS: usize = 100_000;
/// Longest source, in characters.
pub const SOURCE_MAX_CHARS: usize = 2_048;

pub fn router(store: KnowledgeStore) -> Router {
    Router::new()
        .route("/v1/documents", post(add_documents))
        .with_state(store)
}

#[derive(OpenApi)]
#[openapi(
    paths(add_documents),
    components(schemas(AddDocuments, Document, Added))
)]
struct DocumentsDoc;

pub fn openapi() -> utoipa::openapi::OpenApi {
    DocumentsDoc::openapi()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDocuments {
    /// 1–100 documents.
    #[schema(min_items = 1, max_items = 100)]
    pub documents: Vec<Document>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[schema(schema_with = title_schema)]
    pub title: String,
    #[schema(schema_with = body_schema)]
    pub body: String,
    #[schema(schema_with = source_schema)]
    pub source: String,
}

fn title_schema() -> utoipa::openapi::Object {
    required_text_schema("1–500 characters, not blank, no NUL.", 500)
}

fn body_schema() -> utoipa::openapi::Object {
    required_text_schema("1–100,000 characters, not blank, no NUL.", 100_000)
}

fn source_schema() -> utoipa::openapi::Object {
    required_text_schema(
        "Where it comes from (a URL, a file, a runbook): 1–2,048 characters, not blank, no NUL.",
        2048,
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Added {
    /// The new documents' ids, in request order.
    pub ids: Vec<Uuid>,
}

/// Add documents to the knowledge store (one statement: all or none).
#[utoipa::path(post, path = "/v1/documents", tag = "knowledge", security(("bearer" = [])),
    request_body = AddDocuments,
    responses(
        (status = 201, body = Added),
        (status = 401, body = service_kit::Problem, description = "Missing or invalid bearer token."),
        (status = 413, body = service_kit::Problem, description = "Body too large."),
        (status = 422, body = service_kit::Problem, description = "A field is invalid; `errors` names each."),
        (status = 503, body = service_kit::Problem, description = "The knowledge database is unavailable; retry.")))]
async fn add_documents(
    State(store): State<KnowledgeStore>,
    ApiJson(request): ApiJson<AddDocuments>,
) -> Response {
    let errors = validate(&request);
    if !errors.is_empty() {
        return Problem::validation(errors).into_response();
    }
    let documents: Vec<NewDocument> = request
        .documents
        .into_iter()
        .map(|d| NewDocument {
            title: d.title.trim().to_owned(),
            body: d.body,
            source: d.source.trim().to_owned(),
        })
        .collect();
    match store.insert(&documents).await {
        Ok(ids) => {
            tracing::info!(documents = ids.len(), "documents added");
            (StatusCode::CREATED, ApiJson(Added { ids })).into_response()
        }
        Err(error) => Problem::unavailable(error.to_string(), 1).into_response(),
    }
}

fn validate(request: &AddDocuments) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let count = request.documents.len();
    if count == 0 || count > MAX_DOCUMENTS {
        errors.push(FieldError::new(
            "documents",
            format!("must hold 1-{MAX_DOCUMENTS} documents (got {count})"),
        ));
        return errors;
    }
    for (i, document) in request.documents.iter().enumerate() {
        for (name, value, max) in [
            ("title", &document.title, TITLE_MAX_CHARS),
            ("body", &document.body, BODY_MAX_CHARS),
            ("source", &document.source, SOURCE_MAX_CHARS),
        ] {
            let chars = value.chars().count();
            if value.trim().is_empty() || chars > max || value.contains('\0') {
                errors.push(FieldError::new(
                    format!("documents[{i}].{name}"),
                    format!("must be 1-{max} characters, not blank, without NUL (got {chars})"),
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(title: &str, body: &str, source: &str) -> Document {
        Document {
            title: title.to_owned(),
            body: body.to_owned(),
            source: source.to_owned(),
        }
    }

    #[test]
    fn nul_in_any_field_is_refused_by_name_before_postgresql_sees_it() {
        let request = AddDocuments {
            documents: vec![
                document("fine", "fine", "runbook"),
                document("ti\0tle", "bo\0dy", "sou\0rce"),
            ],
        };
        let fields: Vec<String> = validate(&request).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "documents[1].title",
                "documents[1].body",
                "documents[1].source"
            ]
        );
        let fine = AddDocuments {
            documents: vec![document("t", "b", "s")],
        };
        assert!(validate(&fine).is_empty());
    }
}
