//! The service's Prometheus registry and the metrics every service exports.
//!
//! Each service owns one [`Registry`] (never the global default), so tests can
//! run several services in one process. Metric names follow docs/contracts.md,
//! "Metrics".

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets for HTTP handlers: 1 ms to 30 s.
pub const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Route label for requests that matched no route (keeps label cardinality bounded).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Values of the `method` label: the methods an API uses, and `other` for
/// anything else a client sends (`curl -X RANDOM…` must not mint series;
/// the label is recorded before authentication).
pub const METHOD_LABELS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "other",
];

/// The `method` label of a request: one of [`METHOD_LABELS`].
pub fn method_label(method: &axum::http::Method) -> &'static str {
    METHOD_LABELS
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}

#[derive(Clone)]
pub struct ServiceMetrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_in_flight: IntGauge,
    auth_failures: IntCounterVec,
}

impl ServiceMetrics {
    /// Registers the process collector, `octollm_build_info` and the HTTP metrics.
    pub fn new(service: &str, version: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        let build_info = IntGaugeVec::new(
            Opts::new(
                "octollm_build_info",
                "Build of the running service (always 1).",
            ),
            &["service", "version"],
        )?;
        build_info.with_label_values(&[service, version]).set(1);
        registry.register(Box::new(build_info))?;

        let http_requests = IntCounterVec::new(
            Opts::new("octollm_http_requests_total", "HTTP requests served."),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "octollm_http_request_duration_seconds",
                "HTTP request latency, from first byte in to response head out.",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let http_in_flight = IntGauge::new(
            "octollm_http_requests_in_flight",
            "HTTP requests being served now.",
        )?;
        let auth_failures = IntCounterVec::new(
            Opts::new("octollm_auth_failures_total", "Rejected credentials."),
            &["reason"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(http_in_flight.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        for reason in crate::auth::FAILURE_REASONS {
            auth_failures.with_label_values(&[reason]);
        }
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            http_in_flight,
            auth_failures,
        })
    }

    /// The registry services add their own metrics to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn auth_failed(&self, reason: &str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    /// Prometheus text exposition of everything registered.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// Middleware recording `octollm_http_*` under the matched route template
/// (or [`UNMATCHED_ROUTE`]) and the method's [`method_label`].
pub(crate) async fn track_http(
    State(metrics): State<ServiceMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    metrics.http_in_flight.inc();
    let _in_flight = InFlight(&metrics.http_in_flight);
    let response = next.run(request).await;
    metrics
        .http_requests
        .with_label_values(&[method, &route, response.status().as_str()])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[method, &route])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Decrements the in-flight gauge even when the request future is dropped.
struct InFlight<'a>(&'a IntGauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition.")))]
pub(crate) async fn metrics_endpoint(State(metrics): State<ServiceMetrics>) -> Response {
    match metrics.render() {
        Ok(body) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering metrics failed");
            crate::Problem::unavailable("metrics could not be rendered", 1).into_response()
        }
    }
}
