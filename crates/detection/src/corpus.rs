//! The labelled corpus and its evaluation: precision and recall per PII kind
//! and per injection category, plus block rates. The test suite asserts the
//! thresholds; `cargo xtask` can print the same report.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;

use crate::{Checks, Decision, Detector, InjectionCategory, PiiKind};

/// An injection finding counts as a detection of its category in the
/// evaluation when its (context-adjusted) confidence reaches this value.
/// Benign mentions are still reported, with lower confidence.
pub const REPORT_CONFIDENCE: f32 = 0.5;

/// The corpus shipped with the crate (JSON lines).
pub const BUILTIN: &str = include_str!("../corpus/corpus.jsonl");

/// One labelled line.
#[derive(Debug, Clone, Deserialize)]
pub struct Sample {
    /// The input text.
    pub text: String,
    /// Expected PII kinds (`as_str` names).
    #[serde(default)]
    pub pii: Vec<String>,
    /// Expected injection categories (`as_str` names).
    #[serde(default)]
    pub injection: Vec<String>,
    /// Expected decision: `allow` or `block`.
    pub decision: String,
}

/// A corpus line that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("corpus line {line}: {reason}")]
pub struct CorpusError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses JSON lines, checking every label against the closed sets.
pub fn parse(jsonl: &str) -> Result<Vec<Sample>, CorpusError> {
    let mut out = Vec::new();
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |reason: String| CorpusError {
            line: i + 1,
            reason,
        };
        let sample: Sample = serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        for k in &sample.pii {
            PiiKind::from_name(k).ok_or_else(|| err(format!("unknown pii kind {k}")))?;
        }
        for c in &sample.injection {
            InjectionCategory::from_name(c)
                .ok_or_else(|| err(format!("unknown injection category {c}")))?;
        }
        if sample.decision != "allow" && sample.decision != "block" {
            return Err(err(format!("bad decision {}", sample.decision)));
        }
        out.push(sample);
    }
    Ok(out)
}

/// The built-in corpus.
pub fn builtin() -> Result<Vec<Sample>, CorpusError> {
    parse(BUILTIN)
}

/// Counts for one label (line level: a label present in a line counts once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Expected and found.
    pub tp: usize,
    /// Found but not expected.
    pub fp: usize,
    /// Expected but not found.
    pub fn_: usize,
}

impl Counts {
    /// tp / (tp + fp); 1.0 when nothing was found.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn); 1.0 when nothing was expected.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    fn add(&mut self, expected: bool, found: bool) {
        match (expected, found) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => {}
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// A line whose labels and findings disagree (labels only, never text).
#[derive(Debug, Clone)]
pub struct Miss {
    /// 0-based index into the samples.
    pub index: usize,
    /// What differed, e.g. `pii fn: ssn`.
    pub what: String,
}

/// Evaluation result.
#[derive(Debug, Clone)]
pub struct Report {
    /// Lines evaluated.
    pub lines: usize,
    /// Per PII kind.
    pub pii: Vec<(PiiKind, Counts)>,
    /// Per injection category.
    pub injection: Vec<(InjectionCategory, Counts)>,
    /// Lines with any expected injection where any injection was found / all such lines.
    pub attack_lines_detected: (usize, usize),
    /// Lines labelled `block` that were blocked / all such lines.
    pub blocked: (usize, usize),
    /// Lines labelled `allow` that were blocked / all such lines.
    pub false_blocks: (usize, usize),
    /// Disagreeing lines.
    pub misses: Vec<Miss>,
}

/// Thresholds a [`Report`] must meet.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Minimum precision per PII kind.
    pub pii_precision: f64,
    /// Minimum recall per PII kind.
    pub pii_recall: f64,
    /// Minimum recall per injection category.
    pub injection_recall: f64,
    /// Minimum precision per injection category.
    pub injection_precision: f64,
    /// Minimum share of `block` lines blocked.
    pub block_recall: f64,
    /// Maximum share of `allow` lines blocked.
    pub max_false_block_rate: f64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            pii_precision: 0.95,
            pii_recall: 0.95,
            injection_recall: 0.9,
            injection_precision: 0.9,
            block_recall: 0.95,
            max_false_block_rate: 0.02,
        }
    }
}

/// Runs the detector over every sample.
pub fn evaluate(detector: &Detector, samples: &[Sample]) -> Report {
    let mut pii: Vec<(PiiKind, Counts)> = PiiKind::ALL
        .iter()
        .map(|&k| (k, Counts::default()))
        .collect();
    let mut injection: Vec<(InjectionCategory, Counts)> = InjectionCategory::ALL
        .iter()
        .map(|&c| (c, Counts::default()))
        .collect();
    let mut attack_lines_detected = (0, 0);
    let mut blocked = (0, 0);
    let mut false_blocks = (0, 0);
    let mut misses = Vec::new();
    for (index, sample) in samples.iter().enumerate() {
        let scan = detector.scan(&sample.text, &Checks::default());
        let found_pii: BTreeSet<&str> = scan.pii.iter().map(|f| f.kind.as_str()).collect();
        let found_inj: BTreeSet<&str> = scan
            .injection
            .iter()
            .filter(|f| f.confidence >= REPORT_CONFIDENCE)
            .map(|f| f.category.as_str())
            .collect();
        let want_pii: BTreeSet<&str> = sample.pii.iter().map(String::as_str).collect();
        let want_inj: BTreeSet<&str> = sample.injection.iter().map(String::as_str).collect();
        for (kind, counts) in &mut pii {
            let (e, f) = (
                want_pii.contains(kind.as_str()),
                found_pii.contains(kind.as_str()),
            );
            counts.add(e, f);
            if e != f {
                let dir = if e { "fn" } else { "fp" };
                misses.push(Miss {
                    index,
                    what: format!("pii {dir}: {}", kind.as_str()),
                });
            }
        }
        for (cat, counts) in &mut injection {
            let (e, f) = (
                want_inj.contains(cat.as_str()),
                found_inj.contains(cat.as_str()),
            );
            counts.add(e, f);
            if e != f {
                let dir = if e { "fn" } else { "fp" };
                misses.push(Miss {
                    index,
                    what: format!("injection {dir}: {}", cat.as_str()),
                });
            }
        }
        if !want_inj.is_empty() {
            attack_lines_detected.1 += 1;
            if !found_inj.is_empty() {
                attack_lines_detected.0 += 1;
            }
        }
        let is_block = scan.decision == Decision::Block;
        if sample.decision == "block" {
            blocked.1 += 1;
            blocked.0 += usize::from(is_block);
        } else {
            false_blocks.1 += 1;
            false_blocks.0 += usize::from(is_block);
        }
        if (sample.decision == "block") != is_block {
            misses.push(Miss {
                index,
                what: format!(
                    "decision: expected {}, got {}",
                    sample.decision,
                    scan.decision.as_str()
                ),
            });
        }
    }
    Report {
        lines: samples.len(),
        pii,
        injection,
        attack_lines_detected,
        blocked,
        false_blocks,
        misses,
    }
}

impl Report {
    /// Threshold violations, empty when all pass.
    pub fn failures(&self, t: &Thresholds) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, c) in &self.pii {
            if c.precision() < t.pii_precision {
                out.push(format!(
                    "pii {} precision {:.3}",
                    kind.as_str(),
                    c.precision()
                ));
            }
            if c.recall() < t.pii_recall {
                out.push(format!("pii {} recall {:.3}", kind.as_str(), c.recall()));
            }
        }
        for (cat, c) in &self.injection {
            if c.precision() < t.injection_precision {
                out.push(format!(
                    "injection {} precision {:.3}",
                    cat.as_str(),
                    c.precision()
                ));
            }
            if c.recall() < t.injection_recall {
                out.push(format!(
                    "injection {} recall {:.3}",
                    cat.as_str(),
                    c.recall()
                ));
            }
        }
        if ratio(self.blocked.0, self.blocked.1) < t.block_recall {
            out.push(format!(
                "block recall {}/{}",
                self.blocked.0, self.blocked.1
            ));
        }
        if ratio(self.false_blocks.0, self.false_blocks.1) > t.max_false_block_rate {
            out.push(format!(
                "false block rate {}/{}",
                self.false_blocks.0, self.false_blocks.1
            ));
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "corpus lines: {}", self.lines)?;
        writeln!(
            f,
            "{:<28} {:>4} {:>4} {:>4} {:>9} {:>7}",
            "label", "tp", "fp", "fn", "precision", "recall"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, c: &Counts| {
            writeln!(
                f,
                "{:<28} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}",
                name,
                c.tp,
                c.fp,
                c.fn_,
                c.precision(),
                c.recall()
            )
        };
        for (kind, c) in &self.pii {
            row(f, &format!("pii/{}", kind.as_str()), c)?;
        }
        for (cat, c) in &self.injection {
            row(f, &format!("inj/{}", cat.as_str()), c)?;
        }
        writeln!(
            f,
            "attack lines detected: {}/{}",
            self.attack_lines_detected.0, self.attack_lines_detected.1
        )?;
        writeln!(
            f,
            "block lines blocked: {}/{}",
            self.blocked.0, self.blocked.1
        )?;
        writeln!(
            f,
            "allow lines blocked (false blocks): {}/{}",
            self.false_blocks.0, self.false_blocks.1
        )
    }
}
