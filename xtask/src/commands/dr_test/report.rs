//! What a drill measured, judged against both target sets, as a table, JSON
//! and Markdown.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Serialize;

use super::Verdict;
use crate::say;

/// The seed's targets and ours.
const SEED_RTO: Duration = Duration::from_secs(4 * 3600);
const SEED_RPO: Duration = Duration::from_secs(3600);
const OUR_RTO: Duration = Duration::from_secs(60);
const OUR_RPO: Duration = Duration::from_secs(1);

/// A scenario's measurements.
#[derive(Default)]
pub struct Outcome {
    pub phases: Vec<(String, f64)>,
    pub rto: Option<Duration>,
    pub rpo: Option<Duration>,
    pub verdict: Option<Verdict>,
    /// Whether any acknowledged write may be lost (disk loss: within the RPO).
    pub loss_allowed: bool,
    /// Our RPO target when it is not [`OUR_RPO`] (Redis: its copy interval).
    pub rpo_goal: Option<Duration>,
    pub notes: Vec<String>,
    current: Option<(String, Instant)>,
}

impl Outcome {
    /// For restores to "latest": writes within the RPO may be lost.
    pub fn allowing_loss_within_rpo() -> Self {
        Self {
            loss_allowed: true,
            ..Self::default()
        }
    }

    /// Ends the current phase (if any) and starts `name`.
    pub fn phase(&mut self, name: &str) {
        self.end_phase();
        say!("   · {name}");
        self.current = Some((name.to_owned(), Instant::now()));
    }

    pub fn end_phase(&mut self) {
        if let Some((name, started)) = self.current.take() {
            self.phases.push((name, started.elapsed().as_secs_f64()));
        }
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        say!("     {note}");
        self.notes.push(note);
    }
}

#[derive(Serialize)]
pub struct ScenarioReport {
    pub name: &'static str,
    pub summary: &'static str,
    pub phases: Vec<(String, f64)>,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    pub verdict: Option<Verdict>,
    pub meets_seed_targets: bool,
    pub meets_our_targets: bool,
    pub passed: bool,
    pub reasons: Vec<String>,
    pub notes: Vec<String>,
}

impl ScenarioReport {
    /// The report of one drill, `name` (`summary`), from how its run ended.
    pub fn from_run(name: &'static str, summary: &'static str, run: Result<Outcome>) -> Self {
        let (mut outcome, mut reasons) = match run {
            Ok(outcome) => (outcome, Vec::new()),
            Err(error) => (Outcome::default(), vec![format!("{error:#}")]),
        };
        outcome.end_phase();
        if let Some(v) = &outcome.verdict {
            if v.lost > 0 && !outcome.loss_allowed {
                reasons.push(format!(
                    "{} of {} acknowledged writes lost (e.g. {})",
                    v.lost,
                    v.expected,
                    v.lost_examples.join(", ")
                ));
            }
            if v.unexpected > 0 {
                reasons.push(format!(
                    "{} writes acknowledged after the recovery target are present",
                    v.unexpected
                ));
            }
        }
        let within = |value: Option<Duration>, limit| value.is_none_or(|v| v <= limit);
        let meets_seed = within(outcome.rto, SEED_RTO) && within(outcome.rpo, SEED_RPO);
        let rpo_goal = outcome.rpo_goal.unwrap_or(OUR_RPO);
        let meets_ours = within(outcome.rto, OUR_RTO) && within(outcome.rpo, rpo_goal);
        if reasons.is_empty() && !meets_ours {
            reasons.push(format!(
                "misses RTO ≤ {}s / RPO ≤ {}s",
                OUR_RTO.as_secs(),
                rpo_goal.as_secs()
            ));
        }
        Self {
            name,
            summary,
            phases: outcome.phases,
            rto_seconds: outcome.rto.map(|d| d.as_secs_f64()),
            rpo_seconds: outcome.rpo.map(|d| d.as_secs_f64()),
            verdict: outcome.verdict,
            meets_seed_targets: meets_seed && reasons.is_empty(),
            meets_our_targets: meets_ours && reasons.is_empty(),
            passed: reasons.is_empty(),
            reasons,
            notes: outcome.notes,
        }
    }

    pub fn one_line(&self) -> String {
        let verdict = self.verdict.as_ref().map_or(String::new(), |v| {
            format!(
                ", {} acknowledged writes checked, {} lost",
                v.expected, v.lost
            )
        });
        format!(
            "{} — RTO {}, RPO {}{verdict}{}",
            if self.passed { "PASS" } else { "FAIL" },
            seconds(self.rto_seconds),
            seconds(self.rpo_seconds),
            if self.reasons.is_empty() {
                String::new()
            } else {
                format!(" — {}", self.reasons.join("; "))
            }
        )
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("n/a".to_owned(), |s| format!("{s:.3}s"))
}

#[derive(Serialize)]
pub struct Report {
    pub finished_at_unix: u64,
    pub dataset_bytes: u64,
    pub total_seconds: f64,
    pub scenarios: Vec<ScenarioReport>,
}

impl Report {
    pub fn new(dataset_bytes: u64) -> Self {
        Self {
            finished_at_unix: 0,
            dataset_bytes,
            total_seconds: 0.0,
            scenarios: Vec::new(),
        }
    }

    pub fn table(&self) -> String {
        let mut out = format!(
            "\n{:<20} {:<6} {:>10} {:>10} {:>8} {:>6} {:>6} {:>6}\n",
            "scenario", "result", "RTO", "RPO", "checked", "lost", "seed", "ours"
        );
        for s in &self.scenarios {
            let (checked, lost) = s.verdict.as_ref().map_or(("-".into(), "-".into()), |v| {
                (v.expected.to_string(), v.lost.to_string())
            });
            let yes = |b: bool| if b { "yes" } else { "no" };
            let _ = writeln!(
                out,
                "{:<20} {:<6} {:>10} {:>10} {checked:>8} {lost:>6} {:>6} {:>6}",
                s.name,
                if s.passed { "PASS" } else { "FAIL" },
                seconds(s.rto_seconds),
                seconds(s.rpo_seconds),
                yes(s.meets_seed_targets),
                yes(s.meets_our_targets)
            );
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# DR drill report\n\nDataset: {} MB of task data. Total {:.0} s.\n\
             Targets: seed RTO < 4 h, RPO < 1 h; ours RTO ≤ 60 s, RPO ≤ 1 s.\n\n\
             | scenario | result | RTO | RPO | writes checked | lost | seed targets | our targets |\n\
             |---|---|---|---|---|---|---|---|\n",
            self.dataset_bytes >> 20,
            self.total_seconds
        );
        for s in &self.scenarios {
            let (checked, lost) = s.verdict.as_ref().map_or(("-".into(), "-".into()), |v| {
                (v.expected.to_string(), v.lost.to_string())
            });
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {checked} | {lost} | {} | {} |",
                s.name,
                if s.passed { "pass" } else { "**fail**" },
                seconds(s.rto_seconds),
                seconds(s.rpo_seconds),
                s.meets_seed_targets,
                s.meets_our_targets
            );
        }
        for s in &self.scenarios {
            let _ = write!(md, "\n## {}\n\n{}\n\n", s.name, s.summary);
            for (phase, secs) in &s.phases {
                let _ = writeln!(md, "- {phase}: {secs:.2} s");
            }
            for note in s.notes.iter().chain(&s.reasons) {
                let _ = writeln!(md, "- {note}");
            }
        }
        md
    }

    /// Writes `dr-test-<unix>.{json,md}` into `dir` and, when it still
    /// exists, the stack's state directory; returns the paths.
    pub fn write(&mut self, dir: &Path, state_dir: Option<&Path>) -> Result<Vec<String>> {
        self.finished_at_unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let json = serde_json::to_string_pretty(self)?;
        let md = self.markdown();
        let mut paths = Vec::new();
        let reports_dir = state_dir.map(|s| s.join("dr-reports"));
        for dir in std::iter::once(dir.to_owned()).chain(reports_dir) {
            if std::fs::create_dir_all(&dir).is_err() {
                continue;
            }
            for (ext, text) in [("json", &json), ("md", &md)] {
                let path = dir.join(format!("dr-test-{}.{ext}", self.finished_at_unix));
                std::fs::write(&path, text)?;
                paths.push(path.display().to_string());
            }
        }
        Ok(paths)
    }
}
