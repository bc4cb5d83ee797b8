//! The stack's Redis: a `redis-cli` bound to it, and its backups. Redis
//! keeps its own AOF (fsync every second) and RDB snapshots; `backup` copies
//! a fresh RDB snapshot, with its SHA-256, into the backup repository so a
//! lost data directory can be rebuilt from the backup store alone.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::postgres::Postgres;
use super::{Component, Stack};
use crate::util::wait_for;

/// Backup copies kept in the repository.
const KEEP_COPIES: usize = 6;

pub struct Redis<'a> {
    stack: &'a Stack,
}

/// One RDB copy in the backup repository.
pub struct RdbCopy {
    pub path: PathBuf,
    pub taken_at: u64,
    pub size: u64,
}

impl<'a> Redis<'a> {
    pub fn new(stack: &'a Stack) -> Self {
        Self { stack }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.stack.data_dir(Component::Redis)
    }

    /// Where RDB copies are kept: beside pgBackRest's files in the repository.
    pub fn backup_dir(&self) -> PathBuf {
        Postgres::new(self.stack).backup_repo().join("redis")
    }

    /// Runs one `redis-cli` command against the stack's Redis.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let output = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.stack.port(Component::Redis).to_string(),
            ])
            .args(args)
            .env("REDISCLI_AUTH", self.stack.secret("redis-password")?)
            .output()
            .context("running redis-cli")?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() || stdout.starts_with("ERR") {
            bail!(
                "redis-cli {}: {stdout}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(stdout)
    }

    fn info_field(&self, field: &str) -> Result<String> {
        let info = self.cli(&["INFO", "persistence"])?;
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .map(|v| v.trim().to_owned())
            .with_context(|| format!("INFO persistence has no {field}"))
    }

    /// Triggers an RDB snapshot and waits for it to be written.
    pub fn snapshot(&self) -> Result<()> {
        let before = self.info_field("rdb_last_save_time")?;
        self.cli(&["BGSAVE"])?;
        wait_for("Redis BGSAVE", Duration::from_secs(60), || {
            self.info_field("rdb_bgsave_in_progress")
                .is_ok_and(|v| v == "0")
                && self
                    .info_field("rdb_last_save_time")
                    .is_ok_and(|v| v != before)
        })?;
        if self.info_field("rdb_last_bgsave_status")? != "ok" {
            bail!("Redis BGSAVE failed; see `cargo xtask logs redis`");
        }
        Ok(())
    }

    /// Snapshots, copies the RDB file with its checksum into the backup
    /// repository, and prunes old copies.
    pub fn backup(&self) -> Result<RdbCopy> {
        // Two snapshots may land in the same second; keep names unique.
        std::thread::sleep(Duration::from_millis(1100));
        self.snapshot()?;
        let dir = self.backup_dir();
        fs::create_dir_all(&dir)?;
        let taken_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let path = dir.join(format!("dump-{taken_at}.rdb"));
        fs::copy(self.data_dir().join("dump.rdb"), &path).context("copying dump.rdb")?;
        fs::write(path.with_extension("rdb.sha256"), sha256(&path)?)?;
        let mut copies = self.copies()?;
        while copies.len() > KEEP_COPIES {
            let old = copies.remove(0);
            fs::remove_file(old.path.with_extension("rdb.sha256"))?;
            fs::remove_file(&old.path)?;
        }
        let size = fs::metadata(&path)?.len();
        Ok(RdbCopy {
            path,
            taken_at,
            size,
        })
    }

    /// The copies in the repository, oldest first.
    pub fn copies(&self) -> Result<Vec<RdbCopy>> {
        let mut copies = Vec::new();
        let Ok(entries) = fs::read_dir(self.backup_dir()) else {
            return Ok(copies);
        };
        for entry in entries {
            let path = entry?.path();
            let Some(taken_at) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("dump-")?.strip_suffix(".rdb"))
                .and_then(|t| t.parse().ok())
            else {
                continue;
            };
            let size = fs::metadata(&path)?.len();
            copies.push(RdbCopy {
                path,
                taken_at,
                size,
            });
        }
        copies.sort_by_key(|c| c.taken_at);
        Ok(copies)
    }

    /// Replaces Redis's data directory (Redis must be stopped) with the
    /// newest copy whose checksum matches; returns it. Copies that fail the
    /// check are reported and skipped, never restored.
    pub fn restore_latest_copy(&self) -> Result<RdbCopy> {
        let copies = self.copies()?;
        let mut rejected = Vec::new();
        for copy in copies.into_iter().rev() {
            let expected =
                fs::read_to_string(copy.path.with_extension("rdb.sha256")).unwrap_or_default();
            if sha256(&copy.path)? != expected.trim() {
                rejected.push(copy.path.display().to_string());
                continue;
            }
            let data = self.data_dir();
            if data.exists() {
                fs::remove_dir_all(&data)?;
            }
            fs::create_dir_all(&data)?;
            fs::copy(&copy.path, data.join("dump.rdb"))?;
            return Ok(copy);
        }
        bail!(
            "no intact Redis backup in {} (checksum mismatch: {})",
            self.backup_dir().display(),
            if rejected.is_empty() {
                "none; the directory is empty".to_owned()
            } else {
                rejected.join(", ")
            }
        )
    }
}

/// Redis 7 with `appendonly yes` starts *empty* when the AOF is missing,
/// ignoring dump.rdb. So after an RDB restore, a temporary Redis loads the
/// RDB with AOF off, rewrites the AOF from it, and shuts down cleanly; the
/// stack's Redis then starts from both.
pub fn rebuild_aof_from_rdb(redis: &Redis) -> Result<()> {
    let stack = redis.stack;
    let mut server = Command::new("redis-server")
        .arg(stack.config_path("redis.conf"))
        .args(["--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting a temporary redis-server")?;
    let result = (|| {
        wait_for("temporary Redis", Duration::from_secs(30), || {
            redis.cli(&["PING"]).is_ok_and(|p| p.trim() == "PONG")
        })?;
        redis.cli(&["CONFIG", "SET", "appendonly", "yes"])?;
        wait_for("AOF rewrite", Duration::from_secs(60), || {
            redis.info_field("aof_enabled").is_ok_and(|v| v == "1")
                && redis
                    .info_field("aof_rewrite_in_progress")
                    .is_ok_and(|v| v == "0")
                && redis
                    .info_field("aof_rewrite_scheduled")
                    .is_ok_and(|v| v == "0")
        })?;
        redis.cli(&["SHUTDOWN"]).map(drop)
    })();
    if result.is_err() {
        let _ = server.kill();
    }
    let _ = server.wait();
    result
}

fn sha256(path: &std::path::Path) -> Result<String> {
    let output = Command::new("sha256sum").arg(path).output()?;
    if !output.status.success() {
        bail!("sha256sum {}", path.display());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}
