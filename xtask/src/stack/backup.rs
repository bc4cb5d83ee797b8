//! Backup primitives: one backup of each store, the repository verify, and
//! the backup metrics on the Pushgateway (docs/contracts.md, "Metrics").
//! `cargo xtask backup` and the stack's backup-scheduler drive them.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::postgres::Postgres;
use super::redis::Redis;
use super::{Component, Stack};
use crate::say;
use crate::util::{curl, run_with_input};

/// A pgBackRest backup type.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Full,
    Diff,
    Incr,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Diff => "diff",
            Self::Incr => "incr",
        }
    }
}

const HOUR: u64 = 3600;
/// How often the schedule copies Redis's RDB into the repository.
pub const REDIS_COPY_INTERVAL: Duration = Duration::from_secs(HOUR);

/// One PostgreSQL backup of `kind` and one Redis copy, both reported.
pub fn back_up(stack: &Stack, kind: Kind) -> Result<()> {
    let started = Instant::now();
    say!("PostgreSQL: {} backup (pgBackRest)", kind.name());
    Postgres::new(stack).backup(kind.name())?;
    push_backup_metrics(stack)?;
    say!("PostgreSQL backup done in {:.1?}", started.elapsed());

    let started = Instant::now();
    let copy = Redis::new(stack).backup()?;
    let duration = started.elapsed().as_secs_f64();
    push_metrics(
        stack,
        "redis",
        &format!(
            "# TYPE octollm_backup_last_success_timestamp_seconds gauge\n\
             octollm_backup_last_success_timestamp_seconds{{kind=\"rdb\"}} {}\n\
             # TYPE octollm_backup_duration_seconds gauge\n\
             octollm_backup_duration_seconds{{kind=\"rdb\"}} {duration}\n\
             # TYPE octollm_backup_size_bytes gauge\n\
             octollm_backup_size_bytes{{kind=\"rdb\"}} {}\n",
            copy.taken_at, copy.size
        ),
    )?;
    say!(
        "Redis: {} ({} bytes) in {duration:.1}s",
        copy.path.display(),
        copy.size
    );
    Ok(())
}

/// `pgbackrest verify`, its outcome pushed as
/// `octollm_backup_verify_success{store="postgres"}` (BackupVerifyFailed),
/// beside the backup metrics in the same Pushgateway group.
pub fn verify(stack: &Stack) -> Result<()> {
    say!("verifying the backup repository (pgbackrest verify)");
    // pgBackRest 2.45's verify exits 0 even when it finds damage: its text
    // report is empty when all is well and says `status: error` otherwise.
    let result = Postgres::new(stack)
        .pgbackrest(&["verify", "--output=text"])
        .and_then(|report| {
            if !report.contains("status: error") {
                Ok(())
            } else {
                let problems: Vec<&str> = report
                    .lines()
                    .filter(|l| l.contains("invalid") || l.contains("status:"))
                    .map(str::trim)
                    .collect();
                bail!("{}", problems.join("; "))
            }
        });
    let ok = u8::from(result.is_ok());
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    push_metrics(
        stack,
        "postgres",
        &format!(
            "# TYPE octollm_backup_verify_success gauge\n\
             octollm_backup_verify_success {ok}\n\
             # TYPE octollm_backup_last_verify_timestamp_seconds gauge\n\
             octollm_backup_last_verify_timestamp_seconds {now}\n"
        ),
    )?;
    match result {
        Ok(()) => {
            say!("repository verified: every backup and WAL segment is intact");
            Ok(())
        }
        Err(error) => Err(crate::util::check_failed(format!(
            "the backup repository is damaged: {error:#}"
        ))),
    }
}

/// Every minute: prune the WAL stream of archived segments; a full backup
/// when the newest is over a day old, else a differential when the newest
/// backup of any kind is over an hour old (each with a Redis copy), and a
/// verify after each full.
pub fn schedule(stack: &Stack) -> Result<()> {
    say!("backup schedule: full daily, differential and Redis copy hourly, verify after each full");
    loop {
        if let Err(error) = scheduled_step(stack) {
            // A failed run shows as a stale backup (BackupTooOld); keep trying.
            say!("scheduled backup failed: {error:#}");
        }
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn scheduled_step(stack: &Stack) -> Result<()> {
    Postgres::new(stack).prune_stream()?;
    let info: serde_json::Value =
        serde_json::from_str(&Postgres::new(stack).pgbackrest(&["info", "--output=json"])?)?;
    let backups = info[0]["backup"].as_array().cloned().unwrap_or_default();
    let newest = |kind: Option<&str>| {
        backups
            .iter()
            .filter(|b| kind.is_none_or(|k| b["type"] == k))
            .filter_map(|b| b["timestamp"]["stop"].as_u64())
            .max()
            .unwrap_or(0)
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let redis_copy = Redis::new(stack).copies()?.last().map_or(0, |c| c.taken_at);
    if now.saturating_sub(newest(Some("full"))) > 24 * HOUR {
        back_up(stack, Kind::Full)?;
        verify(stack)?;
    } else if now.saturating_sub(newest(None)) > HOUR
        || now.saturating_sub(redis_copy) > REDIS_COPY_INTERVAL.as_secs()
    {
        back_up(stack, Kind::Diff)?;
    }
    Ok(())
}

/// Publishes the PostgreSQL backups' age, duration and size on the
/// Pushgateway (grouping key job=octollm-backup, store=postgres).
pub fn push_backup_metrics(stack: &Stack) -> Result<()> {
    push_metrics(stack, "postgres", &Postgres::new(stack).backup_metrics()?)
}

/// Verifies the repository when no verify result has been pushed yet, so
/// BackupVerifyFailed has a series to watch from the first deploy (the
/// schedule verifies after each daily full backup). A damaged repository
/// does not fail the deploy: the metric and its alert report it.
pub fn verify_once(stack: &Stack) -> Result<()> {
    let pushed = curl(&[&format!("{}/metrics", stack.url(Component::Pushgateway))])?;
    if !pushed.contains("octollm_backup_verify_success")
        && let Err(error) = verify(stack)
    {
        say!("warning: {error:#}");
    }
    Ok(())
}

/// Replaces the Pushgateway group job=octollm-backup, store=`store`.
pub fn push_metrics(stack: &Stack, store: &str, text: &str) -> Result<()> {
    let url = format!(
        "{}/metrics/job/octollm-backup/store/{store}",
        stack.url(Component::Pushgateway)
    );
    let mut curl = Command::new("curl");
    curl.args([
        "-sS",
        "--fail-with-body",
        "--max-time",
        "10",
        "--data-binary",
        "@-",
        &url,
    ]);
    run_with_input(&mut curl, text).with_context(|| format!("pushing {store} backup metrics"))?;
    Ok(())
}
