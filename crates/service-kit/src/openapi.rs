//! What the kit adds to every service's OpenAPI document, so that the
//! document tells the truth about what the kit's layers answer.
//!
//! - The service's API sits behind the bearer token ([`Kit::protect`]):
//!   the `bearer` scheme is declared, required at the top level, and every
//!   operation that needs it documents its 401.
//! - The public endpoints (`/health`, `/ready`, `/metrics`) carry an empty
//!   security requirement: no credential is needed.
//! - An operation with a JSON body documents the answers of
//!   [`ApiJson`](crate::ApiJson) and the body limit: 400, 413, 415 and 422.
//! - Problem bodies are `application/problem+json`, as
//!   [`Problem`](crate::Problem) sends them.
//!
//! [`Kit::protect`]: crate::Kit::protect

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Name of the bearer-token security scheme.
pub const BEARER_SCHEME: &str = "bearer";

/// Paths the kit serves without a credential.
pub const PUBLIC_PATHS: [&str; 3] = ["/health", "/ready", "/metrics"];

const PROBLEM_REF: &str = "#/components/schemas/Problem";

/// Answers of the JSON body extractor and the body limit.
const BODY_ANSWERS: [(&str, &str); 4] = [
    ("400", "Malformed JSON or a body that is not UTF-8."),
    ("413", "Body larger than the service's limit."),
    ("415", "Not `Content-Type: application/json`."),
    (
        "422",
        "Well-formed but invalid: wrong types, unknown fields or values out of bounds; `errors` names each field.",
    ),
];

/// Applies the kit's rules (module docs) to a whole document.
pub fn finish(openapi: &mut OpenApi) {
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER_SCHEME,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components
        .schemas
        .entry("Problem".to_owned())
        .or_insert_with(<crate::Problem as utoipa::PartialSchema>::schema);
    components
        .schemas
        .entry("FieldError".to_owned())
        .or_insert_with(<crate::FieldError as utoipa::PartialSchema>::schema);
    openapi.security = Some(vec![SecurityRequirement::new(
        BEARER_SCHEME,
        Vec::<String>::new(),
    )]);
    for (path, item) in openapi.paths.paths.iter_mut() {
        let public = PUBLIC_PATHS.contains(&path.as_str());
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            if public {
                operation.security = Some(Vec::new());
            } else {
                add_problem(
                    &mut operation.responses.responses,
                    "401",
                    "Missing, malformed or wrong bearer token.",
                );
            }
            if operation.request_body.is_some() {
                for (status, description) in BODY_ANSWERS {
                    add_problem(&mut operation.responses.responses, status, description);
                }
            }
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    problem_media_type(response);
                }
            }
        }
    }
}

fn add_problem(
    responses: &mut std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>>,
    status: &str,
    description: &str,
) {
    responses.entry(status.to_owned()).or_insert_with(|| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    crate::problem::CONTENT_TYPE,
                    ContentBuilder::new()
                        .schema(Some(Ref::new(PROBLEM_REF)))
                        .build(),
                )
                .build(),
        )
    });
}

/// A Problem body documented as `application/json` becomes `application/problem+json`.
fn problem_media_type(response: &mut utoipa::openapi::Response) {
    let is_problem = |c: &utoipa::openapi::Content| matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location == PROBLEM_REF);
    if response
        .content
        .get("application/json")
        .is_some_and(is_problem)
        && let Some(body) = response.content.shift_remove("application/json")
    {
        response
            .content
            .insert(crate::problem::CONTENT_TYPE.to_owned(), body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(thing))]
    struct Doc;

    /// Posts a thing.
    #[utoipa::path(post, path = "/v1/thing", request_body = String,
        responses((status = 200), (status = 404, body = crate::Problem)))]
    #[allow(dead_code)]
    async fn thing() {}

    #[test]
    fn documents_auth_body_answers_and_problem_media_type() {
        let mut doc = <Doc as utoipa::OpenApi>::openapi();
        finish(&mut doc);
        let doc: Value = serde_json::to_value(&doc).unwrap();
        assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let responses = &doc["paths"]["/v1/thing"]["post"]["responses"];
        for status in ["401", "400", "413", "415", "422"] {
            assert!(
                responses[status]["content"]["application/problem+json"].is_object(),
                "{status}: {responses}"
            );
        }
        assert!(responses["404"]["content"]["application/problem+json"].is_object());
        assert!(responses["404"]["content"]["application/json"].is_null());
        assert!(doc["components"]["schemas"]["Problem"].is_object());
    }
}
