//! The guardian arm (capability `safety_check`): screens a text with the
//! detection engine (the reflex layer's) for personal data, secrets and
//! prompt injection; answers the text with PII and secrets redacted, the
//! findings as types and byte offsets (never the values), and a risk level.
//! High risk answers `allowed: false`, which fails the task.

use std::sync::Arc;

use arm_kit::{Arm, ArmError, ArmParts, Call};
use arm_protocol::{ArmKind, ArmUsage, ExecuteResponse};
use detection::{
    Checks, Decision, Detector, DetectorConfig, InjectionCategory, PiiKind, RedactMode, Scan,
    Severity,
};
use prometheus::{IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use service_kit::{Kit, KitArgs};

/// Longest text accepted, in characters.
pub const TEXT_MAX_CHARS: usize = 100_000;
/// Texts longer than this (bytes) are scanned off the async workers.
const INLINE_SCAN_BYTES: usize = 16 * 1024;
/// `risk` values.
pub const RISKS: [&str; 3] = ["low", "medium", "high"];

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "guardian-arm",
    version,
    about = "OctoLLM guardian arm: screens text for PII, secrets and prompt injection.",
    long_about = "OctoLLM guardian arm: POST /v1/execute with capability `safety_check` and input \
{text} answers the text with personal data and secrets redacted, the findings by type and byte \
offsets (never the values), and a risk level: high (a secret, or an injection at the blocking \
threshold) answers allowed: false.\n\nEvery flag can also be set through the environment \
variable shown next to it."
)]
pub struct Args {
    #[command(flatten)]
    pub kit: KitArgs,

    /// An injection finding of at least this severity (low, medium, high, critical)...
    #[arg(long, env = "GUARDIAN_BLOCK_SEVERITY", default_value = "high", value_parser = parse_severity)]
    pub block_severity: Severity,

    /// ...and at least this confidence (0-1) makes the risk high.
    #[arg(long, env = "GUARDIAN_BLOCK_CONFIDENCE", default_value_t = 0.5)]
    pub block_confidence: f32,
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    Severity::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| format!("unknown severity {text:?}: low, medium, high or critical"))
}

#[derive(Debug, thiserror::Error)]
pub enum GuardianError {
    #[error("detection engine: {0}")]
    Detection(#[from] detection::ConfigError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Builds the guardian from its flags.
pub fn build(args: &Args, kit: &Kit) -> Result<ArmParts<Guardian>, GuardianError> {
    let detector = Detector::new(DetectorConfig {
        block_min_severity: args.block_severity,
        block_min_confidence: args.block_confidence,
        ..DetectorConfig::default()
    })?;
    Ok(ArmParts::new(Guardian::new(detector, kit.registry())?))
}

pub struct Guardian {
    detector: Arc<Detector>,
    pii: IntCounterVec,
    injection: IntCounterVec,
    checks: IntCounterVec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SafetyInput {
    text: String,
}

/// A PII or secret finding: its type and byte offsets into the input text.
#[derive(Debug, Serialize)]
struct SpanView {
    #[serde(rename = "type")]
    kind: &'static str,
    start: usize,
    end: usize,
    confidence: f32,
}

#[derive(Debug, Serialize)]
struct InjectionView {
    category: &'static str,
    severity: &'static str,
    start: usize,
    end: usize,
    confidence: f32,
}

/// How risky a scan is: high blocks (a secret, or the engine's block
/// decision), medium is worth knowing (PII, a weaker injection finding).
pub fn risk(scan: &Scan) -> &'static str {
    if scan.decision == Decision::Block || scan.pii.iter().any(|f| f.kind.is_secret()) {
        "high"
    } else if !scan.pii.is_empty() || !scan.injection.is_empty() {
        "medium"
    } else {
        "low"
    }
}

impl Guardian {
    pub fn new(detector: Detector, registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let pii = counter(
            "octollm_pii_detections_total",
            "PII and secret findings by type.",
            &["pii_type"],
        )?;
        let injection = counter(
            "octollm_injection_detections_total",
            "Prompt-injection findings by category and severity.",
            &["category", "severity"],
        )?;
        let checks = counter(
            "octollm_guardian_checks_total",
            "Texts screened by the guardian, by risk (low/medium/high).",
            &["risk"],
        )?;
        registry.register(Box::new(pii.clone()))?;
        registry.register(Box::new(injection.clone()))?;
        registry.register(Box::new(checks.clone()))?;
        for kind in PiiKind::ALL {
            pii.with_label_values(&[kind.as_str()]);
        }
        for category in InjectionCategory::ALL {
            for severity in Severity::ALL {
                injection.with_label_values(&[category.as_str(), severity.as_str()]);
            }
        }
        for risk in RISKS {
            checks.with_label_values(&[risk]);
        }
        Ok(Self {
            detector: Arc::new(detector),
            pii,
            injection,
            checks,
        })
    }

    /// Scans `text` (long texts off the async workers). Never fails open:
    /// a scan that did not finish is an error, not a clean text.
    async fn scan(&self, text: String) -> Result<(String, Scan), ArmError> {
        if text.len() <= INLINE_SCAN_BYTES {
            let scan = self.detector.scan(&text, &Checks::default());
            return Ok((text, scan));
        }
        let detector = self.detector.clone();
        tokio::task::spawn_blocking(move || {
            let scan = detector.scan(&text, &Checks::default());
            (text, scan)
        })
        .await
        .map_err(|error| {
            tracing::error!(%error, "scan task failed");
            ArmError::Unavailable("the scan did not finish".to_owned())
        })
    }

    fn count(&self, scan: &Scan, risk: &str) {
        for finding in &scan.pii {
            self.pii.with_label_values(&[finding.kind.as_str()]).inc();
        }
        for finding in &scan.injection {
            self.injection
                .with_label_values(&[finding.category.as_str(), finding.severity.as_str()])
                .inc();
        }
        self.checks.with_label_values(&[risk]).inc();
    }
}

impl Arm for Guardian {
    fn kind(&self) -> ArmKind {
        ArmKind::Guardian
    }

    fn cost_tier(&self) -> u8 {
        1
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["text"],
            "properties": {
                "text": {"type": "string", "minLength": 1, "maxLength": TEXT_MAX_CHARS, "pattern": "\\S"}
            }
        })
    }

    fn output_schema(&self) -> Value {
        let span = json!({
            "type": "object",
            "required": ["type", "start", "end", "confidence"],
            "properties": {
                "type": {"type": "string"},
                "start": {"type": "integer", "minimum": 0},
                "end": {"type": "integer", "minimum": 0},
                "confidence": {"type": "number"}
            }
        });
        json!({
            "type": "object",
            "required": ["allowed", "risk", "sanitized_text", "findings", "by_type"],
            "properties": {
                "allowed": {"type": "boolean"},
                "risk": {"enum": RISKS},
                "sanitized_text": {"type": "string"},
                "findings": {
                    "type": "object",
                    "required": ["pii", "secrets", "injection"],
                    "properties": {
                        "pii": {"type": "array", "items": span},
                        "secrets": {"type": "array", "items": span},
                        "injection": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["category", "severity", "start", "end", "confidence"],
                                "properties": {
                                    "category": {"type": "string"},
                                    "severity": {"enum": ["low", "medium", "high", "critical"]},
                                    "start": {"type": "integer", "minimum": 0},
                                    "end": {"type": "integer", "minimum": 0},
                                    "confidence": {"type": "number"}
                                }
                            }
                        }
                    }
                },
                "by_type": {
                    "type": "object",
                    "description": "Findings per PII/secret type or injection category.",
                    "additionalProperties": {"type": "integer"}
                }
            }
        })
    }

    async fn execute(&self, call: Call) -> Result<ExecuteResponse, ArmError> {
        let input: SafetyInput = call.input()?;
        let (text, scan) = self.scan(input.text).await?;
        let risk = risk(&scan);
        self.count(&scan, risk);
        let sanitized = self
            .detector
            .redact(&text, &scan.pii, RedactMode::TypedToken);
        let view = |f: &detection::PiiFinding| SpanView {
            kind: f.kind.as_str(),
            start: f.start,
            end: f.end,
            confidence: f.confidence,
        };
        let (secrets, pii): (Vec<_>, Vec<_>) = scan.pii.iter().partition(|f| f.kind.is_secret());
        let mut by_type = serde_json::Map::new();
        let mut tally = |name: &str| {
            let n = by_type.get(name).and_then(Value::as_u64).unwrap_or(0);
            by_type.insert(name.to_owned(), json!(n + 1));
        };
        scan.pii.iter().for_each(|f| tally(f.kind.as_str()));
        scan.injection
            .iter()
            .for_each(|f| tally(f.category.as_str()));
        if risk != "low" {
            tracing::info!(
                risk,
                pii = pii.len(),
                secrets = secrets.len(),
                injection = scan.injection.len(),
                "findings"
            );
        }
        Ok(ExecuteResponse {
            output: json!({
                "allowed": risk != "high",
                "risk": risk,
                "sanitized_text": sanitized,
                "findings": {
                    "pii": pii.iter().map(&view).collect::<Vec<_>>(),
                    "secrets": secrets.iter().map(&view).collect::<Vec<_>>(),
                    "injection": scan.injection.iter().map(|f| InjectionView {
                        category: f.category.as_str(),
                        severity: f.severity.as_str(),
                        start: f.start,
                        end: f.end,
                        confidence: f.confidence,
                    }).collect::<Vec<_>>(),
                },
                "by_type": by_type,
            }),
            usage: ArmUsage::default(),
            confidence: 0.9,
        })
    }
}
