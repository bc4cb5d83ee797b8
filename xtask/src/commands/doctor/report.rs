//! What doctor finds: a [`Check`] per question (√, ‼ or ×, one line of
//! evidence, the runbook anchor and the next command), the [`Report`] of a
//! run, its exit code, the table and the JSON (docs/contracts.md, "Doctor").

use serde::Serialize;

use crate::prom::rules::runbook_base_url;

/// The version of the JSON document; a change that removes or renames a
/// field, or changes a value's meaning, bumps it.
pub const SCHEMA: &str = "octollm.doctor/v1";

/// A group of checks, selectable with `--only` (`--pre` is
/// `--only prerequisites`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Category {
    /// Before a deploy: packages, ports, permissions, disk.
    Prerequisites,
    /// Each component: process alive, readiness, deep health.
    Components,
    /// Targets up, rule evaluation failures, firing alerts.
    Prometheus,
    /// Configuration loaded, notifications failing, silences.
    Alertmanager,
    /// Last full backup, last verify, WAL archiving lag, the WAL stream's slot.
    Backups,
    /// Connections, long and idle-in-transaction transactions, bloat of tasks, slot retention.
    Database,
    /// Disk free, file descriptors and memory per component.
    Resources,
}

impl Category {
    /// What a plain `cargo xtask doctor` checks: a deployed stack, so every
    /// category but the prerequisites (`--pre`).
    pub const DEPLOYED: [Category; 6] = [
        Self::Components,
        Self::Prometheus,
        Self::Alertmanager,
        Self::Backups,
        Self::Database,
        Self::Resources,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Prerequisites => "prerequisites",
            Self::Components => "components",
            Self::Prometheus => "prometheus",
            Self::Alertmanager => "alertmanager",
            Self::Backups => "backups",
            Self::Database => "database",
            Self::Resources => "resources",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub const fn mark(self) -> &'static str {
        match self {
            Self::Ok => "√",
            Self::Warn => "‼",
            Self::Fail => "×",
        }
    }
}

/// A runbook section: `runbooks/<file>#<anchor>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runbook {
    pub file: &'static str,
    pub anchor: &'static str,
}

impl Runbook {
    /// The absolute URL, on the runbook base URL in force
    /// (`OCTOLLM_RUNBOOK_BASE_URL`, as the alerts' `runbook_url`s).
    pub fn url(self) -> String {
        format!(
            "{}runbooks/{}#{}",
            runbook_base_url(),
            self.file,
            self.anchor
        )
    }
}

const fn runbook(file: &'static str, anchor: &'static str) -> Runbook {
    Runbook { file, anchor }
}

pub const SERVICE_DOWN: Runbook = runbook("service-unavailable.md", "servicedown");
pub const POSTGRES_DOWN: Runbook = runbook("database.md", "postgresdown");
pub const REDIS_DOWN: Runbook = runbook("cache.md", "redisdown");
pub const CONNECTIONS_HIGH: Runbook = runbook("database.md", "postgresconnectionshigh");
pub const SLOW_QUERIES: Runbook = runbook("database.md", "dbslowqueries");
pub const DATABASE: Runbook = runbook("database.md", "diagnosis");
pub const MONITORING: Runbook = runbook("monitoring.md", "diagnosis");
pub const RULE_FAILURES: Runbook = runbook("monitoring.md", "prometheusrulefailures");
pub const WATCHDOG: Runbook = runbook("monitoring.md", "watchdog");
pub const NOTIFICATIONS_FAILING: Runbook =
    runbook("monitoring.md", "alertmanagernotificationsfailing");
pub const WAL_ARCHIVING_FAILING: Runbook = runbook("backup-dr.md", "walarchivingfailing");
pub const WAL_ARCHIVE_TOO_OLD: Runbook = runbook("backup-dr.md", "walarchivetooold");
pub const BACKUP_TOO_OLD: Runbook = runbook("backup-dr.md", "backuptooold");
pub const BACKUP_VERIFY_FAILED: Runbook = runbook("backup-dr.md", "backupverifyfailed");
pub const BACKUP_STATUS_MISSING: Runbook = runbook("backup-dr.md", "backupstatusmissing");
pub const WAL_STREAM: Runbook = runbook("disaster-recovery.md", "what-is-backed-up-and-where");
pub const DISK_LOW: Runbook = runbook("resource-exhaustion.md", "hostdiskspacelow");
pub const FDS_EXHAUSTED: Runbook = runbook("resource-exhaustion.md", "filedescriptorsexhausted");
pub const MEMORY_HIGH: Runbook = runbook("memory-leak.md", "servicememoryhigh");
pub const RESOURCES: Runbook = runbook("resource-exhaustion.md", "diagnosis");

/// Every runbook section doctor links (a test resolves each one).
pub const RUNBOOKS: [Runbook; 19] = [
    SERVICE_DOWN,
    POSTGRES_DOWN,
    REDIS_DOWN,
    CONNECTIONS_HIGH,
    SLOW_QUERIES,
    DATABASE,
    MONITORING,
    RULE_FAILURES,
    NOTIFICATIONS_FAILING,
    WAL_ARCHIVING_FAILING,
    WAL_ARCHIVE_TOO_OLD,
    BACKUP_TOO_OLD,
    BACKUP_VERIFY_FAILED,
    BACKUP_STATUS_MISSING,
    WAL_STREAM,
    DISK_LOW,
    FDS_EXHAUSTED,
    MEMORY_HIGH,
    RESOURCES,
];

/// One answered question.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub category: Category,
    /// Stable within its category (a component name, `targets`, `silences`…).
    pub name: String,
    pub status: Status,
    /// One line: what was seen.
    pub evidence: String,
    /// Where to read on, for a warning or failure.
    pub runbook: Option<Runbook>,
    /// The command to run next, for a warning or failure.
    pub next: Option<String>,
}

impl Check {
    pub fn of(category: Category, name: impl Into<String>) -> CheckBuilder {
        CheckBuilder {
            category,
            name: name.into(),
        }
    }

    /// The same check, with a hint for when it is not ok.
    pub fn hint(mut self, runbook: Runbook, next: impl Into<String>) -> Self {
        if self.status != Status::Ok {
            self.runbook = Some(runbook);
            self.next = Some(next.into());
        }
        self
    }
}

/// `Check::of(category, name).ok("…")`, `.warn(…)`, `.fail(…)`.
pub struct CheckBuilder {
    category: Category,
    name: String,
}

impl CheckBuilder {
    pub fn status(self, status: Status, evidence: impl Into<String>) -> Check {
        Check {
            category: self.category,
            name: self.name,
            status,
            evidence: evidence.into(),
            runbook: None,
            next: None,
        }
    }

    pub fn ok(self, evidence: impl Into<String>) -> Check {
        self.status(Status::Ok, evidence)
    }

    pub fn warn(self, evidence: impl Into<String>) -> Check {
        self.status(Status::Warn, evidence)
    }

    pub fn fail(self, evidence: impl Into<String>) -> Check {
        self.status(Status::Fail, evidence)
    }
}

/// Every check of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub checks: Vec<Check>,
    /// `--strict`: warnings fail the run too.
    pub strict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
}

impl Report {
    pub fn summary(&self) -> Summary {
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        Summary {
            ok: count(Status::Ok),
            warn: count(Status::Warn),
            fail: count(Status::Fail),
        }
    }

    /// 0 healthy (warnings allowed unless strict), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        let s = self.summary();
        u8::from(s.fail > 0 || (self.strict && s.warn > 0))
    }

    /// The checks that make the run fail.
    pub fn failing(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail || (self.strict && c.status == Status::Warn))
            .collect()
    }

    /// The check named `name` of `category`.
    #[cfg(test)]
    pub fn find(&self, category: Category, name: &str) -> Option<&Check> {
        self.checks
            .iter()
            .find(|c| c.category == category && c.name == name)
    }

    /// The table for people: categories, one line per check, hints indented.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut current = None;
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for check in &self.checks {
            if current != Some(check.category) {
                if current.is_some() {
                    out.push('\n');
                }
                out.push_str(check.category.name());
                out.push('\n');
                current = Some(check.category);
            }
            out.push_str(&format!(
                "  {} {:<width$}  {}\n",
                check.status.mark(),
                check.name,
                check.evidence
            ));
            if let Some(runbook) = check.runbook {
                out.push_str(&format!("      see:  {}\n", runbook.url()));
            }
            if let Some(next) = &check.next {
                out.push_str(&format!("      next: {next}\n"));
            }
        }
        let s = self.summary();
        out.push_str(&format!(
            "\n{} √  {} ‼  {} ×: {}\n",
            s.ok,
            s.warn,
            s.fail,
            match (self.exit_code(), s.warn) {
                (0, 0) => "healthy",
                (0, _) => "healthy, with warnings (--strict fails on them)",
                _ if s.fail == 0 => "warnings fail the run (--strict)",
                _ => "failing",
            }
        ));
        out
    }

    /// The JSON document (docs/contracts.md, "Doctor").
    pub fn json(&self, stack: Option<StackRef>) -> serde_json::Value {
        let summary = self.summary();
        let checks: Vec<serde_json::Value> = self
            .checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "category": c.category,
                    "name": c.name,
                    "status": c.status,
                    "evidence": c.evidence,
                    "runbook": c.runbook.map(Runbook::url),
                    "next": c.next,
                })
            })
            .collect();
        serde_json::json!({
            "schema": SCHEMA,
            "stack": stack,
            "strict": self.strict,
            "exit_code": self.exit_code(),
            "summary": summary,
            "checks": checks,
        })
    }
}

/// Spells the next command for the stack under examination: `cargo xtask
/// <sub> … --state-dir DIR` unless the stack is the default one.
#[derive(Debug, Clone, Default)]
pub struct Next {
    /// `--state-dir DIR` to append, empty for the default stack.
    pub state_arg: String,
}

impl Next {
    pub fn for_state_dir(state_dir: &std::path::Path) -> Self {
        let default = std::path::Path::new(".octollm");
        let is_default = state_dir == default
            || crate::util::project_root()
                .join(default)
                .canonicalize()
                .is_ok_and(|d| state_dir.canonicalize().is_ok_and(|s| s == d));
        Self {
            state_arg: if is_default {
                String::new()
            } else {
                format!(" --state-dir {}", state_dir.display())
            },
        }
    }

    /// `cargo xtask <args>` on this stack.
    pub fn xtask(&self, args: &str) -> String {
        format!("cargo xtask {args}{}", self.state_arg)
    }
}

/// Which stack a report is about, for the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct StackRef {
    pub state_dir: String,
    pub port_base: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: Status) -> Check {
        Check::of(Category::Components, "orchestrator")
            .status(status, "pid 1")
            .hint(SERVICE_DOWN, "cargo xtask restart orchestrator")
    }

    #[test]
    fn exit_code_is_one_on_a_failure_and_on_a_warning_only_when_strict() {
        let healthy = Report {
            checks: vec![check(Status::Ok), check(Status::Ok)],
            strict: true,
        };
        assert_eq!(healthy.exit_code(), 0);
        let warned = Report {
            checks: vec![check(Status::Ok), check(Status::Warn)],
            strict: false,
        };
        assert_eq!(warned.exit_code(), 0);
        assert!(warned.failing().is_empty());
        let strict = Report {
            strict: true,
            ..warned
        };
        assert_eq!(strict.exit_code(), 1);
        assert_eq!(strict.failing().len(), 1);
        let failed = Report {
            checks: vec![check(Status::Fail), check(Status::Warn)],
            strict: false,
        };
        assert_eq!(failed.exit_code(), 1);
        assert_eq!(
            failed.summary(),
            Summary {
                ok: 0,
                warn: 1,
                fail: 1
            }
        );
    }

    #[test]
    fn hints_are_kept_only_off_the_happy_path() {
        assert_eq!(check(Status::Ok).runbook, None);
        assert_eq!(check(Status::Ok).next, None);
        assert_eq!(check(Status::Fail).runbook, Some(SERVICE_DOWN));
        assert!(check(Status::Warn).next.is_some());
    }

    #[test]
    fn the_table_marks_each_check_and_links_the_runbook() {
        let report = Report {
            checks: vec![
                check(Status::Ok),
                Check::of(Category::Database, "connections").fail("190 of 200 (95%)"),
                check(Status::Fail),
            ],
            strict: false,
        };
        let table = report.render();
        assert!(table.starts_with("components\n  √ orchestrator"), "{table}");
        assert!(table.contains("\ndatabase\n  × connections "), "{table}");
        assert!(
            table.contains("see:  ")
                && table.contains("runbooks/service-unavailable.md#servicedown"),
            "{table}"
        );
        assert!(table.contains("next: cargo xtask restart orchestrator"));
        assert!(table.trim_end().ends_with("failing"), "{table}");
    }

    /// The JSON schema of docs/contracts.md, "Doctor": these fields, these
    /// types, these values.
    #[test]
    fn json_has_the_documented_schema() {
        let report = Report {
            checks: vec![check(Status::Ok), check(Status::Fail)],
            strict: false,
        };
        let json = report.json(Some(StackRef {
            state_dir: "/tmp/s".into(),
            port_base: 22800,
        }));
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            k.sort();
            k
        };
        assert_eq!(
            keys(&json),
            [
                "checks",
                "exit_code",
                "schema",
                "stack",
                "strict",
                "summary"
            ]
        );
        assert_eq!(json["schema"], "octollm.doctor/v1");
        assert_eq!(json["exit_code"], 1);
        assert_eq!(json["stack"]["port_base"], 22800);
        assert_eq!(json["stack"]["state_dir"], "/tmp/s");
        assert_eq!(keys(&json["summary"]), ["fail", "ok", "warn"]);
        assert_eq!(json["summary"]["fail"], 1);
        let checks = json["checks"].as_array().unwrap();
        assert_eq!(
            keys(&checks[0]),
            ["category", "evidence", "name", "next", "runbook", "status"]
        );
        assert_eq!(checks[0]["status"], "ok");
        assert_eq!(checks[0]["runbook"], serde_json::Value::Null);
        assert_eq!(checks[1]["status"], "fail");
        assert_eq!(checks[1]["category"], "components");
        assert!(
            checks[1]["runbook"]
                .as_str()
                .unwrap()
                .ends_with("/runbooks/service-unavailable.md#servicedown")
        );
        assert!(checks[1]["runbook"].as_str().unwrap().starts_with("http"));
        assert_eq!(checks[1]["next"], "cargo xtask restart orchestrator");
        assert_eq!(report.json(None)["stack"], serde_json::Value::Null);
    }

    #[test]
    fn every_category_is_named_as_clap_and_serde_name_it() {
        use clap::ValueEnum;
        for &category in Category::value_variants() {
            let value = category.to_possible_value().unwrap();
            assert_eq!(value.get_name(), category.name());
            assert_eq!(serde_json::json!(category), category.name());
        }
        assert_eq!(Category::value_variants().len(), 7);
    }

    /// Every runbook anchor doctor links is a heading of that runbook.
    #[test]
    fn every_runbook_link_resolves() {
        let dir = crate::util::project_root().join("runbooks");
        for runbook in RUNBOOKS {
            let text = std::fs::read_to_string(dir.join(runbook.file)).unwrap();
            let found = text.lines().any(|line| {
                let level = line.chars().take_while(|&c| c == '#').count();
                level > 0 && crate::commands::runbooks::slug(line[level..].trim()) == runbook.anchor
            });
            assert!(
                found,
                "runbooks/{}#{} has no heading",
                runbook.file, runbook.anchor
            );
        }
    }
}
