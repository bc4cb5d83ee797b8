//! The steps the drills share: the disaster clock, the ledger workload,
//! restore-and-verify, the database clock, Redis keys, alerts, and the
//! dataset a drill runs on.

use std::collections::HashSet;
use std::fs;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use super::Drill;
use super::ledger::{self, Ledger, Verdict};
use super::report::Outcome;
use crate::prom::client::Prometheus;
use crate::say;
use crate::stack::deploy::reconcile;
use crate::stack::launch;
use crate::stack::postgres::{DATABASE, Postgres, RestoreTarget};
use crate::stack::redis::Redis;
use crate::stack::{Component, Stack};
use crate::util::wait_for;

/// When a disaster struck, by the monotonic and the wall clock.
pub(super) struct Disaster {
    at: Instant,
    pub(super) unix_us: i64,
    pub(super) unix_s: u64,
}

impl Disaster {
    pub(super) fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            at: Instant::now(),
            unix_us: i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX),
            unix_s: since_epoch.as_secs(),
        }
    }

    pub(super) fn elapsed(&self) -> Duration {
        self.at.elapsed()
    }
}

/// Starts the ledger and lets it write for the drill's load period.
pub(super) fn load(drill: &Drill, out: &mut Outcome, name: &str) -> Result<Ledger> {
    out.phase(&format!(
        "load: {} writes/s for {}s",
        drill.rate,
        drill.load_for.as_secs()
    ));
    wait_service(drill.stack)?;
    let ledger = Ledger::start(
        drill.stack,
        &drill.work_dir.join(format!("{name}.ledger")),
        drill.rate,
    )?;
    std::thread::sleep(drill.load_for);
    Ok(ledger)
}

/// Restores PostgreSQL to `target`, waits for the service, compares the
/// ledger, then takes the fresh full backup every restore needs.
pub(super) fn restore_and_verify(
    drill: &Drill,
    out: &mut Outcome,
    disaster: &Disaster,
    acks: &[ledger::Ack],
    target: RestoreTarget,
    target_us: Option<i64>,
) -> Result<()> {
    let stack = drill.stack;
    let pg = Postgres::new(stack);
    out.phase("restore (pgBackRest + WAL stream)");
    // If PostgreSQL still runs, its last writes are lost with it unless the
    // stream has them: let it catch up first (as the runbook says).
    let mut lost_state_at = disaster.unix_us;
    if stack.pid(Component::Postgres).is_some() {
        let caught_up = wait_for(
            "the WAL stream to catch up",
            Duration::from_secs(10),
            || pg.stream_caught_up(),
        );
        if let Err(error) = caught_up {
            out.note(format!("{error:#}; restoring anyway"));
        }
        lost_state_at = Disaster::now().unix_us;
    }
    stack.stop(Component::WalStream, Duration::from_secs(10))?;
    stack.crash(Component::Postgres)?;
    pg.restore(&target)?;
    reconcile(stack, Component::Postgres, &launch::timings_of(stack))?;
    reconcile(stack, Component::WalStream, &launch::timings_of(stack))?;
    out.phase("service back: a new task acknowledged");
    wait_service(stack)?;
    out.rto = Some(disaster.elapsed());
    out.phase("verification against the ledger");
    let verdict = ledger::compare(acks, &present_ids(&pg)?, target_us);
    out.rpo = match target_us {
        // Point in time: how close to the target the newest survivor is.
        Some(t) => verdict
            .last_surviving_ack_us
            .map(|last| Duration::from_micros(u64::try_from(t - last).unwrap_or(0))),
        None => rpo(lost_state_at, &verdict),
    };
    out.verdict = Some(verdict);
    fresh_backup(&pg, out)?;
    Ok(())
}

pub(super) fn fresh_backup(pg: &Postgres, out: &mut Outcome) -> Result<()> {
    out.phase("after the restore: fresh full backup (not part of the RTO)");
    pg.backup("full")?;
    pg.drop_replayed_stream()
}

/// How much acknowledged history was lost when the database lost its state
/// at `lost_at` (unix µs): back to the oldest lost write if any was lost,
/// else back to the newest write that survived.
pub(super) fn rpo(lost_at: i64, verdict: &Verdict) -> Option<Duration> {
    let since = verdict
        .oldest_lost_ack_us
        .or(verdict.last_surviving_ack_us)?;
    Some(Duration::from_micros(
        u64::try_from(lost_at - since).unwrap_or(0),
    ))
}

/// Waits until the orchestrator acknowledges a new task.
pub(super) fn wait_service(stack: &Stack) -> Result<()> {
    wait_for(
        "the orchestrator to acknowledge a task",
        Duration::from_secs(120),
        || {
            crate::stack::api::submit_task(stack, &serde_json::json!({"goal": "DR service probe"}))
                .is_ok()
        },
    )
}

pub(super) fn present_ids(pg: &Postgres) -> Result<HashSet<String>> {
    Ok(pg
        .psql_in(
            DATABASE,
            "SELECT id FROM tasks WHERE goal LIKE 'DR drill ledger write%'",
        )?
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

/// The database's clock now: as a recovery target, and in unix µs.
pub(super) fn db_clock(pg: &Postgres) -> Result<(String, i64)> {
    shift_back(pg, -1)
}

/// A recovery target for `unix_us` (or for now when negative).
pub(super) fn shift_back(pg: &Postgres, unix_us: i64) -> Result<(String, i64)> {
    let at = if unix_us < 0 {
        "clock_timestamp()".to_owned()
    } else {
        format!("to_timestamp({unix_us} / 1e6)")
    };
    let row = pg.psql_in(
        DATABASE,
        &format!(
            "SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00', \
             (extract(epoch FROM t) * 1000000)::bigint FROM (SELECT {at} AS t) s"
        ),
    )?;
    let (text, micros) = row.trim().split_once('|').context("unexpected clock row")?;
    Ok((text.to_owned(), micros.parse()?))
}

pub(super) fn write_keys(redis: &Redis, range: std::ops::Range<u32>) -> Result<()> {
    let mut args = vec!["MSET".to_owned()];
    for i in range {
        args.push(format!("dr-drill:{i}"));
        args.push(format!("value-{i}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    redis.cli(&args).map(drop)
}

pub(super) fn count_keys(redis: &Redis) -> Result<usize> {
    Ok(redis
        .cli(&[
            "EVAL",
            "return #redis.call('KEYS', ARGV[1])",
            "0",
            "dr-drill:*",
        ])?
        .trim()
        .parse()?)
}

/// Losing Redis degrades the reflex layer; it must still answer.
pub(super) fn check_reflex_answers(stack: &Stack) -> Result<()> {
    let text = serde_json::json!({"text": "Is the cache down? Please answer anyway."});
    crate::stack::api::post_json(stack, Component::ReflexLayer, "/v1/reflex/check", &text)
        .context("the reflex layer failed while Redis was down")
        .map(drop)
}

pub(super) fn wait_alert(stack: &Stack, alert: &str, firing: bool) -> Result<()> {
    let prometheus = Prometheus::new(&stack.url(Component::Prometheus));
    wait_for(
        &format!(
            "{alert} to be {}",
            if firing { "firing" } else { "resolved" }
        ),
        Duration::from_secs(180),
        || prometheus.is_firing(alert).is_ok_and(|is| is == firing),
    )
}

pub(super) fn newest_backup_label(pg: &Postgres) -> Result<String> {
    let info: serde_json::Value =
        serde_json::from_str(&pg.pgbackrest(&["info", "--output=json"])?)?;
    info[0]["backup"]
        .as_array()
        .and_then(|b| b.last())
        .and_then(|b| b["label"].as_str())
        .map(str::to_owned)
        .context("the repository has no backup")
}

pub(super) fn largest_file(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let mut best: Option<(u64, std::path::PathBuf)> = None;
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if best.as_ref().is_none_or(|(size, _)| meta.len() > *size) {
                best = Some((meta.len(), entry.path()));
            }
        }
    }
    best.map(|(_, path)| path)
        .context("the backup has no files")
}

pub(super) fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Loads `bytes` of finished tasks (unless the stack already holds them)
/// and takes a full backup of them, so restores are timed on that size.
pub fn seed_dataset(drill: &Drill, bytes: u64) -> Result<()> {
    let pg = Postgres::new(drill.stack);
    let size: u64 = pg
        .psql_in(DATABASE, "SELECT pg_total_relation_size('tasks')")?
        .trim()
        .parse()?;
    if size >= bytes {
        say!("dataset: tasks already holds {} MB", size >> 20);
        return Ok(());
    }
    // About 1.3 kB per row with its indexes.
    let rows = (bytes - size) / 1300;
    say!(
        "dataset: loading {rows} finished tasks (~{} MB)",
        bytes >> 20
    );
    let started = Instant::now();
    let batch = 100_000;
    let mut done = 0;
    while done < rows {
        let n = batch.min(rows - done);
        pg.psql_in(
            DATABASE,
            &format!(
                "INSERT INTO tasks (id, status, task_type, priority, goal, max_tokens, max_time_seconds, \
                 max_cost_usd, result, created_at, finished_at) \
                 SELECT gen_random_uuid(), 'succeeded', 'general', 1, 'seeded DR dataset task ' || i, 4000, 300, 1.0, \
                 jsonb_build_object('answer', repeat(md5(i::text || random()::text), 28)), \
                 now() - interval '1 day', now() - interval '1 day' FROM generate_series(1, {n}) i"
            ),
        )?;
        done += n;
        say!("dataset: {done}/{rows} rows");
    }
    say!(
        "dataset loaded in {:.1?}; full backup of it",
        started.elapsed()
    );
    let started = Instant::now();
    pg.backup("full")?;
    say!("full backup in {:.1?}", started.elapsed());
    Ok(())
}
