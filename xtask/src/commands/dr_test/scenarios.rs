//! The drills. Each is a plain function from a [`Drill`] to an [`Outcome`];
//! the table [`SCENARIOS`] names them. Scenarios that need a Kubernetes
//! cluster or several sites are listed in [`NOT_RUNNABLE`] with the runbook
//! that holds their procedure.

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Drill;
use super::ledger::{self, Verdict};
use super::report::Outcome;
use super::steps::{
    Disaster, check_reflex_answers, count_keys, db_clock, first_line, fresh_backup, largest_file,
    load, newest_backup_label, present_ids, restore_and_verify, rpo, shift_back, wait_alert,
    wait_service, write_keys,
};
use crate::emit;
use crate::stack::backup;
use crate::stack::deploy::{self, reconcile};
use crate::stack::launch;
use crate::stack::postgres::{DATABASE, Postgres, RestoreTarget};
use crate::stack::redis::{self, Redis};
use crate::stack::{Component, Stack};
use crate::util::wait_for;

pub struct Scenario {
    pub name: &'static str,
    pub summary: &'static str,
    /// Part of a run without `--scenario` (the negative control is not).
    pub in_default_run: bool,
    pub run: fn(&Drill) -> Result<Outcome>,
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "disk-loss",
        summary: "PostgreSQL's data directory is destroyed under load; restore the latest state from the backup store",
        in_default_run: true,
        run: disk_loss,
    },
    Scenario {
        name: "accidental-delete",
        summary: "every task row is DELETEd by mistake; point-in-time recovery to just before it",
        in_default_run: true,
        run: accidental_delete,
    },
    Scenario {
        name: "corruption",
        summary: "a block of the tasks table is silently corrupted on disk; data checksums catch it, then restore",
        in_default_run: true,
        run: corruption,
    },
    Scenario {
        name: "bad-migration",
        summary: "a bad schema migration breaks task intake; roll back with point-in-time recovery",
        in_default_run: true,
        run: bad_migration,
    },
    Scenario {
        name: "redis-loss",
        summary: "Redis crashes (AOF replay), then loses its data directory (restore the RDB copy); the reflex layer keeps answering",
        in_default_run: true,
        run: redis_loss,
    },
    Scenario {
        name: "stack-loss",
        summary: "the whole local stack is wiped except the backup store; rebuild from the backups alone",
        in_default_run: true,
        run: stack_loss,
    },
    Scenario {
        name: "repo-damaged",
        summary: "a file of the newest backup is damaged; verify catches it, BackupVerifyFailed fires, a new backup repairs it",
        in_default_run: true,
        run: repo_damaged,
    },
    Scenario {
        name: "orchestrator-crash",
        summary: "the orchestrator is SIGKILLed under load; every acknowledged task survives and finishes",
        in_default_run: true,
        run: orchestrator_crash,
    },
    Scenario {
        name: "wrong-target",
        summary: "negative control: a point-in-time restore to 3 s too early must be reported as data loss",
        in_default_run: false,
        run: wrong_target,
    },
];

/// Seed scenarios that need more than one machine.
pub const NOT_RUNNABLE: &[(&str, &str)] = &[
    ("regional-outage", "needs a second region"),
    ("datacenter-failure", "needs a second site"),
    ("ransomware", "needs immutable off-site backup storage"),
    ("network-partition", "needs several nodes"),
    (
        "security-breach",
        "needs credential rotation across a cluster",
    ),
];

/// `--list`: the runnable scenarios and those that cannot run here, on
/// stdout as a table or JSON.
pub fn print_list(json: bool) -> Result<()> {
    if json {
        let runnable: Vec<serde_json::Value> = SCENARIOS
            .iter()
            .map(|s| {
                serde_json::json!({"name": s.name, "summary": s.summary, "in_default_run": s.in_default_run})
            })
            .collect();
        let not_runnable: Vec<serde_json::Value> = NOT_RUNNABLE
            .iter()
            .map(|(name, why)| serde_json::json!({"name": name, "why": why}))
            .collect();
        emit!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"runnable": runnable, "not_runnable": not_runnable})
            )?
        );
        return Ok(());
    }
    emit!("runnable scenarios (cargo xtask dr-test --scenario NAME):");
    for s in SCENARIOS {
        let note = if s.in_default_run {
            ""
        } else {
            " [not in the default run]"
        };
        emit!("  {:<20} {}{note}", s.name, s.summary);
    }
    emit!("not runnable on one machine (procedures in runbooks/disaster-recovery.md):");
    for (name, why) in NOT_RUNNABLE {
        emit!("  {name:<20} {why}");
    }
    Ok(())
}

// ── the scenarios ──────────────────────────────────────────────────────────

fn disk_loss(drill: &Drill) -> Result<Outcome> {
    let stack = drill.stack;
    let mut out = Outcome::allowing_loss_within_rpo();
    let ledger = load(drill, &mut out, "disk-loss")?;
    out.phase("disaster: PostgreSQL killed, data directory deleted");
    let disaster = Disaster::now();
    stack.crash(Component::Postgres)?;
    fs::remove_dir_all(Postgres::new(stack).data_dir())?;
    out.phase("detection");
    wait_for(
        "orchestrator to report not ready",
        Duration::from_secs(30),
        || !crate::util::http_ok(&format!("{}/ready", stack.url(Component::Orchestrator))),
    )?;
    out.note(format!(
        "detected after {:.2?} (orchestrator /ready → 503)",
        disaster.elapsed()
    ));
    let acks = ledger.stop()?;
    restore_and_verify(
        drill,
        &mut out,
        &disaster,
        &acks,
        RestoreTarget::Latest,
        None,
    )?;
    Ok(out)
}

fn accidental_delete(drill: &Drill) -> Result<Outcome> {
    point_in_time(
        drill,
        "accidental-delete",
        "DELETE FROM tasks",
        Duration::ZERO,
    )
}

fn wrong_target(drill: &Drill) -> Result<Outcome> {
    point_in_time(
        drill,
        "wrong-target",
        "DELETE FROM tasks",
        Duration::from_secs(3),
    )
}

fn bad_migration(drill: &Drill) -> Result<Outcome> {
    let mut out = point_in_time(
        drill,
        "bad-migration",
        "ALTER TABLE tasks RENAME COLUMN goal TO goal_text",
        Duration::ZERO,
    )?;
    out.note("the binary and config were not changed; rolling back is the PITR alone");
    Ok(out)
}

/// Runs `mistake` under load, then restores to the instant before it (minus
/// `too_early`, for the negative control).
fn point_in_time(drill: &Drill, name: &str, mistake: &str, too_early: Duration) -> Result<Outcome> {
    let stack = drill.stack;
    let pg = Postgres::new(stack);
    let mut out = Outcome::default();
    let ledger = load(drill, &mut out, name)?;
    let (target, target_us) = db_clock(&pg)?;
    out.phase(&format!("disaster: {mistake}"));
    let disaster = Disaster::now();
    pg.psql_in(DATABASE, mistake)?;
    out.phase("detection");
    detect_damage(stack, &pg, &target)?;
    out.note(format!("detected after {:.2?}", disaster.elapsed()));
    // Writes after the mistake (refused or not) must not survive the restore.
    std::thread::sleep(Duration::from_secs(1));
    let acks = ledger.stop()?;
    // The ledger is always judged against the instant before the mistake;
    // the negative control restores to an earlier one on purpose.
    let restore_to = if too_early.is_zero() {
        target
    } else {
        shift_back(&pg, target_us - i64::try_from(too_early.as_micros())?)?.0
    };
    out.note(format!("recovery target: {restore_to} (exclusive)"));
    restore_and_verify(
        drill,
        &mut out,
        &disaster,
        &acks,
        RestoreTarget::Time(restore_to),
        Some(target_us),
    )?;
    Ok(out)
}

/// After the DELETE the tasks from before `target` are gone; after the bad
/// migration, intake fails.
fn detect_damage(stack: &Stack, pg: &Postgres, target: &str) -> Result<()> {
    let before = format!("SELECT count(*) FROM tasks WHERE created_at < '{target}'");
    wait_for("the damage to show", Duration::from_secs(30), || {
        let gone = pg.psql_in(DATABASE, &before).is_ok_and(|n| n.trim() == "0");
        gone || crate::stack::api::submit_task(
            stack,
            &serde_json::json!({"goal": "DR detection probe"}),
        )
        .is_err()
    })
}

fn corruption(drill: &Drill) -> Result<Outcome> {
    let stack = drill.stack;
    let pg = Postgres::new(stack);
    let mut out = Outcome::allowing_loss_within_rpo();
    let relation = pg.psql_in(DATABASE, "SELECT pg_relation_filepath('tasks')")?;
    let ledger = load(drill, &mut out, "corruption")?;
    out.phase(
        "disaster: 64 bytes of block 0 of the tasks table overwritten (PostgreSQL restarted)",
    );
    let disaster = Disaster::now();
    stack.stop(Component::Postgres, Duration::from_secs(30))?;
    let file = pg.data_dir().join(relation.trim());
    let mut bytes = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    if bytes.len() < 8192 {
        bail!("{} is smaller than one block", file.display());
    }
    bytes[4096..4160].fill(0xA5);
    fs::write(&file, &bytes)?;
    reconcile(stack, Component::Postgres, &launch::timings_of(stack))?;
    // pg_receivewal retries only every 5 s; reconnect it now.
    stack.stop(Component::WalStream, Duration::from_secs(10))?;
    reconcile(stack, Component::WalStream, &launch::timings_of(stack))?;
    out.phase("detection: full scan of tasks");
    let scan = "SELECT count(*), sum(length(goal)) FROM tasks";
    match pg.psql_in(DATABASE, scan) {
        Ok(rows) => {
            bail!("the corrupted block was read without error ({rows}): checksums are off?")
        }
        Err(error) => out.note(format!(
            "detected: {}",
            format!("{error:#}")
                .lines()
                .find(|l| l.contains("ERROR"))
                .unwrap_or("query failed")
        )),
    }
    let acks = ledger.stop()?;
    restore_and_verify(
        drill,
        &mut out,
        &disaster,
        &acks,
        RestoreTarget::Latest,
        None,
    )?;
    pg.psql_in(DATABASE, scan)
        .context("the full scan still fails after the restore")?;
    out.note("full scan of tasks succeeds after the restore");
    Ok(out)
}

fn orchestrator_crash(drill: &Drill) -> Result<Outcome> {
    let stack = drill.stack;
    let pg = Postgres::new(stack);
    let mut out = Outcome::default();
    let ledger = load(drill, &mut out, "orchestrator-crash")?;
    out.phase("disaster: orchestrator SIGKILLed");
    let disaster = Disaster::now();
    stack.crash(Component::Orchestrator)?;
    out.phase("restart");
    reconcile(stack, Component::Orchestrator, &launch::timings_of(stack))?;
    wait_service(stack)?;
    out.rto = Some(disaster.elapsed());
    let acks = ledger.stop()?;
    out.phase("verification: every acknowledged task present");
    let verdict = ledger::compare(&acks, &present_ids(&pg)?, None);
    out.rpo = rpo(disaster.unix_us, &verdict);
    out.verdict = Some(verdict);
    out.phase("verification: every acknowledged task finishes");
    let ids: Vec<String> = acks.iter().map(|a| format!("'{}'", a.id)).collect();
    let unfinished = format!(
        "SELECT count(*) FROM tasks WHERE status IN ('queued', 'running') AND id IN ({})",
        ids.join(",")
    );
    let started = Instant::now();
    let finished = wait_for(
        "acknowledged tasks to finish",
        Duration::from_secs(120),
        || {
            pg.psql_in(DATABASE, &unfinished)
                .is_ok_and(|n| n.trim() == "0")
        },
    );
    match finished {
        Ok(()) => out.note(format!(
            "all {} acknowledged tasks reached a final state {:.1}s after the restart",
            acks.len(),
            started.elapsed().as_secs_f64()
        )),
        Err(error) => bail!(
            "{error:#}: {} still unfinished",
            pg.psql_in(DATABASE, &unfinished)?.trim()
        ),
    }
    Ok(out)
}

fn redis_loss(drill: &Drill) -> Result<Outcome> {
    let stack = drill.stack;
    let redis = Redis::new(stack);
    let mut out = Outcome::allowing_loss_within_rpo();
    out.phase("load: 500 keys, an RDB copy, 500 more keys");
    redis.cli(&[
        "EVAL",
        "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end",
        "0",
        "dr-drill:*",
    ])?;
    write_keys(&redis, 0..500)?;
    let copy = redis.backup()?;
    write_keys(&redis, 500..1000)?;
    // appendfsync everysec: what was written a second ago is on disk.
    std::thread::sleep(Duration::from_millis(1500));

    out.phase("disaster 1: Redis SIGKILLed");
    stack.crash(Component::Redis)?;
    check_reflex_answers(stack)?;
    out.note("the reflex layer answered a check while Redis was down");
    reconcile(stack, Component::Redis, &launch::timings_of(stack))?;
    let after_crash = count_keys(&redis)?;
    if after_crash != 1000 {
        bail!("after a crash and AOF replay {after_crash} of 1000 keys are left");
    }
    out.note("after the crash, AOF replay restored all 1000 keys");

    out.phase("disaster 2: Redis killed, data directory deleted");
    let disaster = Disaster::now();
    stack.crash(Component::Redis)?;
    fs::remove_dir_all(redis.data_dir())?;
    out.phase("restore: newest intact RDB copy, AOF rebuilt from it");
    let restored = redis.restore_latest_copy()?;
    redis::rebuild_aof_from_rdb(&redis)?;
    reconcile(stack, Component::Redis, &launch::timings_of(stack))?;
    out.rto = Some(disaster.elapsed());
    out.phase("verification");
    let keys = count_keys(&redis)?;
    out.verdict = Some(Verdict {
        expected: 500,
        lost: 500usize.saturating_sub(keys),
        unexpected: keys.saturating_sub(500),
        ..Verdict::default()
    });
    // Keys written after the copy are lost by design: RPO = the copy's age,
    // judged against the copy interval rather than 1 s, because Redis holds
    // cache and rate-limit state only, which rebuilds itself.
    let age = disaster.unix_s.saturating_sub(restored.taken_at);
    out.note(format!(
        "restored {} ({} bytes); the 500 keys written after it are gone as expected; copy age {age}s",
        restored.path.display(),
        copy.size
    ));
    out.rpo = Some(Duration::from_secs(age));
    out.rpo_goal = Some(crate::stack::backup::REDIS_COPY_INTERVAL);
    Ok(out)
}

fn stack_loss(drill: &Drill) -> Result<Outcome> {
    let stack = drill.stack;
    let pg = Postgres::new(stack);
    let mut out = Outcome::allowing_loss_within_rpo();
    Redis::new(stack).backup()?;
    let ledger = load(drill, &mut out, "stack-loss")?;
    out.phase("disaster: every process killed, state directory and data wiped (backup store kept)");
    let disaster = Disaster::now();
    for component in Component::ALL.iter().rev() {
        stack.crash(*component)?;
    }
    let acks = ledger.stop()?;
    let port_base = stack.port_base;
    let state_dir = stack.state_dir.clone();
    let compress_time = Some(launch::timings_of(stack).time_compression).filter(|f| *f > 1);
    fs::remove_dir_all(&state_dir)?;
    for gone in [pg.data_dir(), pg.socket_dir(), pg.pgbackrest_config()] {
        let _ = fs::remove_dir_all(&gone).or_else(|_| fs::remove_file(&gone));
    }

    out.phase("rebuild: PostgreSQL restored, Redis restored, stack redeployed");
    let fresh = Stack::new(&state_dir, port_base)?;
    let pg = Postgres::new(&fresh);
    pg.write_backup_config()?;
    pg.restore(&RestoreTarget::Latest)?;
    let redis = Redis::new(&fresh);
    launch::launch(&fresh, Component::Redis, &launch::timings_of(&fresh))?; // renders redis.conf
    redis.restore_latest_copy()?;
    redis::rebuild_aof_from_rdb(&redis)?;
    deploy::DeployPlan {
        state_dir: state_dir.clone(),
        port_base,
        smoke: false,
        compress_time,
    }
    .run(drill.sh)?;
    wait_service(&fresh)?;
    out.rto = Some(disaster.elapsed());
    out.phase("verification");
    let verdict = ledger::compare(&acks, &present_ids(&pg)?, None);
    out.rpo = rpo(disaster.unix_us, &verdict);
    out.verdict = Some(verdict);
    out.note("new secrets (API token, passwords) were generated; the data came from the backup store alone");
    fresh_backup(&pg, &mut out)?;
    Ok(out)
}

fn repo_damaged(drill: &Drill) -> Result<Outcome> {
    let stack = drill.stack;
    let pg = Postgres::new(stack);
    let mut out = Outcome::default();
    out.phase("disaster: a file of the newest full backup is overwritten");
    pg.backup("full")?;
    let label = newest_backup_label(&pg)?;
    let damaged = largest_file(
        &pg.backup_repo()
            .join("backup")
            .join(crate::stack::postgres::STANZA)
            .join(&label),
    )?;
    let disaster = Disaster::now();
    let mut bytes = fs::read(&damaged)?;
    let middle = bytes.len() / 2;
    let end = (middle + 64).min(bytes.len());
    for b in &mut bytes[middle..end] {
        *b ^= 0xFF;
    }
    fs::write(&damaged, &bytes)?;
    out.note(format!("damaged {}", damaged.display()));

    out.phase("detection: pgbackrest verify");
    match backup::verify(stack) {
        Ok(()) => bail!("pgbackrest verify did not notice the damaged file"),
        Err(error) => out.note(format!(
            "verify failed as it must: {}",
            first_line(&format!("{error:#}"))
        )),
    }
    out.phase("detection: BackupVerifyFailed firing in Prometheus");
    wait_alert(stack, "BackupVerifyFailed", true)?;
    out.note(format!(
        "alert firing {:.1?} after the damage",
        disaster.elapsed()
    ));

    // Nothing was down: the RTO here is the repair, from the page to a
    // repository that verifies clean again.
    out.phase("repair: new full backup, damaged set expired, verify");
    let page = Instant::now();
    pg.backup("full")?;
    pg.pgbackrest(&["expire", &format!("--set={label}")])?;
    backup::verify(stack)?;
    out.rto = Some(page.elapsed());
    out.phase("resolution: BackupVerifyFailed no longer firing");
    wait_alert(stack, "BackupVerifyFailed", false)?;
    Ok(out)
}
