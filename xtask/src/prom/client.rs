//! The Prometheus HTTP API, read in one place.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util::curl;

/// One Prometheus server, by its base URL.
pub struct Prometheus {
    pub url: String,
}

impl Prometheus {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
        }
    }

    fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Value> {
        let mut args: Vec<String> = vec!["-G".into()];
        for (key, value) in params {
            args.push("--data-urlencode".into());
            args.push(format!("{key}={value}"));
        }
        args.push(format!("{}{path}", self.url));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let body = curl(&args)?;
        let value: Value =
            serde_json::from_str(&body).with_context(|| format!("not JSON from {path}: {body}"))?;
        if value["status"] != "success" {
            bail!("Prometheus {path} failed: {}", value["error"]);
        }
        Ok(value["data"].clone())
    }

    /// An instant query's `data` (`resultType` and `result`).
    pub fn query(&self, promql: &str) -> Result<Value> {
        self.get("/api/v1/query", &[("query", promql)])
            .with_context(|| format!("query `{promql}`"))
    }

    /// An instant query's number of results (1 for a scalar or string).
    pub fn result_len(&self, promql: &str) -> Result<usize> {
        let data = self.query(promql)?;
        Ok(match data["resultType"].as_str() {
            Some("scalar" | "string") => 1,
            _ => data["result"].as_array().map_or(0, Vec::len),
        })
    }

    /// An instant query's single value, if it has one.
    pub fn scalar(&self, promql: &str) -> Result<Option<f64>> {
        let data = self.query(promql)?;
        let value = match data["resultType"].as_str() {
            Some("scalar") => &data["result"][1],
            _ => &data["result"][0]["value"][1],
        };
        Ok(value.as_str().and_then(|v| v.parse().ok()))
    }

    /// `/api/v1/alerts`: every pending and firing alert.
    pub fn alerts(&self) -> Result<Vec<Value>> {
        Ok(self.get("/api/v1/alerts", &[])?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Whether an alert called `name` is firing.
    pub fn is_firing(&self, name: &str) -> Result<bool> {
        Ok(self
            .alerts()?
            .iter()
            .any(|a| a["labels"]["alertname"] == name && a["state"] == "firing"))
    }

    /// Waits until every active scrape target is up; returns their number.
    pub fn wait_targets_up(&self, deadline: Duration) -> Result<usize> {
        let mut down = Vec::new();
        let started = Instant::now();
        while started.elapsed() < deadline {
            let targets = self.get("/api/v1/targets", &[("state", "active")])?["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            down = targets
                .iter()
                .filter(|t| t["health"] != "up")
                .map(|t| {
                    format!(
                        "{} ({}: {})",
                        t["labels"]["job"], t["health"], t["lastError"]
                    )
                })
                .collect();
            if !targets.is_empty() && down.is_empty() {
                return Ok(targets.len());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        bail!("Prometheus targets not up: {}", down.join(", "))
    }
}
