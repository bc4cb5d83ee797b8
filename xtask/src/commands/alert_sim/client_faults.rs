//! Faults a misbehaving client causes: connections held open, a table lock
//! taken again and again, a Redis filled past a lowered `maxmemory`.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::stack::postgres::Postgres;
use crate::stack::redis::Redis;
use crate::stack::{Component, Stack};

/// `application_name` of the clients holding connections.
const CONNECTION_HOLDER: &str = "alert-sim-connections";
/// `application_name` of the client taking the tasks-table lock in cycles.
const LOCK_CYCLER: &str = "alert-sim-lock-cycle";

/// A client program left running until healed.
pub struct Running(Child);

impl Running {
    /// Fails now if the program already exited (could not connect).
    fn started(mut child: Child, what: &str) -> Result<Self> {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err)?;
            }
            bail!("{what} exited ({status}): {err}");
        }
        Ok(Self(child))
    }

    pub fn stop(mut self) -> Result<()> {
        self.0.kill()?;
        self.0.wait()?;
        Ok(())
    }
}

/// pgbench holds enough idle-ish connections (each runs `pg_sleep(0.5)` in
/// a loop) to bring the server to `share` of `max_connections`.
pub fn hold_connections(stack: &Stack, share: f64) -> Result<Running> {
    let pg = Postgres::new(stack);
    let max: f64 = pg.psql("SHOW max_connections")?.trim().parse()?;
    let used: f64 = pg
        .psql("SELECT count(*) FROM pg_stat_activity")?
        .trim()
        .parse()?;
    let clients = (max * share - used).ceil();
    if clients < 1.0 || used + clients > max - 10.0 {
        bail!("{used} of {max} connections in use: cannot reach {share} leaving 10 spare");
    }
    let script = std::env::temp_dir().join(format!("alert-sim-hold-{}.sql", std::process::id()));
    std::fs::write(&script, "SELECT pg_sleep(0.5);\n")?;
    let child = pg
        .client_without_database("pgbench")
        .env("PGAPPNAME", CONNECTION_HOLDER)
        .args(["-n", "-j", "2", "-T", "3600", "-c"])
        .arg(format!("{clients}"))
        .arg("-f")
        .arg(&script)
        .arg("postgres")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting pgbench");
    // pgbench has read its script by the time `started` returns (or failed).
    let running = child.and_then(|child| Running::started(child, "pgbench holding connections"));
    let _ = std::fs::remove_file(&script);
    running
}

/// Ends every connection pgbench held.
pub fn release_connections(stack: &Stack, holder: Option<Running>) -> Result<()> {
    if let Some(holder) = holder {
        holder.stop()?;
    }
    terminate(stack, CONNECTION_HOLDER)
}

/// A client that locks the tasks table for 0.8 s of every 0.85 s: task
/// queries keep waiting up to 0.8 s, and finish (so their durations are
/// observed within a second of the fault).
pub fn cycle_tasks_lock(stack: &Stack) -> Result<Running> {
    let child = Postgres::new(stack)
        .client("psql")
        .env("PGAPPNAME", LOCK_CYCLER)
        .args([
            "-d",
            "octollm",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "DO $$ BEGIN LOOP LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE; \
             PERFORM pg_sleep(0.8); COMMIT; PERFORM pg_sleep(0.05); END LOOP; END $$;",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting psql to cycle the lock")?;
    Running::started(child, "psql cycling the tasks-table lock")
}

pub fn stop_lock_cycle(stack: &Stack, cycler: Option<Running>) -> Result<()> {
    // The backend loops on its own: end it first, then its client.
    terminate(stack, LOCK_CYCLER)?;
    if let Some(cycler) = cycler {
        cycler.stop()?;
    }
    Ok(())
}

fn terminate(stack: &Stack, application: &str) -> Result<()> {
    Postgres::new(stack)
        .psql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{application}'"
        ))
        .map(drop)
}

/// Key pattern of the filler's writes.
const FILLER_KEYS: &str = "key:*";

/// Redis with `maxmemory` lowered to what it uses now plus 1 MiB, and a
/// client writing 300 fresh 4 KiB keys a second: allkeys-lru evicts about
/// as many.
pub struct RedisFill {
    maxmemory: String,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
}

pub fn fill_redis(stack: &Stack) -> Result<RedisFill> {
    let redis = Redis::new(stack);
    let maxmemory = redis
        .cli(&["CONFIG", "GET", "maxmemory"])?
        .lines()
        .nth(1)
        .map(|v| v.trim().to_owned())
        .context("CONFIG GET maxmemory answered nothing")?;
    let used: u64 = redis
        .cli(&["INFO", "memory"])?
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .context("INFO memory has no used_memory")?
        .trim()
        .parse()?;
    let lowered = (used + (1 << 20)).to_string();
    redis.cli(&["CONFIG", "SET", "maxmemory", &lowered])?;
    let stop = Arc::new(AtomicBool::new(false));
    let port = stack.port(Component::Redis).to_string();
    let password = stack.secret("redis-password")?;
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let value = "x".repeat(4096);
            let mut batch = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let started = std::time::Instant::now();
                // 300 fresh keys in Redis's own protocol through `redis-cli
                // --pipe`; the password goes by environment, never argv.
                let mut commands = String::new();
                for i in 0..300 {
                    let key = format!("key:{batch}:{i}");
                    commands.push_str(&format!(
                        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                        key.len(),
                        value.len()
                    ));
                }
                batch += 1;
                let _ = Command::new("redis-cli")
                    .args(["-h", "127.0.0.1", "-p", &port, "--pipe"])
                    .env("REDISCLI_AUTH", &password)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .and_then(|mut child| {
                        if let Some(mut stdin) = child.stdin.take() {
                            std::io::Write::write_all(&mut stdin, commands.as_bytes())?;
                        }
                        child.wait()
                    });
                std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
            }
        })
    };
    Ok(RedisFill {
        maxmemory,
        stop,
        writer: Some(writer),
    })
}

/// Stops the writes, restores `maxmemory` and deletes the filler's keys.
pub fn stop_filling_redis(stack: &Stack, mut fill: RedisFill) -> Result<()> {
    fill.stop.store(true, Ordering::Relaxed);
    if let Some(writer) = fill.writer.take() {
        let _ = writer.join();
    }
    let redis = Redis::new(stack);
    redis.cli(&["CONFIG", "SET", "maxmemory", &fill.maxmemory])?;
    let keys = redis.cli(&["--scan", "--pattern", FILLER_KEYS])?;
    let keys: Vec<&str> = keys
        .lines()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    for chunk in keys.chunks(500) {
        let mut args = vec!["UNLINK"];
        args.extend(chunk);
        redis.cli(&args)?;
    }
    Ok(())
}
