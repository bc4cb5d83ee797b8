//! The scenario table: one row per incident, the fault that causes it, the
//! traffic that makes it visible, and every alert it must page (where).
//!
//! Adding a scenario is one entry, e.g. a reflex-layer crash:
//!
//! ```text
//! Scenario {
//!     name: "reflex-down",
//!     summary: "the reflex layer dies",
//!     fault: Fault::Kill(Component::ReflexLayer),
//!     load: Load::None,
//!     pages: &[page("ServiceDown", Some("reflex-layer"), "pagerduty")],
//!     precondition: None,
//!     warm_up_s: 0,
//!     load_while_healing: false,
//!     in_ci: false,
//! },
//! ```

use super::fault::{Fault, Load};
use super::observe::Expect;
use crate::stack::Component;

pub struct Scenario {
    pub name: &'static str,
    pub summary: &'static str,
    pub fault: Fault,
    pub load: Load,
    /// Every alert this incident must page, at its receiver.
    pub pages: &'static [Expect],
    /// A PromQL query (uncompressed; alert-sim compresses its windows like
    /// the rules') that must return nothing before injecting, and why: the
    /// scenario cannot page within its bound while it returns something.
    pub precondition: Option<(&'static str, &'static str)>,
    /// Seconds the traffic runs before the fault is injected, so the fault
    /// hits steady traffic (time to page is measured from the injection).
    pub warm_up_s: u64,
    /// Keep the traffic running while healing and resolving (a circuit
    /// breaker only closes again when requests arrive).
    pub load_while_healing: bool,
    /// Part of `cargo xtask ci`'s representative subset.
    pub in_ci: bool,
}

const fn page(alert: &'static str, job: Option<&'static str>, receiver: &'static str) -> Expect {
    Expect {
        alert,
        job,
        receiver,
    }
}

/// Every scenario, in the order the suite runs them. Those paging other
/// jobs follow availability-burn while its critical orchestrator alerts
/// (which inhibit the orchestrator's warnings) resolve.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "service-down",
        summary: "llm-sim is killed",
        fault: Fault::Kill(Component::LlmSim),
        load: Load::None,
        pages: &[page("ServiceDown", Some("llm-sim"), "pagerduty")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: true,
    },
    Scenario {
        name: "redis-down",
        summary: "Redis is killed",
        fault: Fault::Kill(Component::Redis),
        load: Load::None,
        pages: &[page("RedisDown", Some("redis"), "slack")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "backup-too-old",
        summary: "the last backup pushed to the Pushgateway is 26 hours old",
        fault: Fault::StaleBackup { age_hours: 26 },
        load: Load::None,
        pages: &[page("BackupTooOld", None, "slack")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "injection-surge",
        summary: "prompt injections flood the reflex layer",
        fault: Fault::None,
        load: Load::Injections { per_second: 5 },
        pages: &[page("InjectionBlockSurge", Some("reflex-layer"), "slack")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "pii-surge",
        summary: "texts full of e-mail addresses flood the reflex layer",
        fault: Fault::None,
        load: Load::PiiTexts { per_second: 5 },
        pages: &[page("PiiDetectionSurge", Some("reflex-layer"), "slack")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "auth-failure-surge",
        summary: "a client keeps presenting a wrong bearer token",
        fault: Fault::None,
        load: Load::BadTokens { per_second: 5 },
        pages: &[page("AuthFailureSurge", Some("orchestrator"), "slack")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "llm-errors",
        summary: "llm-sim fails 60% of calls with 500: the planner arm's calls still fail after its 2 retries, and it answers 5xx",
        fault: Fault::LlmSim(r#"{"errors":{"rate":0.6,"kinds":{"429":0,"500":1,"timeout":0}}}"#),
        load: Load::Tasks { per_second: 10 },
        // LlmErrorRateHigh{job=planner-arm} fires too, silenced by this
        // critical alert of the same job (checked silent).
        pages: &[page("HighErrorRate", Some("planner-arm"), "pagerduty")],
        warm_up_s: 3,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "db-pool-exhausted",
        summary: "a client locks the tasks table: every task query waits holding its pool connection (20 concurrent clients, pool of 16)",
        fault: Fault::LockTasks,
        load: Load::Tasks { per_second: 20 },
        pages: &[page("DbPoolExhausted", Some("orchestrator"), "slack")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "llm-cost-spike",
        summary: "llm-sim answers every call with the most tokens allowed, to tasks with long contexts",
        fault: Fault::LlmSim(r#"{"tokens":{"min":32768,"max":32768}}"#),
        load: Load::CostlyTasks { per_second: 10 },
        pages: &[page("LlmCostSpike", None, "slack")],
        warm_up_s: 0,
        precondition: Some((
            "2 * avg_over_time(octollm:llm_api_cost_usd:increase1h[7d]) > 1",
            "LlmCostSpike compares the last hour's spend with twice its 7-day average (5.6 h at 30×), which earlier spikes on this stack have raised above 1 USD: the spike would first have to outgrow them. Run it on a fresh stack (the default temporary one)",
        )),
        load_while_healing: false,
        in_ci: true,
    },
    Scenario {
        name: "reflex-hang",
        summary: "the reflex layer hangs (SIGSTOP) under task traffic",
        fault: Fault::Freeze(Component::ReflexLayer),
        load: Load::Tasks { per_second: 5 },
        pages: &[
            page("ServiceDown", Some("reflex-layer"), "pagerduty"),
            page(
                "ReflexScreeningUnavailable",
                Some("orchestrator"),
                "pagerduty",
            ),
        ],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: true,
        in_ci: false,
    },
    Scenario {
        name: "postgres-down",
        summary: "PostgreSQL stops under task traffic: the orchestrator answers 503",
        fault: Fault::StopPostgres,
        load: Load::Tasks { per_second: 10 },
        pages: &[
            page("PostgresDown", Some("postgres"), "pagerduty"),
            page("HighErrorRate", Some("orchestrator"), "pagerduty"),
        ],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: true,
    },
    Scenario {
        name: "availability-burn",
        summary: "PostgreSQL stops again under task traffic: the 1-hour availability budget burns 14.4× too fast",
        fault: Fault::StopPostgres,
        load: Load::Tasks { per_second: 10 },
        pages: &[page(
            "AvailabilityBudgetBurn1h",
            Some("orchestrator"),
            "pagerduty",
        )],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "backup-verify-failed",
        summary: "a file of the newest backup is damaged; the real pgbackrest verify finds it",
        fault: Fault::DamageBackup,
        load: Load::None,
        pages: &[page("BackupVerifyFailed", None, "pagerduty")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "backup-status-missing",
        summary: "the backup metrics are deleted from the Pushgateway",
        fault: Fault::DeleteBackupStatus,
        load: Load::None,
        pages: &[page("BackupStatusMissing", None, "slack")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "wal-archiving-failing",
        summary: "pgBackRest cannot write the WAL archive (directory mode 000) while WAL segments keep switching",
        fault: Fault::BreakWalArchiving,
        load: Load::Tasks { per_second: 2 },
        pages: &[page("WalArchivingFailing", Some("postgres"), "pagerduty")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "postgres-connections-high",
        summary: "a client (pgbench) holds connections up to 86% of max_connections",
        fault: Fault::HoldConnections { share: 0.86 },
        load: Load::None,
        pages: &[page("PostgresConnectionsHigh", Some("postgres"), "slack")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "redis-evictions",
        summary: "Redis maxmemory is lowered to what it holds while a client keeps writing",
        fault: Fault::FillRedis,
        load: Load::None,
        pages: &[page("RedisEvictionsHigh", Some("redis"), "email")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "rate-limit-flood",
        summary: "one user sends 120 checks a second to the reflex layer (its tier allows 50/s, burst 100)",
        fault: Fault::None,
        load: Load::OneUserFlood { per_second: 120 },
        pages: &[page(
            "RateLimitRejectionsHigh",
            Some("reflex-layer"),
            "slack",
        )],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "db-slow-queries",
        summary: "a client keeps re-taking a lock on the tasks table: task queries wait up to 0.8s",
        fault: Fault::CycleTasksLock,
        load: Load::Tasks { per_second: 5 },
        pages: &[page("DbSlowQueries", Some("orchestrator"), "slack")],
        warm_up_s: 0,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
    Scenario {
        name: "arm-down",
        summary: "the guardian arm, which every task needs, dies under task traffic",
        fault: Fault::Kill(Component::GuardianArm),
        load: Load::Tasks { per_second: 10 },
        pages: &[
            page("ServiceDown", Some("guardian-arm"), "pagerduty"),
            page("ArmUnavailable", Some("orchestrator"), "slack"),
            page("ArmCircuitOpen", Some("orchestrator"), "slack"),
        ],
        warm_up_s: 3,
        precondition: None,
        load_while_healing: false,
        in_ci: false,
    },
];

/// Alerts the suite does not reproduce on the local stack, and why.
pub const NOT_REPRODUCED: &[(&str, &str)] = &[
    (
        "Watchdog",
        "the dead man's switch fires all the time, with no fault to inject; `cargo xtask doctor` checks that its heartbeats reach the alert sink",
    ),
    (
        "ScreeningCredentialsRefused",
        "the orchestrator and the reflex layer read the same token file at start; making them disagree takes a restart with another token, a fault with no test-only path until tokens reload on rotation",
    ),
    (
        "PostgresReplicationLag",
        "needs a streaming replica; the local stack runs one PostgreSQL",
    ),
    (
        "LowUptime",
        "its 1-day window (48 min compressed) averages over the history there is: on a young stack any outage pages it (seen after service-down), on an old one it needs a 2.4-minute outage; either way its time to page measures the stack's age, not the alerting path",
    ),
    (
        "AvailabilityBudgetBurn3d",
        "3-day window (2.4 h compressed) and a 1 h for:",
    ),
    (
        "TaskSuccessBudgetBurn3d",
        "3-day window (2.4 h compressed) and a 1 h for:",
    ),
    (
        "AvailabilityBudgetBurn6h",
        "6-hour window (12 min compressed): on a young stack postgres-down fires it (little traffic to outweigh), on an old one the errors take minutes to; its time to page depends on the stack's history, so it is not asserted",
    ),
    (
        "TaskSuccessBudgetBurn6h",
        "6-hour window (12 min compressed), as AvailabilityBudgetBurn6h",
    ),
    (
        "LlmDailySpendHigh",
        "500 USD within a day's window (48 min compressed) is 25 million completion tokens of llm-sim's price",
    ),
    (
        "LlmMonthlyProjectionHigh",
        "333 USD within a day's window (48 min compressed), as LlmDailySpendHigh",
    ),
    (
        "HostCpuHigh",
        "would saturate the shared build machine for minutes",
    ),
    ("HostMemoryHigh", "would push the shared host to 90% memory"),
    (
        "HostDiskSpaceLow",
        "node-exporter watches the host's filesystems; filling one is not safe on a shared machine (a small tmpfs needs root mounts)",
    ),
    (
        "ServiceMemoryHigh",
        "needs a service holding 1 GiB for its for:; no fault without a test-only code path",
    ),
    (
        "FileDescriptorsExhausted",
        "needs a service at 90% of its fd limit; its limit is inherited and not lowered without a restart under ulimit",
    ),
    (
        "WalArchiveTooOld",
        "needs archiving stuck for 15 minutes of wall-clock (its threshold is an age, not a window)",
    ),
    (
        "LlmErrorRateHigh",
        "the arms call the LLM and retry twice: at error rates that keep its ratio clearly over 10% (40% and up) the planner arm fails steps and answers 5xx, and its critical HighErrorRate and AvailabilityBudgetBurn1h silence it (llm-errors checks it stays silent); at 20% it pages, but its 10-second window fills too slowly near the threshold to page within 1.2x its bound",
    ),
    (
        "LlmLatencyHigh",
        "a call slower than 10s is observed only when it ends, 10s after the fault: the bound would need the injected latency as a term the alerting path does not have, and for: 10m is only 20s compressed, so that term would dominate the measurement",
    ),
    (
        "TaskLatencyHigh",
        "as LlmLatencyHigh: a task slower than 30s is observed only when it ends, 30s after the fault, longer than the whole compressed bound (for: 10m = 20s)",
    ),
    (
        "TaskTimeoutRateHigh",
        "tasks time out after their budget's max_time_seconds (not compressed), observed only then: the timeout, not the alerting path, would set the time to page",
    ),
    (
        "TaskThroughputLow",
        "needs queued tasks the workers do not drain: hanging llm-sim stalls them, but only once all 64 workers hold a task, a ramp the bound does not include; not built (timebox)",
    ),
    (
        "TaskQueueGrowing",
        "needs more than 50 queued tasks beyond 64 busy workers: as TaskThroughputLow, the ramp to 114 tasks in flight precedes the alerting path; not built (timebox)",
    ),
    (
        "ReflexLatencyHigh",
        "needs the reflex layer's p99 over 50ms without a test-only delay: only CPU starvation of the shared machine would do it; not built",
    ),
    (
        "CacheHitRateLow",
        "its baseline is the 1-day hit ratio (48 min compressed): needs a long warm-up of repeated texts, longer than the suite",
    ),
    (
        "CacheEvictionsHigh",
        "needs over 50 evictions/s from the reflex L1 cache (REFLEX_L1_CAPACITY is a startup setting): over 50 new texts/s past the per-user rate limit; not built (timebox)",
    ),
    (
        "PrometheusRuleFailures",
        "needs a rule that fails at evaluation in the loaded rules: would mean editing the rules under test",
    ),
    (
        "AlertmanagerNotificationsFailing",
        "reproducible (stop the alert sink), but then no receiver records it: the sink is how alert-sim observes pages",
    ),
    (
        "TaskSuccessBudgetBurn1h",
        "the failures must outweigh the last hour's (2 min compressed) successes first, so its time to page depends on earlier traffic",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom::rules::{Rules, SEVERITY_RECEIVERS};

    #[test]
    fn every_scenario_pages_real_alerts_at_their_severitys_receiver() {
        let rules =
            Rules::load(&crate::util::project_root().join("deploy/monitoring/rules")).unwrap();
        let mut names = std::collections::BTreeSet::new();
        for scenario in SCENARIOS {
            assert!(names.insert(scenario.name), "duplicate {}", scenario.name);
            assert!(
                !scenario.pages.is_empty(),
                "{} expects no page",
                scenario.name
            );
            for page in scenario.pages {
                let rule = rules
                    .alert(page.alert)
                    .unwrap_or_else(|| panic!("{}: no alert {}", scenario.name, page.alert));
                let severity = &rule.labels["severity"];
                let receiver = SEVERITY_RECEIVERS
                    .iter()
                    .find(|(s, _)| s == severity)
                    .map(|(_, r)| *r)
                    .unwrap();
                assert_eq!(page.receiver, receiver, "{}: {}", scenario.name, page.alert);
            }
        }
        for (alert, _) in NOT_REPRODUCED {
            assert!(
                rules.alert(alert).is_some(),
                "NOT_REPRODUCED names unknown {alert}"
            );
        }
    }

    #[test]
    fn every_alert_has_a_scenario_or_a_reason() {
        let rules =
            Rules::load(&crate::util::project_root().join("deploy/monitoring/rules")).unwrap();
        for alert in rules.alerts() {
            let name = alert.name();
            let in_scenario = SCENARIOS
                .iter()
                .any(|s| s.pages.iter().any(|p| p.alert == name));
            let excused = NOT_REPRODUCED.iter().any(|(a, _)| *a == name);
            assert!(
                in_scenario != excused,
                "{name}: add a scenario to SCENARIOS or say why not in NOT_REPRODUCED (not both)"
            );
        }
    }

    #[test]
    fn the_ci_subset_covers_what_issue_7_asks() {
        let ci: Vec<&str> = SCENARIOS
            .iter()
            .filter(|s| s.in_ci)
            .flat_map(|s| s.pages.iter().map(|p| p.alert))
            .collect();
        for alert in [
            "ServiceDown",
            "HighErrorRate",
            "LlmCostSpike",
            "PostgresDown",
        ] {
            assert!(
                ci.contains(&alert),
                "{alert} missing from the CI subset {ci:?}"
            );
        }
    }
}
