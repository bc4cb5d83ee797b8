//! The kit's app, exercised in-process: standard endpoints, auth, limits,
//! timeouts, panics and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use serde_json::Value;
use service_kit::{ApiJson, DependencyCheck, Kit, KitArgs, Readiness, ServiceInfo};
use tower::ServiceExt;

const TOKEN: &str = "kit-test-token-0123456789";

fn kit(timeout: &str, body_limit: usize) -> Kit {
    use clap::Parser;
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        kit: KitArgs,
    }
    let args = Args::parse_from([
        "test",
        "--api-token",
        TOKEN,
        "--request-timeout",
        timeout,
        "--max-body-bytes",
        &body_limit.to_string(),
    ]);
    Kit::new(
        ServiceInfo {
            name: "kit-test",
            version: "1.2.3",
            default_port: 0,
        },
        &args.kit,
    )
    .unwrap()
}

struct Flaky(bool);

impl DependencyCheck for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let up = self.0;
        Box::pin(async move { if up { Ok(()) } else { Err("refused".into()) } })
    }
}

struct Optional;

impl DependencyCheck for Optional {
    fn name(&self) -> &'static str {
        "cache"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Err("cache offline".into()) })
    }
    fn required(&self) -> bool {
        false
    }
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Echo {
    text: String,
}

fn app(kit: &Kit, dependency_up: bool) -> Router {
    let api = Router::new()
        .route(
            "/v1/echo",
            post(|ApiJson(e): ApiJson<Echo>| async move { e.text }),
        )
        .route(
            "/v1/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/v1/panic",
            get(|| async {
                let v: Vec<u8> = Vec::new();
                #[allow(clippy::indexing_slicing)]
                v[1].to_string()
            }),
        );
    let readiness = Readiness::new(vec![Box::new(Flaky(dependency_up)), Box::new(Optional)]);
    kit.app(
        kit.protect(api),
        readiness,
        utoipa::openapi::OpenApi::default(),
    )
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, String, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, content_type, body)
}

fn get_req(path: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(path);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn health_ready_and_deep_report_dependencies() {
    let kit = kit("30s", 1024);
    let up = app(&kit, true);
    let down = app(&kit, false);
    assert_eq!(
        call(&down, get_req("/health", None)).await.0,
        StatusCode::OK
    );
    assert_eq!(call(&up, get_req("/ready", None)).await.0, StatusCode::OK);
    let (status, _, body) = call(&down, get_req("/ready", None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["reasons"]["flaky"], "refused");
    assert!(
        body["reasons"].get("cache").is_none(),
        "optional dependencies do not block readiness"
    );
    assert_eq!(
        call(&up, get_req("/health/deep", None)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _, body) = call(&up, get_req("/health/deep", Some(TOKEN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["dependencies"]["cache"]["status"], "degraded");
    assert_eq!(
        body["dependencies"]["cache"]["last_error"]["message"],
        "cache offline"
    );
    assert_eq!(body["dependencies"]["flaky"]["status"], "up");
}

#[tokio::test]
async fn limits_timeouts_and_panics_become_problems() {
    let kit = kit("200ms", 64);
    let app = app(&kit, true);
    let post = |body: &str, content_type: &str| {
        Request::post("/v1/echo")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", content_type)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let problem = "application/problem+json";
    let (status, ct, _) = call(&app, post(r#"{"text":"hi"}"#, "application/json")).await;
    assert_eq!(
        (status, ct.as_str()),
        (StatusCode::OK, "text/plain; charset=utf-8")
    );
    let (status, ct, body) = call(
        &app,
        post(
            &format!(r#"{{"text":"{}"}}"#, "x".repeat(100)),
            "application/json",
        ),
    )
    .await;
    assert_eq!(
        (status, ct.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, problem),
        "{body}"
    );
    let (status, ct, _) = call(&app, post("{", "application/json")).await;
    assert_eq!((status, ct.as_str()), (StatusCode::BAD_REQUEST, problem));
    let (status, ct, _) = call(&app, post(r#"{"text":"hi"}"#, "text/plain")).await;
    assert_eq!(
        (status, ct.as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, problem)
    );
    let (status, ct, body) = call(&app, post(r#"{"text":1}"#, "application/json")).await;
    assert_eq!(
        (status, ct.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, problem)
    );
    assert!(body["detail"].as_str().unwrap().contains("text"), "{body}");
    let (status, ct, body) = call(&app, get_req("/v1/slow", Some(TOKEN))).await;
    assert_eq!(
        (status, ct.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, problem)
    );
    assert_eq!(body["type"], "https://octollm.dev/problems/request-timeout");
    let (status, ct, body) = call(&app, get_req("/v1/panic", Some(TOKEN))).await;
    assert_eq!(
        (status, ct.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, problem)
    );
    assert_eq!(body["type"], "https://octollm.dev/problems/internal");
}

#[tokio::test]
async fn metrics_use_route_templates_and_count_auth_failures() {
    let kit = kit("30s", 1024);
    let app = app(&kit, true);
    call(&app, get_req("/v1/slow", None)).await;
    call(&app, get_req("/v1/slow", Some("wrong-token-0123456789"))).await;
    call(&app, get_req("/no/such/path/123", None)).await;
    let response = app
        .clone()
        .oneshot(get_req("/metrics", None))
        .await
        .unwrap();
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(r#"octollm_build_info{service="kit-test",version="1.2.3"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"octollm_http_requests_total{method="GET",route="/v1/slow",status="401"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"octollm_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"octollm_auth_failures_total{reason="missing"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"octollm_auth_failures_total{reason="invalid"} 1"#),
        "{text}"
    );
    assert!(
        !text.contains("/no/such/path"),
        "raw paths never become labels"
    );
}

/// Distinct label sets of `name` in an exposition (histogram `le` ignored).
fn series(text: &str, name: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (metric, _) = l.rsplit_once(' ')?;
            let rest = metric
                .strip_prefix(name)?
                .trim_start_matches("_bucket")
                .trim_start_matches("_sum")
                .trim_start_matches("_count");
            let labels: Vec<&str> = rest
                .trim_start_matches('{')
                .trim_end_matches('}')
                .split(',')
                .filter(|p| !p.starts_with("le="))
                .collect();
            Some(labels.join(","))
        })
        .collect()
}

async fn metrics_text(app: &Router) -> String {
    let response = app
        .clone()
        .oneshot(get_req("/metrics", None))
        .await
        .unwrap();
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

#[tokio::test]
async fn random_methods_mint_at_most_one_series() {
    let kit = kit("30s", 1024);
    let app = app(&kit, true);
    // Warm up: the series a GET creates exist before we count.
    call(&app, get_req("/v1/slow", None)).await;
    call(&app, get_req("/no/such/path", None)).await;
    metrics_text(&app).await;
    let before = metrics_text(&app).await;
    // xorshift, seeded from the clock: different random methods each run.
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    for i in 0..50 {
        let method: String = (0..3 + next(10))
            .map(|_| char::from(b'A' + next(26) as u8))
            .collect();
        let method = http::Method::from_bytes(format!("{method}{i}").as_bytes()).unwrap();
        let path = if i % 2 == 0 {
            "/v1/echo"
        } else {
            "/nowhere/{i}"
        };
        let request = Request::builder()
            .method(method)
            .uri(path.replace("{i}", &i.to_string()))
            .body(Body::empty())
            .unwrap();
        let (status, content_type, _) = call(&app, request).await;
        assert!(status.is_client_error(), "{status}");
        assert_eq!(content_type, "application/problem+json");
    }
    let after = metrics_text(&app).await;
    for name in [
        "octollm_http_requests_total",
        "octollm_http_request_duration_seconds",
    ] {
        let new: Vec<String> = series(&after, name)
            .difference(&series(&before, name))
            .cloned()
            .collect();
        // 25 methods on a known route, 25 on unknown paths: at most one
        // new series for each, whatever the methods were.
        for route in ["route=\"/v1/echo\"", "route=\"unmatched\""] {
            let on_route = new.iter().filter(|s| s.contains(route)).count();
            assert!(on_route <= 1, "{name} {route}: {new:?}");
        }
        assert!(
            new.iter().all(|s| s.contains("method=\"other\"")
                && (s.contains("route=\"/v1/echo\"") || s.contains("route=\"unmatched\""))),
            "{name}: {new:?}"
        );
    }
    assert!(
        !after.contains("/nowhere/"),
        "raw paths never become labels"
    );
}

#[tokio::test]
async fn openapi_needs_no_token_for_public_endpoints_and_documents_the_kit_answers() {
    let kit = kit("30s", 1024);
    let app = app(&kit, true);
    let (status, _, doc) = call(&app, get_req("/openapi.json", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(
            doc["paths"][path]["get"]["security"],
            serde_json::json!([]),
            "{path} is public: {}",
            doc["paths"][path]
        );
        // And it really is.
        let (status, _, _) = call(&app, get_req(path, None)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let deep = &doc["paths"]["/health/deep"]["get"];
    assert_eq!(deep["security"], serde_json::json!([{"bearer": []}]));
    assert!(deep["responses"]["401"].is_object());
}

#[tokio::test]
async fn the_caller_is_named_by_its_token_never_by_the_token() {
    let kit = kit("30s", 1024);
    let api = Router::new().route(
        "/v1/whoami",
        get(
            |axum::Extension(caller): axum::Extension<service_kit::Caller>| async move {
                caller.id().to_owned()
            },
        ),
    );
    let app = kit.app(
        kit.protect(api),
        Readiness::default(),
        utoipa::openapi::OpenApi::default(),
    );
    let response = app
        .clone()
        .oneshot(get_req("/v1/whoami", Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let id = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert_eq!(id, service_kit::Caller::of_token(TOKEN).id());
    assert!(!id.contains(TOKEN));
}
