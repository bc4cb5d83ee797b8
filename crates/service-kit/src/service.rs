//! [`Kit`]: builds a service's HTTP app with the standard endpoints and
//! middleware, and serves it until SIGTERM/SIGINT, then drains.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use utoipa::OpenApi;

use crate::auth::{AuthState, BearerTokens, Reload, TokenError};
use crate::config::KitArgs;
use crate::health::{self, Readiness};
use crate::metrics::{self, ServiceMetrics};
use crate::{Problem, telemetry};

/// Name, version and default port of a service.
#[derive(Debug, Clone, Copy)]
pub struct ServiceInfo {
    pub name: &'static str,
    pub version: &'static str,
    pub default_port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on {addr} (is another process using the port?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

pub struct Kit {
    info: ServiceInfo,
    args: KitArgs,
    metrics: ServiceMetrics,
    tokens: BearerTokens,
    shutdown: CancellationToken,
    /// Credentials re-read on SIGHUP and every [`RELOAD_INTERVAL`].
    followed: Mutex<Vec<Followed>>,
    /// Edits to the served OpenAPI document, as JSON ([`Kit::refine_openapi`]).
    openapi_edits: Mutex<Vec<OpenApiEdit>>,
}

type OpenApiEdit = Box<dyn Fn(&mut serde_json::Value) + Send + Sync>;

/// A followed credential and what it is, for the log ("reflex token").
type Followed = (&'static str, Arc<dyn Reload>);

/// How often followed credential files are re-read without a SIGHUP.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

impl Kit {
    /// Loads the API tokens and creates the metrics registry. Telemetry is
    /// installed separately ([`telemetry::init`]) because it is process-global.
    pub fn new(info: ServiceInfo, args: &KitArgs) -> Result<Self, KitError> {
        let tokens = BearerTokens::load(args.api_token.as_deref(), args.api_token_file.as_deref())?;
        Ok(Self {
            info,
            args: args.clone(),
            metrics: ServiceMetrics::new(info.name, info.version)?,
            followed: Mutex::new(vec![("API tokens", Arc::new(tokens.clone()))]),
            tokens,
            shutdown: CancellationToken::new(),
            openapi_edits: Mutex::default(),
        })
    }

    /// Edits the OpenAPI document [`Kit::app`] serves, as JSON: for what the
    /// typed document cannot say (a shared schema narrowed by one service,
    /// a JSON Schema held as data).
    pub fn refine_openapi(&self, edit: impl Fn(&mut serde_json::Value) + Send + Sync + 'static) {
        self.openapi_edits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(edit));
    }

    /// Re-reads `credential` (`what` names it in the log) on SIGHUP and
    /// every [`RELOAD_INTERVAL`] while the service runs (the kit's own API
    /// tokens are followed already).
    pub fn follow(&self, what: &'static str, credential: impl Reload + 'static) {
        self.followed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((what, Arc::new(credential)));
    }

    pub fn metrics(&self) -> &ServiceMetrics {
        &self.metrics
    }

    pub fn registry(&self) -> &prometheus::Registry {
        self.metrics.registry()
    }

    pub fn tokens(&self) -> &BearerTokens {
        &self.tokens
    }

    pub fn args(&self) -> &KitArgs {
        &self.args
    }

    /// Cancelled when the service is asked to stop; background work watches it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Puts bearer-token auth in front of every route of `router`.
    pub fn protect<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        router.layer(middleware::from_fn_with_state(
            AuthState {
                tokens: self.tokens.clone(),
                metrics: self.metrics.clone(),
            },
            crate::auth::require_bearer,
        ))
    }

    /// The whole app: the service's `api` routes plus `/health`, `/ready`,
    /// `/health/deep` (protected), `/metrics` and `/openapi.json`, wrapped in
    /// request spans, HTTP metrics, the body limit and the request timeout.
    ///
    /// `api` is expected behind [`Kit::protect`]: the served OpenAPI document
    /// says its operations need the bearer token and answer 401 without it
    /// (see [`crate::openapi`]), while `/health`, `/ready` and `/metrics`
    /// need none.
    pub fn app(
        &self,
        api: Router,
        readiness: Readiness,
        mut openapi: utoipa::openapi::OpenApi,
    ) -> Router {
        openapi.merge(StandardEndpoints::openapi());
        crate::openapi::finish(&mut openapi);
        let mut document = serde_json::to_value(&openapi).unwrap_or_default();
        for edit in self
            .openapi_edits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            edit(&mut document);
        }
        let openapi = Arc::new(document);
        let deep = self.protect(
            Router::new()
                .route("/health/deep", get(health::deep))
                .with_state(readiness.clone()),
        );
        let timeout = self.args.request_timeout;
        Router::new()
            .route("/health", get(health::health))
            .route("/ready", get(health::ready))
            .with_state(readiness)
            .merge(deep)
            .route(
                "/metrics",
                get(metrics::metrics_endpoint).with_state(self.metrics.clone()),
            )
            .route(
                "/openapi.json",
                get(move || {
                    let openapi = openapi.clone();
                    async move { axum::Json(openapi.as_ref().clone()) }
                }),
            )
            .merge(api)
            .fallback(crate::problem::route_not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(self.args.max_body_bytes))
            .layer(middleware::from_fn(move |req, next| {
                enforce_timeout(timeout, req, next)
            }))
            .layer(middleware::from_fn_with_state(
                self.metrics.clone(),
                metrics::track_http,
            ))
            .layer(middleware::from_fn(request_span))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                panic_problem,
            ))
    }

    /// Binds, serves until SIGTERM/SIGINT (or [`Kit::shutdown_token`]), then
    /// stops accepting and drains in-flight requests up to the grace period.
    pub async fn serve(&self, app: Router) -> Result<(), KitError> {
        let addr = self
            .args
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], self.info.default_port)));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| KitError::Bind { addr, source })?;
        tracing::info!(service = self.info.name, version = self.info.version, %addr, "listening");

        let shutdown = self.shutdown.clone();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let followed = self
            .followed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tokio::spawn(reload_credentials(followed, shutdown.clone()));
        let mut server = tokio::spawn(crate::server::serve_http(listener, app, shutdown.clone()));

        tokio::select! {
            result = &mut server => return flatten(result),
            () = shutdown.cancelled() => {}
        }
        let grace = self.args.shutdown_grace;
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutting down: draining in-flight requests"
        );
        match tokio::time::timeout(grace, &mut server).await {
            Ok(result) => {
                tracing::info!("drained; bye");
                flatten(result)
            }
            Err(_) => {
                tracing::warn!("drain deadline passed; closing remaining connections");
                server.abort();
                Ok(())
            }
        }
    }
}

/// The process exit code for `main`'s result; an error is printed to stderr
/// with its whole chain (`{:#}`), which is what an operator needs to see.
pub fn exit_code<E: std::fmt::Display>(
    service: &str,
    result: Result<(), E>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{service}: {error:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn flatten(result: Result<(), tokio::task::JoinError>) -> Result<(), KitError> {
    result.map_err(|join| KitError::Serve(std::io::Error::other(join.to_string())))
}

/// Re-reads every followed credential on SIGHUP and every
/// [`RELOAD_INTERVAL`], until shutdown. A file that cannot be read (or holds
/// no valid token) leaves the credential as it was, with a warning.
async fn reload_credentials(followed: Vec<Followed>, shutdown: CancellationToken) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|error| tracing::error!(%error, "cannot listen for SIGHUP"))
        .ok();
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        let signalled = tokio::select! {
            () = hup => true,
            () = tokio::time::sleep(RELOAD_INTERVAL) => false,
            () = shutdown.cancelled() => return,
        };
        for (what, credential) in &followed {
            match credential.reload() {
                Ok(true) => tracing::info!(what, "credentials reloaded"),
                Ok(false) if signalled => {
                    tracing::info!(what, "SIGHUP: credentials unchanged");
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(
                    what,
                    %error,
                    "cannot reload credentials; the previous ones stay in force"
                ),
            }
        }
    }
}

async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "stop requested"),
        () = terminate => tracing::info!(signal = "SIGTERM", "stop requested"),
        () = token.cancelled() => return,
    }
    token.cancel();
}

/// One span per request, continuing the caller's trace when it sent `traceparent`.
async fn request_span(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(metrics::UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!(
        "http_request",
        method = %request.method(),
        route = %route,
        status = tracing::field::Empty,
    );
    if let Err(error) = span.set_parent(telemetry::extract_parent(request.headers())) {
        tracing::debug!(?error, "ignoring unusable traceparent");
    }
    let trace_id = {
        use opentelemetry::trace::TraceContextExt;
        span.context().span().span_context().trace_id().to_string()
    };
    let mut response = next.run(request).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    if let Ok(value) = http::HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert("x-trace-id", value);
    }
    response
}

async fn enforce_timeout(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "request-timeout",
            "Request timed out",
            format!(
                "the request did not finish within {}s",
                timeout.as_secs_f64()
            ),
        )
        .retry_after(1)
        .into_response(),
    }
}

async fn method_not_allowed(request: Request) -> Problem {
    Problem::new(
        http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

fn panic_problem(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked; answered 500");
    Problem::new(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        "the server hit a bug; it has been logged",
    )
    .into_response()
}

/// OpenAPI for the endpoints every service serves.
#[derive(OpenApi)]
#[openapi(paths(health::health, health::ready, health::deep, metrics::metrics_endpoint))]
struct StandardEndpoints;
