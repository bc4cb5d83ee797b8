//! What counts as healthy: each function turns what a probe measured into a
//! [`Check`] (√, ‼ or ×, evidence, runbook, next command). No I/O here, so
//! every threshold is unit-tested. Thresholds follow the alert rules of
//! `deploy/monitoring/rules` where one exists, so doctor and the pages agree.

use super::report::{self, Category, Check, Next, Status};
use crate::stack::Component;

pub const GIB: u64 = 1 << 30;
pub const MIB: u64 = 1 << 20;

/// Seconds as `42s`, `5m12s`, `3h04m`, `2d03h`.
pub fn age(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Bytes as `512 B`, `12.3 MiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    match n {
        n if n >= GIB => format!("{:.1} GiB", f / GIB as f64),
        n if n >= MIB => format!("{:.1} MiB", f / MIB as f64),
        n if n >= 1024 => format!("{:.1} KiB", f / 1024.0),
        n => format!("{n} B"),
    }
}

#[allow(clippy::cast_precision_loss)]
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

// ---- components ----

/// What `/health/deep` said, for a service that serves it.
#[derive(Debug, Clone, PartialEq)]
pub enum Deep {
    /// The component serves no `/health/deep` (PostgreSQL, the exporters…).
    NotServed,
    /// Its overall status (`up`, `degraded`, `down`) and the dependencies
    /// that are not up, as `name: status (error)`.
    Answered {
        status: String,
        problems: Vec<String>,
    },
    /// It did not answer 200 with JSON.
    Unreadable(String),
}

/// The runbook of a component that is down.
pub fn runbook_of(component: Component) -> report::Runbook {
    match component {
        Component::Postgres => report::POSTGRES_DOWN,
        Component::Redis => report::REDIS_DOWN,
        Component::WalStream => report::WAL_STREAM,
        Component::BackupScheduler => report::BACKUP_TOO_OLD,
        Component::Prometheus | Component::Alertmanager | Component::Pushgateway => {
            report::MONITORING
        }
        _ => report::SERVICE_DOWN,
    }
}

/// A component: its process, its readiness probe, its deep health.
pub fn component(
    next: &Next,
    component: Component,
    pid: Option<i32>,
    ready: bool,
    deep: &Deep,
) -> Check {
    let check = Check::of(Category::Components, component.name());
    let name = component.name();
    let logs = next.xtask(&format!("logs {name}"));
    let restart = next.xtask(&format!("restart {name}"));
    let Some(pid) = pid else {
        return check
            .fail("no process: not running (crashed or stopped)")
            .hint(runbook_of(component), format!("{logs}; then {restart}"));
    };
    if !ready {
        return check
            .fail(format!("pid {pid} alive but its readiness probe fails"))
            .hint(runbook_of(component), logs);
    }
    match deep {
        Deep::NotServed => check.ok(format!("pid {pid}, ready")),
        Deep::Answered { status, problems } => {
            let detail = if problems.is_empty() {
                String::new()
            } else {
                format!(": {}", problems.join(", "))
            };
            let evidence = format!("pid {pid}, ready, deep health {status}{detail}");
            let status = match status.as_str() {
                "up" => Status::Ok,
                "degraded" => Status::Warn,
                _ => Status::Fail,
            };
            check
                .status(status, evidence)
                .hint(runbook_of(component), logs)
        }
        Deep::Unreadable(why) => check
            .warn(format!("pid {pid}, ready, but /health/deep: {why}"))
            .hint(runbook_of(component), logs),
    }
}

// ---- prometheus ----

/// Active scrape targets and the jobs whose `up` is 0.
pub fn targets(next: &Next, total: usize, down: &[String]) -> Check {
    let check = Check::of(Category::Prometheus, "targets");
    if total == 0 {
        return check
            .fail("no scrape target has reported (up has no series)")
            .hint(report::MONITORING, next.xtask("logs prometheus"));
    }
    if down.is_empty() {
        return check.ok(format!("{total} of {total} up"));
    }
    check
        .fail(format!(
            "{} of {total} down: {}",
            down.len(),
            down.join(", ")
        ))
        .hint(report::SERVICE_DOWN, next.xtask("status"))
}

/// Rule groups with evaluation failures in the last 5 minutes.
pub fn rule_failures(next: &Next, groups: &[(String, f64)]) -> Check {
    let check = Check::of(Category::Prometheus, "rule-evaluation");
    if groups.is_empty() {
        return check.ok("no rule evaluation failed in the last 5m");
    }
    let list: Vec<String> = groups
        .iter()
        .map(|(group, n)| format!("{group} ({n:.0})"))
        .collect();
    check
        .fail(format!(
            "evaluation failures in the last 5m: {}",
            list.join(", ")
        ))
        .hint(report::RULE_FAILURES, next.xtask("logs prometheus"))
}

/// A firing alert: name, severity and its runbook URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub name: String,
    pub severity: String,
    pub runbook_url: String,
}

/// Firing alerts: a critical one fails, a warning warns, info is noted.
pub fn firing_alerts(alerts: &[Firing]) -> Check {
    let check = Check::of(Category::Prometheus, "firing-alerts");
    let named = |severity: &str| -> Vec<&Firing> {
        let mut found: Vec<&Firing> = alerts.iter().filter(|a| a.severity == severity).collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.dedup_by(|a, b| a.name == b.name);
        found
    };
    let list = |found: &[&Firing]| {
        found
            .iter()
            .map(|a| format!("{} ({})", a.name, a.severity))
            .collect::<Vec<_>>()
    };
    let (critical, warning) = (named("critical"), named("warning"));
    let worst = critical.first().or(warning.first());
    let mut shown = list(&critical);
    shown.extend(list(&warning));
    shown.extend(list(&named("info")));
    let Some(worst) = worst else {
        return if shown.is_empty() {
            check.ok("none firing")
        } else {
            check.ok(format!("info only: {}", shown.join(", ")))
        };
    };
    let status = if critical.is_empty() {
        Status::Warn
    } else {
        Status::Fail
    };
    let mut check = check.status(status, format!("firing: {}", shown.join(", ")));
    // The alert's own runbook, as the page links it.
    check.next = Some(format!("open {}", worst.runbook_url));
    check.runbook = runbook_in(&worst.runbook_url);
    check
}

/// The [`report::Runbook`] an alert's `runbook_url` names, when doctor
/// knows that section.
fn runbook_in(url: &str) -> Option<report::Runbook> {
    let (_, path) = url.rsplit_once("runbooks/")?;
    let (file, anchor) = path.split_once('#')?;
    report::RUNBOOKS
        .into_iter()
        .find(|r| r.file == file && r.anchor == anchor)
}

// ---- alertmanager ----

/// Alertmanager's configuration: whether it answers, and its last reload.
pub fn alertmanager_config(next: &Next, status: Result<(bool, Option<bool>), String>) -> Check {
    let check = Check::of(Category::Alertmanager, "config");
    let logs = next.xtask("logs alertmanager");
    match status {
        Err(why) => check
            .fail(format!("Alertmanager unreachable: {why}"))
            .hint(
                report::NOTIFICATIONS_FAILING,
                format!("{logs}; then {}", next.xtask("restart alertmanager")),
            ),
        Ok((false, _)) => check
            .fail("Alertmanager answers but has no configuration loaded")
            .hint(report::NOTIFICATIONS_FAILING, logs),
        Ok((true, Some(false))) => check
            .fail("the last configuration reload failed (alertmanager_config_last_reload_successful 0): it runs an old configuration")
            .hint(report::NOTIFICATIONS_FAILING, logs),
        Ok((true, _)) => check.ok("configuration loaded, last reload successful"),
    }
}

/// Failed notifications per integration over the window.
pub fn notifications(next: &Next, failed: Result<Vec<(String, f64)>, String>) -> Check {
    let check = Check::of(Category::Alertmanager, "notifications");
    let logs = next.xtask("logs alertmanager");
    match failed {
        Err(why) => check
            .warn(format!("cannot tell: {why}"))
            .hint(report::MONITORING, next.xtask("status")),
        Ok(failed) if failed.is_empty() => check.ok("no notification failed in the last 15m"),
        Ok(failed) => {
            let list: Vec<String> = failed
                .iter()
                .map(|(integration, n)| format!("{integration} ({n:.0})"))
                .collect();
            check
                .fail(format!(
                    "notifications failed in the last 15m: {}",
                    list.join(", ")
                ))
                .hint(report::NOTIFICATIONS_FAILING, logs)
        }
    }
}

/// Seconds without a Watchdog beat (Alertmanager repeats it every minute)
/// after which the alerting path counts as broken.
pub const HEARTBEAT_STALE: u64 = 180;

/// The dead man's switch: how long ago the alert sink last got a Watchdog
/// beat, and how long Alertmanager has been up (a young one has not sent
/// its first beat yet).
pub fn heartbeat(next: &Next, last_beat_age: Option<u64>, alertmanager_up: u64) -> Check {
    let check = Check::of(Category::Alertmanager, "heartbeat");
    match last_beat_age {
        Some(beat) if beat <= HEARTBEAT_STALE => {
            check.ok(format!("last Watchdog beat {} ago", age(beat)))
        }
        _ if alertmanager_up <= HEARTBEAT_STALE => check.ok(format!(
            "no Watchdog beat yet; Alertmanager started {} ago",
            age(alertmanager_up)
        )),
        last => check
            .fail(match last {
                Some(beat) => format!(
                    "no Watchdog beat for {}: the alerting path is broken, nothing can page",
                    age(beat)
                ),
                None => "no Watchdog beat ever reached the alert sink: nothing can page".into(),
            })
            .hint(
                report::WATCHDOG,
                format!(
                    "{}; {}",
                    next.xtask("logs prometheus"),
                    next.xtask("logs alertmanager")
                ),
            ),
    }
}

/// Active silences: each may hide a page.
pub fn silences(active: &[String]) -> Check {
    let check = Check::of(Category::Alertmanager, "silences");
    if active.is_empty() {
        return check.ok("no active silence");
    }
    let mut check = check.warn(format!(
        "{} active, pages they match are not sent: {}",
        active.len(),
        active.join("; ")
    ));
    check.runbook = Some(report::MONITORING);
    check.next = Some("amtool silence query (or expire it: amtool silence expire ID)".into());
    check
}

// ---- backups ----

/// Seconds after which the newest full backup is overdue (the schedule
/// takes one daily) and stale (BackupTooOld's 25 hours).
pub const FULL_DUE: u64 = 24 * 3600;
pub const FULL_STALE: u64 = 25 * 3600;

/// The newest full backup's age.
pub fn last_full(next: &Next, age_secs: Option<u64>) -> Check {
    let check = Check::of(Category::Backups, "last-full");
    let backup = next.xtask("backup --kind full --verify");
    match age_secs {
        None => check
            .fail("no full backup in the repository")
            .hint(report::BACKUP_TOO_OLD, backup),
        Some(a) if a > FULL_STALE => check
            .fail(format!("newest full backup is {} old (over 25h)", age(a)))
            .hint(report::BACKUP_TOO_OLD, backup),
        Some(a) if a > FULL_DUE => check
            .warn(format!(
                "newest full backup is {} old: the daily one is due",
                age(a)
            ))
            .hint(report::BACKUP_TOO_OLD, next.xtask("logs backup-scheduler")),
        Some(a) => check.ok(format!("newest full backup {} ago", age(a))),
    }
}

/// The last `pgbackrest verify` as pushed: its outcome and age.
pub fn last_verify(next: &Next, success: Option<bool>, age_secs: Option<u64>) -> Check {
    let check = Check::of(Category::Backups, "last-verify");
    let verify = next.xtask("backup --kind full --verify");
    match (success, age_secs) {
        (Some(false), a) => check
            .fail(format!(
                "the last verify found damaged or missing files{}",
                a.map(|a| format!(" ({} ago)", age(a))).unwrap_or_default()
            ))
            .hint(report::BACKUP_VERIFY_FAILED, verify),
        (None, _) => check
            .warn("no verify result on the Pushgateway")
            .hint(report::BACKUP_STATUS_MISSING, verify),
        (Some(true), Some(a)) if a > FULL_STALE => check
            .warn(format!("last verify passed, {} ago (over 25h)", age(a)))
            .hint(report::BACKUP_TOO_OLD, verify),
        (Some(true), a) => check.ok(format!(
            "last verify passed{}",
            a.map(|a| format!(" {} ago", age(a))).unwrap_or_default()
        )),
    }
}

/// `pg_stat_archiver` and `pg_wal/archive_status`, for the archiving check.
#[derive(Debug, Clone, PartialEq)]
pub struct Archiver {
    /// Seconds since the last successful archive (None: never).
    pub last_archived_age: Option<u64>,
    pub last_archived_wal: Option<String>,
    /// Whether the last failure is newer than the last success.
    pub failing: bool,
    pub failed_count: u64,
    /// Completed files waiting for `archive_command` (`.ready`).
    pub waiting: u64,
    /// How long the oldest of them has waited, in seconds.
    pub oldest_waiting: Option<u64>,
}

/// Seconds a completed segment may wait: WalArchiveTooOld's 15 minutes, and
/// twice `archive_timeout` (60 s) for a warning.
pub const ARCHIVE_STALE: u64 = 900;
pub const ARCHIVE_SLOW: u64 = 120;

pub fn wal_archiving(next: &Next, a: &Archiver) -> Check {
    let check = Check::of(Category::Backups, "wal-archiving");
    let logs = next.xtask("logs postgres");
    let last = match (&a.last_archived_wal, a.last_archived_age) {
        (Some(wal), Some(s)) => format!("last archived {wal} {} ago", age(s)),
        _ => "nothing archived yet".to_owned(),
    };
    let waiting = match a.oldest_waiting {
        Some(w) if a.waiting > 0 => format!("{} waiting, the oldest for {}", a.waiting, age(w)),
        _ => "none waiting".to_owned(),
    };
    let evidence = format!(
        "{last}, {waiting}, {} failure(s) since reset",
        a.failed_count
    );
    if a.failing {
        return check
            .fail(format!("archive_command failing: {evidence}"))
            .hint(report::WAL_ARCHIVING_FAILING, logs);
    }
    match a.oldest_waiting.filter(|_| a.waiting > 0) {
        Some(w) if w > ARCHIVE_STALE => check
            .fail(format!("archiving lags: {evidence}"))
            .hint(report::WAL_ARCHIVE_TOO_OLD, logs),
        Some(w) if w > ARCHIVE_SLOW => check
            .warn(format!("archiving slow: {evidence}"))
            .hint(report::WAL_ARCHIVE_TOO_OLD, logs),
        _ => check.ok(evidence),
    }
}

/// A replication slot, from `pg_replication_slots`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub name: String,
    pub active: bool,
    /// `reserved`, `extended`, `unreserved`, `lost`.
    pub wal_status: String,
    /// Bytes of WAL the slot keeps (current position − restart_lsn).
    pub retained: u64,
}

/// The WAL stream's slot: it must exist and have its receiver attached.
pub fn wal_stream_slot(next: &Next, slot: Option<&Slot>) -> Check {
    let check = Check::of(Category::Backups, "wal-stream-slot");
    let restart = next.xtask("restart wal-stream");
    match slot {
        None => check
            .fail("no replication slot for the WAL stream: a restore to latest loses the last segment")
            .hint(report::WAL_STREAM, next.xtask("logs wal-stream")),
        Some(s) if !s.active => check
            .fail(format!(
                "slot {} inactive (pg_receivewal not attached), keeping {} of WAL",
                s.name,
                bytes(s.retained)
            ))
            .hint(report::WAL_STREAM, restart),
        Some(s) => check.ok(format!("slot {} active, {} behind", s.name, bytes(s.retained))),
    }
}

// ---- database ----

/// Connections against max_connections: PostgresConnectionsHigh's 80%
/// warns, 95% fails (new connections are about to be refused).
pub fn connections(next: &Next, used: u64, max: u64) -> Check {
    let check = Check::of(Category::Database, "connections");
    let share = percent(used, max);
    let evidence = format!("{used} of max_connections {max} ({share:.0}%)");
    let status = match share {
        s if s >= 95.0 => Status::Fail,
        s if s > 80.0 => Status::Warn,
        _ => Status::Ok,
    };
    check.status(status, evidence).hint(
        report::CONNECTIONS_HIGH,
        next.xtask("doctor --only database"),
    )
}

/// Transaction ages: the oldest open transaction warns past a minute (every
/// service statement times out at 30 s) and fails past 10; a session idle
/// in a transaction fails past 2 minutes (it holds locks and stops vacuum).
pub const XACT_WARN: u64 = 60;
pub const XACT_FAIL: u64 = 600;
pub const IDLE_IN_XACT_FAIL: u64 = 120;

/// The oldest transaction of a client session.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub pid: i64,
    pub seconds: u64,
    pub state: String,
    pub application: String,
}

pub fn transactions(oldest: Option<&Transaction>, oldest_idle: Option<&Transaction>) -> Check {
    let check = Check::of(Category::Database, "transactions");
    let show = |t: &Transaction| {
        format!(
            "pid {} ({}) {} for {}",
            t.pid,
            if t.application.is_empty() {
                "?"
            } else {
                &t.application
            },
            t.state,
            age(t.seconds)
        )
    };
    let terminate = |t: &Transaction| {
        format!(
            "look at it (pg_stat_activity, pid {0}); if it is stuck: SELECT pg_terminate_backend({0})",
            t.pid
        )
    };
    if let Some(t) = oldest_idle.filter(|t| t.seconds > IDLE_IN_XACT_FAIL) {
        let mut c = check.fail(format!("idle in transaction: {}", show(t)));
        c.runbook = Some(report::SLOW_QUERIES);
        c.next = Some(terminate(t));
        return c;
    }
    let Some(t) = oldest else {
        return check.ok("no open transaction");
    };
    let status = match t.seconds {
        s if s > XACT_FAIL => Status::Fail,
        s if s > XACT_WARN => Status::Warn,
        _ => Status::Ok,
    };
    let mut c = check.status(status, format!("oldest: {}", show(t)));
    if status != Status::Ok {
        c.runbook = Some(report::SLOW_QUERIES);
        c.next = Some(terminate(t));
    }
    c
}

/// The tasks table's dead tuples, a cheap bloat estimate: over 20% dead
/// (with more than 10,000 dead rows) warns, over 50% (100,000) fails.
pub fn tasks_bloat(live: u64, dead: u64, size: u64, last_vacuum: &str) -> Check {
    let check = Check::of(Category::Database, "tasks-bloat");
    let share = percent(dead, live + dead);
    let evidence = format!(
        "{dead} dead of {} rows ({share:.0}%), {}, last vacuum {last_vacuum}",
        live + dead,
        bytes(size)
    );
    let status = match (share, dead) {
        (s, d) if s > 50.0 && d > 100_000 => Status::Fail,
        (s, d) if s > 20.0 && d > 10_000 => Status::Warn,
        _ => Status::Ok,
    };
    check.status(status, evidence).hint(
        report::DATABASE,
        "VACUUM (VERBOSE, ANALYZE) tasks; in database octollm",
    )
}

/// WAL kept by replication slots: `max_slot_wal_keep_size` is 1 GB, so half
/// of it warns, and a slot PostgreSQL stopped reserving for fails.
pub const SLOT_WARN: u64 = 512 * MIB;

pub fn slot_retention(next: &Next, slots: &[Slot]) -> Check {
    let check = Check::of(Category::Database, "slot-retention");
    if slots.is_empty() {
        return check.ok("no replication slot");
    }
    let shown: Vec<String> = slots
        .iter()
        .map(|s| format!("{} keeps {} ({})", s.name, bytes(s.retained), s.wal_status))
        .collect();
    let evidence = shown.join(", ");
    let worst = slots
        .iter()
        .map(|s| match s.wal_status.as_str() {
            "lost" | "unreserved" => Status::Fail,
            _ if s.retained > SLOT_WARN => Status::Warn,
            "extended" => Status::Warn,
            _ => Status::Ok,
        })
        .max()
        .unwrap_or(Status::Ok);
    check
        .status(worst, evidence)
        .hint(report::WAL_STREAM, next.xtask("restart wal-stream"))
}

// ---- resources ----

/// Free space: under HostDiskSpaceLow's 15% warns; under 1%, or under
/// 1 GiB (what `max_slot_wal_keep_size` lets the WAL stream's slot hold,
/// before backups), fails.
pub fn disk(category: Category, what: &str, path: &str, avail: u64, size: u64) -> Check {
    let check = Check::of(category, format!("disk-{what}"));
    let free = percent(avail, size);
    let evidence = format!(
        "{} free of {} ({free:.1}%) at {path}",
        bytes(avail),
        bytes(size)
    );
    let status = match free {
        f if f < 1.0 || avail < GIB => Status::Fail,
        f if f < 15.0 => Status::Warn,
        _ => Status::Ok,
    };
    check.status(status, evidence).hint(
        report::DISK_LOW,
        format!("du -sh {path}/* | sort -h | tail"),
    )
}

/// One component's usage: name, value, limit.
pub type Usage = (Component, u64, u64);

/// Open file descriptors against each component's soft limit:
/// FileDescriptorsExhausted's 90% fails, 70% warns.
pub fn file_descriptors(rows: &[Usage], unreadable: &[Component]) -> Check {
    let check = Check::of(Category::Resources, "file-descriptors");
    if rows.is_empty() {
        return check.warn("no component's /proc/<pid>/fd readable");
    }
    let share = |(_, open, limit): &Usage| percent(*open, *limit);
    let mut sorted: Vec<&Usage> = rows.iter().collect();
    sorted.sort_by(|a, b| share(b).total_cmp(&share(a)));
    let shown: Vec<String> = sorted
        .iter()
        .take(3)
        .map(|u| format!("{} {}/{} ({:.1}%)", u.0, u.1, u.2, share(u)))
        .collect();
    let worst = sorted.first().map_or(0.0, |u| share(u));
    let status = match worst {
        w if w > 90.0 => Status::Fail,
        w if w > 70.0 => Status::Warn,
        _ => Status::Ok,
    };
    let mut evidence = format!("highest: {}", shown.join(", "));
    if !unreadable.is_empty() {
        let names: Vec<&str> = unreadable.iter().map(|c| c.name()).collect();
        evidence.push_str(&format!(" (unreadable: {})", names.join(", ")));
    }
    let next = sorted.first().map_or(String::new(), |u| {
        format!("ls -l /proc/$(pgrep -o -f {})/fd | tail", u.0)
    });
    check
        .status(status, evidence)
        .hint(report::FDS_EXHAUSTED, next)
}

/// Resident memory per component against the host's: over 1 GiB warns
/// (ServiceMemoryHigh), over half the host fails.
pub fn memory(rows: &[Usage]) -> Check {
    let check = Check::of(Category::Resources, "memory");
    if rows.is_empty() {
        return check.warn("no component's memory readable");
    }
    let mut sorted: Vec<&Usage> = rows.iter().collect();
    sorted.sort_by_key(|u| std::cmp::Reverse(u.1));
    let total = sorted.first().map_or(0, |u| u.2);
    let shown: Vec<String> = sorted
        .iter()
        .take(3)
        .map(|(c, rss, _)| format!("{c} {}", bytes(*rss)))
        .collect();
    let sum: u64 = rows.iter().map(|u| u.1).sum();
    let status = sorted
        .iter()
        .map(|(_, rss, total)| match *rss {
            r if r > total / 2 => Status::Fail,
            r if r > GIB => Status::Warn,
            _ => Status::Ok,
        })
        .max()
        .unwrap_or(Status::Ok);
    let evidence = format!(
        "largest RSS: {}; all components {} of {} host memory",
        shown.join(", "),
        bytes(sum),
        bytes(total)
    );
    check.status(status, evidence).hint(
        report::MEMORY_HIGH,
        "top -b -n 1 -o %MEM | head -15".to_owned(),
    )
}

// ---- prerequisites ----

pub fn packages(missing: &[String], total: usize) -> Check {
    let check = Check::of(Category::Prerequisites, "packages");
    if missing.is_empty() {
        return check.ok(format!("{total} of {total} Debian packages installed"));
    }
    let mut c = check.fail(format!(
        "{} of {total} missing: {}",
        missing.len(),
        missing.join(" ")
    ));
    c.next = Some("cargo xtask prerequisites (as root)".into());
    c
}

/// A port the stack needs: free, held by the stack's own component, or
/// taken by another process.
#[derive(Debug, Clone, PartialEq)]
pub enum Port {
    Free,
    Ours(i32),
    Taken(String),
}

pub fn ports(base: u16, rows: &[(Component, u16, Port)]) -> Check {
    let check = Check::of(Category::Prerequisites, "ports");
    let taken: Vec<String> = rows
        .iter()
        .filter_map(|(c, port, p)| match p {
            Port::Taken(by) => Some(format!("{port} ({c}) held by {by}")),
            _ => None,
        })
        .collect();
    let ours = rows.iter().filter(|r| matches!(r.2, Port::Ours(_))).count();
    if taken.is_empty() {
        return check.ok(format!(
            "{} ports on base {base}: {} free, {ours} held by this stack",
            rows.len(),
            rows.len() - ours
        ));
    }
    let shown = if taken.len() > 3 {
        format!("{}, and {} more", taken[..3].join(", "), taken.len() - 3)
    } else {
        taken.join(", ")
    };
    let mut c = check.fail(format!("{} taken: {shown}", taken.len()));
    c.next = Some(format!(
        "stop that process, or deploy with --port-base N (free bases: docs/contracts.md, \"Port plan\"); base now {base}"
    ));
    c
}

/// Whether a deploy can do what it must as this user, and whether the
/// stack's secrets are private.
pub fn permissions(root: bool, writable: Result<(), String>, exposed: &[String]) -> Check {
    let check = Check::of(Category::Prerequisites, "permissions");
    let mut problems = Vec::new();
    if let Err(why) = writable {
        problems.push(why);
    }
    if !exposed.is_empty() {
        problems.push(format!(
            "secrets readable by others: {}",
            exposed.join(", ")
        ));
    }
    if !problems.is_empty() {
        let mut c = check.fail(problems.join("; "));
        c.next =
            Some("chmod 600 on each secret file; chown the state directory to this user".into());
        return c;
    }
    if !root {
        let mut c = check.warn(
            "not root: deploy cannot install packages, run PostgreSQL as `postgres` or write /var/lib/octollm",
        );
        c.next = Some("sudo -E cargo xtask deploy".into());
        return c;
    }
    check.ok("root; state directory writable; secrets 0600")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next() -> Next {
        Next::default()
    }

    fn served(status: &str) -> Deep {
        Deep::Answered {
            status: status.into(),
            problems: vec![],
        }
    }

    #[test]
    fn a_component_fails_when_down_or_unready_and_warns_when_degraded() {
        let n = next();
        let arm = Component::JudgeArm;
        let down = component(&n, arm, None, false, &Deep::NotServed);
        assert_eq!(down.status, Status::Fail);
        assert_eq!(down.runbook, Some(report::SERVICE_DOWN));
        assert_eq!(
            down.next.as_deref(),
            Some("cargo xtask logs judge-arm; then cargo xtask restart judge-arm")
        );
        assert_eq!(
            component(&n, arm, Some(7), false, &served("up")).status,
            Status::Fail
        );
        assert_eq!(
            component(&n, arm, Some(7), true, &served("up")).status,
            Status::Ok
        );
        let degraded = component(
            &n,
            Component::ReflexLayer,
            Some(7),
            true,
            &Deep::Answered {
                status: "degraded".into(),
                problems: vec!["redis: down (timeout)".into()],
            },
        );
        assert_eq!(degraded.status, Status::Warn);
        assert!(degraded.evidence.contains("redis: down (timeout)"));
        assert_eq!(
            component(&n, arm, Some(7), true, &served("down")).status,
            Status::Fail
        );
        assert_eq!(
            component(&n, arm, Some(7), true, &Deep::Unreadable("401".into())).status,
            Status::Warn
        );
        let pg = component(&n, Component::Postgres, None, false, &Deep::NotServed);
        assert_eq!(pg.runbook, Some(report::POSTGRES_DOWN));
    }

    #[test]
    fn next_commands_name_a_non_default_stack() {
        let n = Next {
            state_arg: " --state-dir /tmp/s".into(),
        };
        let c = component(&n, Component::Redis, None, false, &Deep::NotServed);
        assert_eq!(
            c.next.as_deref(),
            Some(
                "cargo xtask logs redis --state-dir /tmp/s; then cargo xtask restart redis --state-dir /tmp/s"
            )
        );
    }

    #[test]
    fn prometheus_targets_rules_and_alerts() {
        let n = next();
        assert_eq!(targets(&n, 16, &[]).status, Status::Ok);
        assert_eq!(targets(&n, 0, &[]).status, Status::Fail);
        let down = targets(&n, 16, &["judge-arm".into()]);
        assert_eq!(down.status, Status::Fail);
        assert_eq!(down.evidence, "1 of 16 down: judge-arm");
        assert_eq!(rule_failures(&n, &[]).status, Status::Ok);
        let failed = rule_failures(&n, &[("octollm-slo".into(), 3.0)]);
        assert_eq!(failed.status, Status::Fail);
        assert_eq!(failed.runbook, Some(report::RULE_FAILURES));

        let alert = |name: &str, severity: &str, url: &str| Firing {
            name: name.into(),
            severity: severity.into(),
            runbook_url: url.into(),
        };
        assert_eq!(firing_alerts(&[]).status, Status::Ok);
        let next = Next::default();
        assert_eq!(heartbeat(&next, Some(60), 3600).status, Status::Ok);
        assert_eq!(
            heartbeat(&next, None, 30).status,
            Status::Ok,
            "a young Alertmanager"
        );
        assert_eq!(
            heartbeat(&next, Some(HEARTBEAT_STALE + 1), 3600).status,
            Status::Fail
        );
        assert_eq!(
            heartbeat(&next, None, HEARTBEAT_STALE + 1).status,
            Status::Fail
        );
        let info = firing_alerts(&[alert("LlmDailySpendHigh", "info", "x")]);
        assert_eq!(info.status, Status::Ok);
        assert!(info.evidence.contains("LlmDailySpendHigh"));
        let warning = firing_alerts(&[alert(
            "HostDiskSpaceLow",
            "warning",
            "https://h/blob/main/runbooks/resource-exhaustion.md#hostdiskspacelow",
        )]);
        assert_eq!(warning.status, Status::Warn);
        assert_eq!(warning.runbook, Some(report::DISK_LOW));
        let url = "https://h/blob/main/runbooks/database.md#postgresdown";
        let critical = firing_alerts(&[
            alert("HostDiskSpaceLow", "warning", "w"),
            alert("PostgresDown", "critical", url),
            alert("PostgresDown", "critical", url),
        ]);
        assert_eq!(critical.status, Status::Fail);
        assert_eq!(
            critical.evidence,
            "firing: PostgresDown (critical), HostDiskSpaceLow (warning)"
        );
        assert_eq!(critical.runbook, Some(report::POSTGRES_DOWN));
        assert_eq!(critical.next.as_deref(), Some(&*format!("open {url}")));
    }

    #[test]
    fn alertmanager_config_notifications_and_silences() {
        let n = next();
        let unreachable = alertmanager_config(&n, Err("connection refused".into()));
        assert_eq!(unreachable.status, Status::Fail);
        assert_eq!(unreachable.runbook, Some(report::NOTIFICATIONS_FAILING));
        assert_eq!(
            alertmanager_config(&n, Ok((false, None))).status,
            Status::Fail
        );
        assert_eq!(
            alertmanager_config(&n, Ok((true, Some(false)))).status,
            Status::Fail
        );
        assert_eq!(
            alertmanager_config(&n, Ok((true, Some(true)))).status,
            Status::Ok
        );
        assert_eq!(notifications(&n, Ok(vec![])).status, Status::Ok);
        assert_eq!(
            notifications(&n, Ok(vec![("webhook".into(), 4.0)])).status,
            Status::Fail
        );
        assert_eq!(
            notifications(&n, Err("no Prometheus".into())).status,
            Status::Warn
        );
        assert_eq!(silences(&[]).status, Status::Ok);
        assert_eq!(
            silences(&["alertname=ServiceDown".into()]).status,
            Status::Warn
        );
    }

    #[test]
    fn backups_age_verify_archiving_and_slot() {
        let n = next();
        assert_eq!(last_full(&n, None).status, Status::Fail);
        assert_eq!(last_full(&n, Some(3600)).status, Status::Ok);
        assert_eq!(last_full(&n, Some(FULL_DUE + 1)).status, Status::Warn);
        let stale = last_full(&n, Some(FULL_STALE + 1));
        assert_eq!(stale.status, Status::Fail);
        assert_eq!(stale.runbook, Some(report::BACKUP_TOO_OLD));

        let damaged = last_verify(&n, Some(false), Some(60));
        assert_eq!(damaged.status, Status::Fail);
        assert_eq!(damaged.runbook, Some(report::BACKUP_VERIFY_FAILED));
        assert_eq!(last_verify(&n, None, None).status, Status::Warn);
        assert_eq!(last_verify(&n, Some(true), Some(60)).status, Status::Ok);
        assert_eq!(
            last_verify(&n, Some(true), Some(FULL_STALE + 1)).status,
            Status::Warn
        );

        let archiver = |failing, waiting, oldest| Archiver {
            last_archived_age: Some(30),
            last_archived_wal: Some("000000010000000000000010".into()),
            failing,
            failed_count: u64::from(failing),
            waiting,
            oldest_waiting: Some(oldest),
        };
        let idle = wal_archiving(&n, &archiver(false, 0, 5000));
        assert_eq!(idle.status, Status::Ok);
        assert!(idle.evidence.contains("none waiting"), "{}", idle.evidence);
        assert_eq!(
            wal_archiving(&n, &archiver(false, 2, 30)).status,
            Status::Ok
        );
        assert_eq!(
            wal_archiving(&n, &archiver(false, 2, 300)).status,
            Status::Warn
        );
        let lagging = wal_archiving(&n, &archiver(false, 2, ARCHIVE_STALE + 1));
        assert_eq!(lagging.status, Status::Fail);
        assert!(
            lagging
                .evidence
                .contains("2 waiting, the oldest for 15m01s")
        );
        assert_eq!(lagging.runbook, Some(report::WAL_ARCHIVE_TOO_OLD));
        let failing = wal_archiving(&n, &archiver(true, 0, 30));
        assert_eq!(failing.status, Status::Fail);
        assert_eq!(failing.runbook, Some(report::WAL_ARCHIVING_FAILING));

        let slot = |active, status: &str, retained| Slot {
            name: "octollm_wal_stream".into(),
            active,
            wal_status: status.into(),
            retained,
        };
        assert_eq!(wal_stream_slot(&n, None).status, Status::Fail);
        assert_eq!(
            wal_stream_slot(&n, Some(&slot(false, "reserved", 0))).status,
            Status::Fail
        );
        assert_eq!(
            wal_stream_slot(&n, Some(&slot(true, "reserved", 0))).status,
            Status::Ok
        );
        assert_eq!(slot_retention(&n, &[]).status, Status::Ok);
        assert_eq!(
            slot_retention(&n, &[slot(true, "reserved", MIB)]).status,
            Status::Ok
        );
        assert_eq!(
            slot_retention(&n, &[slot(false, "reserved", SLOT_WARN + 1)]).status,
            Status::Warn
        );
        assert_eq!(
            slot_retention(&n, &[slot(true, "reserved", 0), slot(false, "lost", 0)]).status,
            Status::Fail
        );
    }

    #[test]
    fn database_connections_transactions_and_bloat() {
        let n = next();
        assert_eq!(connections(&n, 20, 200).status, Status::Ok);
        assert_eq!(connections(&n, 170, 200).status, Status::Warn);
        let full = connections(&n, 195, 200);
        assert_eq!(full.status, Status::Fail);
        assert_eq!(full.evidence, "195 of max_connections 200 (98%)");
        assert_eq!(full.runbook, Some(report::CONNECTIONS_HIGH));

        let xact = |seconds, state: &str| Transaction {
            pid: 42,
            seconds,
            state: state.into(),
            application: "orchestrator".into(),
        };
        assert_eq!(transactions(None, None).status, Status::Ok);
        assert_eq!(
            transactions(Some(&xact(3, "active")), None).status,
            Status::Ok
        );
        assert_eq!(
            transactions(Some(&xact(XACT_WARN + 1, "active")), None).status,
            Status::Warn
        );
        assert_eq!(
            transactions(Some(&xact(XACT_FAIL + 1, "active")), None).status,
            Status::Fail
        );
        let idle = xact(IDLE_IN_XACT_FAIL + 1, "idle in transaction");
        let stuck = transactions(Some(&idle), Some(&idle));
        assert_eq!(stuck.status, Status::Fail);
        assert!(
            stuck
                .next
                .as_deref()
                .unwrap()
                .contains("pg_terminate_backend(42)")
        );
        // A short idle-in-transaction is a warning only through its age.
        let brief = xact(10, "idle in transaction");
        assert_eq!(transactions(Some(&brief), Some(&brief)).status, Status::Ok);

        assert_eq!(tasks_bloat(1000, 10, MIB, "never").status, Status::Ok);
        // A small table may be mostly dead without mattering.
        assert_eq!(tasks_bloat(10, 900, MIB, "never").status, Status::Ok);
        assert_eq!(
            tasks_bloat(40_000, 20_000, GIB, "never").status,
            Status::Warn
        );
        assert_eq!(
            tasks_bloat(100_000, 200_000, GIB, "never").status,
            Status::Fail
        );
    }

    #[test]
    fn resources_disk_fds_and_memory() {
        let disk_at = |avail, size| disk(Category::Resources, "state", "/tmp", avail, size).status;
        assert_eq!(disk_at(50 * GIB, 100 * GIB), Status::Ok);
        assert_eq!(disk_at(10 * GIB, 100 * GIB), Status::Warn);
        // 2% of a large disk is still room; under 1% is not.
        assert_eq!(disk_at(5 * GIB, 252 * GIB), Status::Warn);
        assert_eq!(disk_at(2 * GIB, 252 * GIB), Status::Fail);
        // Under 1 GiB fails on any disk.
        assert_eq!(disk_at(GIB / 2, 4 * GIB), Status::Fail);

        let fds = |open| {
            file_descriptors(
                &[
                    (Component::Orchestrator, open, 1000),
                    (Component::Redis, 5, 1000),
                ],
                &[],
            )
        };
        assert_eq!(fds(100).status, Status::Ok);
        assert_eq!(fds(800).status, Status::Warn);
        let exhausted = fds(950);
        assert_eq!(exhausted.status, Status::Fail);
        assert!(
            exhausted
                .evidence
                .starts_with("highest: orchestrator 950/1000")
        );
        assert_eq!(exhausted.runbook, Some(report::FDS_EXHAUSTED));
        assert_eq!(file_descriptors(&[], &[]).status, Status::Warn);

        let host = 8 * GIB;
        assert_eq!(
            memory(&[(Component::Orchestrator, 100 * MIB, host)]).status,
            Status::Ok
        );
        assert_eq!(
            memory(&[(Component::Orchestrator, 2 * GIB, host)]).status,
            Status::Warn
        );
        assert_eq!(
            memory(&[(Component::Prometheus, 5 * GIB, host)]).status,
            Status::Fail
        );
    }

    #[test]
    fn prerequisites_packages_ports_permissions() {
        assert_eq!(packages(&[], 20).status, Status::Ok);
        assert_eq!(packages(&["pgbackrest".into()], 20).status, Status::Fail);
        let rows = [
            (Component::Postgres, 28232, Port::Ours(5)),
            (Component::Redis, 29179, Port::Free),
        ];
        let ok = ports(22800, &rows);
        assert_eq!(ok.status, Status::Ok);
        assert_eq!(
            ok.evidence,
            "2 ports on base 22800: 1 free, 1 held by this stack"
        );
        let taken = ports(
            22800,
            &[(
                Component::Redis,
                29179,
                Port::Taken("users:((\"nc\",pid=9))".into()),
            )],
        );
        assert_eq!(taken.status, Status::Fail);
        assert!(taken.evidence.contains("29179 (redis)"));
        let many: Vec<_> = (0..5)
            .map(|i| (Component::Redis, 29179 + i, Port::Taken("x".into())))
            .collect();
        assert!(ports(22800, &many).evidence.ends_with(", and 2 more"));
        assert_eq!(permissions(true, Ok(()), &[]).status, Status::Ok);
        assert_eq!(permissions(false, Ok(()), &[]).status, Status::Warn);
        assert_eq!(
            permissions(true, Ok(()), &["api-token (0644)".into()]).status,
            Status::Fail
        );
        assert_eq!(
            permissions(true, Err("state directory not writable".into()), &[]).status,
            Status::Fail
        );
    }

    #[test]
    fn sizes_and_ages_read_well() {
        assert_eq!(age(42), "42s");
        assert_eq!(age(312), "5m12s");
        assert_eq!(age(3 * 3600 + 240), "3h04m");
        assert_eq!(age(2 * 86_400 + 3 * 3600), "2d03h");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * MIB / 2), "1.5 MiB");
        assert_eq!(bytes(GIB), "1.0 GiB");
    }
}
