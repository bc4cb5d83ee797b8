//! Evaluation on labelled public data, split by source: per source and per
//! category precision, recall and false-positive rate, a threshold table for
//! the learned stage, and floors on the dev split.
//!
//! The sources and their splits are listed in `eval/manifest.json`; sources
//! marked `committed` live in `eval/data/`, the others are rebuilt into
//! `target/detection-data/` by `eval/prepare.py`. The `detection-eval` binary
//! prints the report and exits 1 when the dev split crosses `eval/floors.json`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Checks, Decision, Detector, InjectionCategory, corpus};

/// One labelled text.
#[derive(Debug, Clone)]
pub struct Row {
    /// The text.
    pub text: String,
    /// An attack (prompt injection or jailbreak) rather than a benign text.
    pub attack: bool,
}

/// Which split a source belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Split {
    /// Used to train the learned stage (and to write rules against).
    Train,
    /// Used to choose thresholds; the floors apply here.
    Dev,
    /// Held out: looked at only to report.
    Test,
}

impl Split {
    /// Lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }

    fn parse(s: &str) -> Option<Split> {
        [Split::Train, Split::Dev, Split::Test]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// A source from the manifest, with its rows when they could be read.
#[derive(Debug, Clone)]
pub struct Source {
    /// Manifest name.
    pub name: String,
    /// Its split.
    pub split: Split,
    /// Its licence, as recorded.
    pub licence: String,
    /// Rows, or why they are missing.
    pub rows: Result<Vec<Row>, String>,
}

/// The crate's `eval/` directory.
pub fn eval_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("eval")
}

/// The default cache of sources that are not committed.
pub fn default_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/detection-data")
}

/// Parses `{"text": ..., "label": "attack"|"benign"}` lines.
pub fn parse_rows(jsonl: &str) -> Result<Vec<Row>, String> {
    #[derive(serde::Deserialize)]
    struct Line {
        text: String,
        label: String,
    }
    let mut out = Vec::new();
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let attack = match l.label.as_str() {
            "attack" => true,
            "benign" => false,
            other => return Err(format!("line {}: bad label {other}", i + 1)),
        };
        out.push(Row {
            text: l.text,
            attack,
        });
    }
    Ok(out)
}

/// The built-in corpus as rows: a line is an attack when it expects a block.
pub fn corpus_rows() -> Result<Vec<Row>, String> {
    let samples = corpus::builtin().map_err(|e| e.to_string())?;
    Ok(samples
        .into_iter()
        .map(|s| Row {
            attack: s.decision == "block",
            text: s.text,
        })
        .collect())
}

/// Reads the manifest in `eval_dir` and every source it lists: committed
/// ones from `eval_dir/data`, the others from `cache_dir`, the project's
/// corpus from the crate.
pub fn load_sources(eval_dir: &Path, cache_dir: &Path) -> Result<Vec<Source>, String> {
    let path = eval_dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let sources = manifest
        .get("sources")
        .and_then(|s| s.as_object())
        .ok_or("manifest: no sources object")?;
    let mut out = Vec::new();
    for (name, spec) in sources {
        let field = |k: &str| spec.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let split = Split::parse(field("split"))
            .ok_or_else(|| format!("manifest: source {name}: bad split"))?;
        let committed = spec
            .get("committed")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let rows = if name == "octollm-corpus" {
            corpus_rows()
        } else {
            let dir = if committed {
                eval_dir.join("data")
            } else {
                cache_dir.to_path_buf()
            };
            let file = dir.join(format!("{name}.jsonl"));
            std::fs::read_to_string(&file)
                .map_err(|e| {
                    format!(
                        "{}: {e} (run crates/detection/eval/prepare.py)",
                        file.display()
                    )
                })
                .and_then(|t| parse_rows(&t))
        };
        out.push(Source {
            name: name.clone(),
            split,
            licence: field("licence").to_string(),
            rows,
        });
    }
    out.sort_by(|a, b| (a.split, &a.name).cmp(&(b.split, &b.name)));
    Ok(out)
}

/// The training rows of the learned stage: every train-split source, in
/// manifest order, as `(text, is_attack)`.
pub fn training_rows(sources: &[Source]) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    for s in sources.iter().filter(|s| s.split == Split::Train) {
        let rows = s.rows.as_ref().map_err(|e| format!("{}: {e}", s.name))?;
        out.extend(rows.iter().map(|r| (r.text.clone(), r.attack)));
    }
    Ok(out)
}

/// Learned-stage thresholds in the threshold table.
pub const THRESHOLDS: [f32; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Outcome of one row.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    attack: bool,
    /// The rules alone block.
    rules: bool,
    /// The fused decision at the detector's configured threshold.
    fused: bool,
    /// The learned score (0 when the stage is off).
    score: f32,
}

/// Confusion counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Attacks blocked.
    pub tp: usize,
    /// Attacks let through.
    pub fn_: usize,
    /// Benign texts blocked.
    pub fp: usize,
    /// Benign texts let through.
    pub tn: usize,
}

impl Confusion {
    fn add(&mut self, attack: bool, blocked: bool) {
        match (attack, blocked) {
            (true, true) => self.tp += 1,
            (true, false) => self.fn_ += 1,
            (false, true) => self.fp += 1,
            (false, false) => self.tn += 1,
        }
    }

    /// Blocked attacks / attacks (`None` without attacks).
    pub fn recall(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Blocked benign / benign (`None` without benign rows).
    pub fn fpr(&self) -> Option<f64> {
        ratio(self.fp, self.fp + self.tn)
    }

    /// Blocked attacks / blocked (`None` when nothing was blocked).
    pub fn precision(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }

    fn merge(&mut self, o: &Confusion) {
        self.tp += o.tp;
        self.fn_ += o.fn_;
        self.fp += o.fp;
        self.tn += o.tn;
    }
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Scores of one source.
#[derive(Debug, Clone)]
pub struct SourceReport {
    /// Source name.
    pub name: String,
    /// Its split.
    pub split: Split,
    /// Rules only.
    pub rules: Confusion,
    /// Rules and learned stage, at the detector's threshold.
    pub fused: Confusion,
    /// Fused, at each of [`THRESHOLDS`].
    pub by_threshold: Vec<Confusion>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per source, in split then name order.
    pub sources: Vec<SourceReport>,
    /// Sources that could not be read, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Per category: (rows with a finding of it that are attacks, that are benign).
    pub categories: BTreeMap<&'static str, (usize, usize)>,
}

/// Scores every readable source with `detector`.
pub fn evaluate(detector: &Detector, sources: &[Source]) -> Report {
    let mut report = Report::default();
    let checks = Checks {
        pii: false,
        injection: true,
    };
    for s in sources {
        let rows = match &s.rows {
            Ok(rows) => rows,
            Err(e) => {
                report.skipped.push((s.name.clone(), e.clone()));
                continue;
            }
        };
        let mut outcomes = Vec::with_capacity(rows.len());
        for r in rows {
            let scan = detector.scan(&r.text, &checks);
            let learned_hit = scan
                .injection
                .iter()
                .any(|f| f.category == InjectionCategory::LearnedJailbreak);
            let fused = scan.decision == Decision::Block;
            let mut seen = [false; InjectionCategory::ALL.len()];
            for f in scan.injection.iter().filter(|f| f.confidence >= 0.5) {
                seen[f.category as usize] = true;
            }
            for c in InjectionCategory::ALL
                .into_iter()
                .filter(|c| seen[*c as usize])
            {
                let e = report.categories.entry(c.as_str()).or_default();
                if r.attack {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
            outcomes.push(Outcome {
                attack: r.attack,
                rules: fused && !learned_hit,
                fused,
                score: detector.learned_score(&r.text).unwrap_or(0.0),
            });
        }
        let mut rules = Confusion::default();
        let mut fused = Confusion::default();
        let mut by_threshold = vec![Confusion::default(); THRESHOLDS.len()];
        for o in &outcomes {
            rules.add(o.attack, o.rules);
            fused.add(o.attack, o.fused);
            for (t, c) in THRESHOLDS.iter().zip(by_threshold.iter_mut()) {
                c.add(o.attack, o.rules || o.score >= *t);
            }
        }
        report.sources.push(SourceReport {
            name: s.name.clone(),
            split: s.split,
            rules,
            fused,
            by_threshold,
        });
    }
    report
}

impl Report {
    /// Fused counts over every source of `split`.
    pub fn split_total(&self, split: Split) -> Confusion {
        let mut c = Confusion::default();
        for s in self.sources.iter().filter(|s| s.split == split) {
            c.merge(&s.fused);
        }
        c
    }
}

/// Floors on the dev split (`eval/floors.json`).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct Floors {
    /// Dev-split recall must be at least this.
    pub min_recall: f64,
    /// Dev-split false-positive rate must be at most this.
    pub max_fpr: f64,
}

impl Floors {
    /// Parses `{"min_recall": .., "max_fpr": ..}`.
    pub fn parse(json: &str) -> Result<Floors, String> {
        serde_json::from_str(json).map_err(|e| format!("floors: {e}"))
    }

    /// What the dev split of `report` fails, if anything. A dev split
    /// without attacks or without benign rows fails too.
    pub fn failures(&self, report: &Report) -> Vec<String> {
        let dev = report.split_total(Split::Dev);
        let mut out = Vec::new();
        match dev.recall() {
            Some(r) if r >= self.min_recall => {}
            Some(r) => out.push(format!("dev recall {r:.3} < floor {:.3}", self.min_recall)),
            None => out.push("dev split has no attacks".to_string()),
        }
        match dev.fpr() {
            Some(f) if f <= self.max_fpr => {}
            Some(f) => out.push(format!("dev FPR {f:.3} > floor {:.3}", self.max_fpr)),
            None => out.push("dev split has no benign rows".to_string()),
        }
        out
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{:.3}", v))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<22} {:<5} {:>6} {:>6} | {:>6} {:>6} | {:>6} {:>6} {:>6}",
            "source", "split", "attack", "benign", "r.rec", "r.fpr", "recall", "fpr", "prec"
        )?;
        for s in &self.sources {
            let c = &s.fused;
            writeln!(
                f,
                "{:<22} {:<5} {:>6} {:>6} | {:>6} {:>6} | {:>6} {:>6} {:>6}",
                s.name,
                s.split.as_str(),
                c.tp + c.fn_,
                c.fp + c.tn,
                pct(s.rules.recall()),
                pct(s.rules.fpr()),
                pct(c.recall()),
                pct(c.fpr()),
                pct(c.precision()),
            )?;
        }
        for split in [Split::Train, Split::Dev, Split::Test] {
            let c = self.split_total(split);
            if c.tp + c.fn_ + c.fp + c.tn > 0 {
                writeln!(
                    f,
                    "{:<22} {:<5} {:>6} {:>6} | {:>6} {:>6} | {:>6} {:>6} {:>6}",
                    "ALL",
                    split.as_str(),
                    c.tp + c.fn_,
                    c.fp + c.tn,
                    "",
                    "",
                    pct(c.recall()),
                    pct(c.fpr()),
                    pct(c.precision()),
                )?;
            }
        }
        writeln!(
            f,
            "\nlearned threshold: recall / FPR per split (rules always on)"
        )?;
        write!(f, "{:<9}", "split")?;
        for t in THRESHOLDS {
            write!(f, " {:>11}", format!("t={t:.1}"))?;
        }
        writeln!(f)?;
        for split in [Split::Train, Split::Dev, Split::Test] {
            let mut cs = vec![Confusion::default(); THRESHOLDS.len()];
            let mut any = false;
            for s in self.sources.iter().filter(|s| s.split == split) {
                any = true;
                for (c, o) in cs.iter_mut().zip(&s.by_threshold) {
                    c.merge(o);
                }
            }
            if !any {
                continue;
            }
            write!(f, "{:<9}", split.as_str())?;
            for c in &cs {
                write!(
                    f,
                    " {:>11}",
                    format!("{}/{}", pct(c.recall()), pct(c.fpr()))
                )?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "\ncategory (findings >= 0.5): rows attack / benign, precision"
        )?;
        for (name, (a, b)) in &self.categories {
            writeln!(
                f,
                "{:<28} {:>5} {:>5} {:>6}",
                name,
                a,
                b,
                pct(ratio(*a, a + b))
            )?;
        }
        for (name, why) in &self.skipped {
            writeln!(f, "skipped {name}: {why}")?;
        }
        Ok(())
    }
}
