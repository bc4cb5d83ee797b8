//! The stack's PostgreSQL 15 and its backup store: initialised once (data
//! checksums on, 1 MB WAL segments), run in the foreground as user
//! `postgres`, a full backup taken at first start.
//!
//! The backup store has two parts, both outside the data directory:
//! - the pgBackRest repository: base backups and every archived WAL segment
//!   (`archive_command`, at least once a minute), for point-in-time recovery;
//! - the WAL stream: `pg_receivewal` on a replication slot, receiving WAL as
//!   it is flushed, so a restore to "latest" also replays the segment that
//!   was not archived yet. Restores read both (archive first).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::template::{self, Vars};
use super::{Component, Stack};
use crate::say;
use crate::util::{project_root, run_with_input};

const BIN: &str = "/usr/lib/postgresql/15/bin";
pub const DATABASE: &str = "octollm";
/// The retriever's knowledge store: its own database (no service reads
/// another's), owned by the same role.
pub const KNOWLEDGE_DATABASE: &str = "octollm_knowledge";
pub const ROLE: &str = "octollm";
pub const MONITOR_ROLE: &str = "octollm_monitor";
pub const STANZA: &str = "octollm";
const STREAM_SLOT: &str = "octollm_wal_stream";

/// How far a restore replays WAL.
#[derive(Debug, Clone)]
pub enum RestoreTarget {
    /// Everything in the archive and the WAL stream.
    Latest,
    /// Up to (excluding) this instant, e.g. `2026-11-29 14:30:00.123456+00`.
    Time(String),
}

pub struct Postgres<'a> {
    stack: &'a Stack,
}

impl<'a> Postgres<'a> {
    pub fn new(stack: &'a Stack) -> Self {
        Self { stack }
    }

    fn root(&self) -> PathBuf {
        self.stack.postgres_dir()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.root().join("run")
    }

    pub fn pgbackrest_config(&self) -> PathBuf {
        self.root().join("pgbackrest.conf")
    }

    pub fn backup_repo(&self) -> PathBuf {
        self.root().join("backup-repo")
    }

    /// Where `pg_receivewal` writes (part of the backup store).
    pub fn stream_dir(&self) -> PathBuf {
        self.root().join("wal-stream")
    }

    pub fn port(&self) -> u16 {
        self.stack.port(Component::Postgres)
    }

    /// `postgres://octollm:…@127.0.0.1:<port>/octollm`
    pub fn url(&self) -> Result<String> {
        self.url_for(DATABASE)
    }

    /// The application role's URL for `database`.
    pub fn url_for(&self, database: &str) -> Result<String> {
        Ok(format!(
            "postgres://{ROLE}:{}@127.0.0.1:{}/{database}",
            self.stack.secret("postgres-password")?,
            self.port()
        ))
    }

    /// The exporter's connection string (a pg_monitor role).
    pub fn monitor_url(&self) -> Result<String> {
        Ok(format!(
            "postgresql://{MONITOR_ROLE}:{}@127.0.0.1:{}/postgres?sslmode=disable",
            self.stack.secret("postgres-monitor-password")?,
            self.port()
        ))
    }

    fn vars(&self) -> Vars {
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        Vars::from([
            ("POSTGRES_PORT", self.port().to_string()),
            ("POSTGRES_SOCKET_DIR", path(self.socket_dir())),
            ("POSTGRES_DATA_DIR", path(self.data_dir())),
            ("PGBACKREST_CONFIG", path(self.pgbackrest_config())),
            ("BACKUP_REPO", path(self.backup_repo())),
            (
                "PGBACKREST_LOG_DIR",
                path(self.root().join("pgbackrest/log")),
            ),
            (
                "PGBACKREST_LOCK_DIR",
                path(self.root().join("pgbackrest/lock")),
            ),
            (
                "PGBACKREST_SPOOL_DIR",
                path(self.root().join("pgbackrest/spool")),
            ),
        ])
    }

    /// Creates the cluster the first time, and (re)writes its config files.
    /// Returns the rendered config, part of PostgreSQL's fingerprint.
    pub fn prepare(&self) -> Result<String> {
        let root = self.root();
        // pgBackRest's own directories come with its config, below.
        for dir in ["run", "backup-repo", "wal-stream"] {
            fs::create_dir_all(root.join(dir))?;
        }
        let vars = self.vars();
        let pg_conf = template::render_file(
            &project_root().join("deploy/local/postgresql.conf.tmpl"),
            &vars,
        )?;
        let backrest_conf = self.write_backup_config()?;

        if !self.data_dir().join("PG_VERSION").exists() {
            say!("initialising PostgreSQL in {}", self.data_dir().display());
            fs::create_dir_all(self.data_dir())?;
            fs::set_permissions(self.data_dir(), fs::Permissions::from_mode(0o700))?;
            chown_postgres(&root)?;
            run(as_postgres(&format!("{BIN}/initdb"))
                .arg("-D")
                .arg(self.data_dir())
                .args([
                    "--username=postgres",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "--data-checksums",
                    "--wal-segsize=1",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ]))
            .context("initdb")?;
            let conf = self.data_dir().join("postgresql.conf");
            let mut text = fs::read_to_string(&conf)?;
            text.push_str("\n# Settings of the OctoLLM local stack.\ninclude_dir = 'conf.d'\n");
            fs::write(&conf, text)?;
        }
        fs::create_dir_all(self.data_dir().join("conf.d"))?;
        fs::write(self.data_dir().join("conf.d/octollm.conf"), &pg_conf)?;
        chown_postgres(&root)?;
        Ok(format!("{pg_conf}{backrest_conf}"))
    }

    /// Renders pgBackRest's config (all a restore needs); returns its text.
    pub fn write_backup_config(&self) -> Result<String> {
        for dir in ["pgbackrest/log", "pgbackrest/lock", "pgbackrest/spool"] {
            fs::create_dir_all(self.root().join(dir))?;
        }
        let text = template::render_file(
            &project_root().join("deploy/local/pgbackrest.conf.tmpl"),
            &self.vars(),
        )?;
        fs::write(self.pgbackrest_config(), &text)?;
        Ok(text)
    }

    pub fn command(&self) -> Command {
        let mut command = as_postgres(&format!("{BIN}/postgres"));
        command.arg("-D").arg(self.data_dir());
        command
    }

    /// `pg_receivewal` on the stack's slot, flushing each write.
    pub fn stream_command(&self) -> Command {
        let mut command = self.client_without_database("pg_receivewal");
        command
            .arg("-D")
            .arg(self.stream_dir())
            .args([&format!("--slot={STREAM_SLOT}"), "--synchronous"]);
        command
    }

    /// Whether a WAL receiver is streaming from this cluster.
    pub fn is_streaming(&self) -> bool {
        self.psql(
            "SELECT count(*) FROM pg_stat_replication \
             WHERE application_name = 'pg_receivewal' AND state = 'streaming'",
        )
        .is_ok_and(|n| n.trim() == "1")
    }

    /// Accepting connections, and a primary: a restored cluster answers
    /// read-only while it still replays WAL.
    /// Whether the WAL stream holds everything PostgreSQL has flushed.
    pub fn stream_caught_up(&self) -> bool {
        self.psql(
            "SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), flush_lsn) <= 0 \
             FROM pg_stat_replication WHERE application_name = 'pg_receivewal'",
        )
        .is_ok_and(|r| r.trim() == "t")
    }

    pub fn is_ready(&self) -> bool {
        self.client("pg_isready")
            .arg("-q")
            .status()
            .is_ok_and(|s| s.success())
            && self
                .psql("SELECT pg_is_in_recovery()")
                .is_ok_and(|r| r.trim() == "f")
    }

    /// Creates the application and monitoring roles and the databases (the
    /// orchestrator's and the retriever's knowledge store, with pg_trgm).
    pub fn provision(&self) -> Result<()> {
        let app = self.stack.secret("postgres-password")?;
        let monitor = self.stack.secret("postgres-monitor-password")?;
        // The passwords must not reach the server log, even in a failed
        // statement's STATEMENT line.
        self.psql(&format!(
            "SET log_min_error_statement = panic;
             DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                 CREATE ROLE {ROLE} LOGIN;
               END IF;
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{MONITOR_ROLE}') THEN
                 CREATE ROLE {MONITOR_ROLE} LOGIN IN ROLE pg_monitor;
               END IF;
             END $$;
             ALTER ROLE {ROLE} PASSWORD '{app}';
             ALTER ROLE {MONITOR_ROLE} PASSWORD '{monitor}';"
        ))?;
        // Slots are not in base backups: a restored cluster needs it again.
        self.psql(&format!(
            "SELECT pg_create_physical_replication_slot('{STREAM_SLOT}', true) \
             WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '{STREAM_SLOT}')"
        ))?;
        for database in [DATABASE, KNOWLEDGE_DATABASE] {
            if self
                .psql(&format!(
                    "SELECT 1 FROM pg_database WHERE datname = '{database}'"
                ))?
                .trim()
                != "1"
            {
                self.psql(&format!("CREATE DATABASE {database} OWNER {ROLE}"))?;
            }
        }
        // pg_trgm is trusted, so the owner may create it (the retriever's
        // migration does); creating it here too keeps the stack working
        // should it ever be untrusted.
        self.psql_in(KNOWLEDGE_DATABASE, "CREATE EXTENSION IF NOT EXISTS pg_trgm")?;
        Ok(())
    }

    /// Creates the pgBackRest stanza, checks archiving, and takes the first
    /// full backup when the repository has none.
    pub fn ensure_backups(&self) -> Result<()> {
        let info = || -> Result<serde_json::Value> {
            Ok(serde_json::from_str(
                &self.pgbackrest(&["info", "--output=json"])?,
            )?)
        };
        // stanza-create takes the archive lock, which the asynchronous
        // archiver holds while it works: create the stanza only when it is
        // missing, and wait for the lock if need be.
        // Status codes 1 and 3: the stanza's path or data is missing.
        let code = info()?[0]["status"]["code"].as_i64();
        if matches!(code, Some(1 | 3)) {
            let mut created = self.pgbackrest(&["stanza-create"]);
            for _ in 0..30 {
                match &created {
                    Err(error) if format!("{error:#}").contains("unable to acquire lock") => {
                        std::thread::sleep(std::time::Duration::from_secs(1));
                        created = self.pgbackrest(&["stanza-create"]);
                    }
                    _ => break,
                }
            }
            created.context("pgbackrest stanza-create")?;
        }
        self.pgbackrest(&["check"])
            .context("pgbackrest check (is WAL archiving working?)")?;
        let backups = info()?[0]["backup"].as_array().map_or(0, Vec::len);
        if backups == 0 {
            say!("taking the initial full backup (pgBackRest)");
            self.pgbackrest(&["backup", "--type=full"])
                .context("initial full backup")?;
        }
        Ok(())
    }

    /// The newest backup of each kind, as Prometheus text for the
    /// Pushgateway (docs/contracts.md, "Metrics"), from `pgbackrest info`.
    pub fn backup_metrics(&self) -> Result<String> {
        let info: serde_json::Value =
            serde_json::from_str(&self.pgbackrest(&["info", "--output=json"])?)?;
        let mut text = String::from(
            "# TYPE octollm_backup_last_success_timestamp_seconds gauge\n\
             # TYPE octollm_backup_duration_seconds gauge\n\
             # TYPE octollm_backup_size_bytes gauge\n",
        );
        let backups = info[0]["backup"].as_array().cloned().unwrap_or_default();
        for kind in ["full", "diff", "incr"] {
            // Backups are listed oldest first.
            let Some(last) = backups.iter().rev().find(|b| b["type"] == kind) else {
                continue;
            };
            let stop = last["timestamp"]["stop"].as_i64().unwrap_or(0);
            let start = last["timestamp"]["start"].as_i64().unwrap_or(stop);
            let size = last["info"]["repository"]["delta"].as_i64().unwrap_or(0);
            text.push_str(&format!(
                "octollm_backup_last_success_timestamp_seconds{{kind=\"{kind}\"}} {stop}\n\
                 octollm_backup_duration_seconds{{kind=\"{kind}\"}} {}\n\
                 octollm_backup_size_bytes{{kind=\"{kind}\"}} {size}\n",
                stop - start
            ));
        }
        Ok(text)
    }

    /// Takes a backup of `kind` (full, diff or incr).
    pub fn backup(&self, kind: &str) -> Result<()> {
        self.pgbackrest(&["backup", &format!("--type={kind}")])
            .with_context(|| format!("pgbackrest {kind} backup"))
            .map(drop)
    }

    /// Rebuilds the data directory from the backup store. PostgreSQL must be
    /// stopped; whatever is in the data directory is discarded. The WAL
    /// stream is moved aside (its receiver must be stopped too) and replayed
    /// from there, so the fresh receiver starts on a clean directory.
    pub fn restore(&self, target: &RestoreTarget) -> Result<()> {
        let data = self.data_dir();
        if data.exists() {
            fs::remove_dir_all(&data)?;
        }
        fs::create_dir_all(&data)?;
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700))?;
        let replayed_stream = self.replayed_stream_dir();
        if replayed_stream.exists() {
            fs::remove_dir_all(&replayed_stream)?;
        }
        fs::rename(self.stream_dir(), &replayed_stream)?;
        fs::create_dir_all(self.stream_dir())?;
        chown_postgres(&self.root())?;

        let stream = replayed_stream.display();
        let restore_command = format!(
            "pgbackrest --config={} --stanza={STANZA} archive-get %f \"%p\" \
             || cp {stream}/%f \"%p\" 2>/dev/null || cp {stream}/%f.partial \"%p\" 2>/dev/null",
            self.pgbackrest_config().display()
        );
        let mut args = vec![
            "restore".to_owned(),
            format!("--recovery-option=restore_command={restore_command}"),
        ];
        match target {
            // Replays to the end of the WAL available, then promotes.
            RestoreTarget::Latest => args.push("--type=default".to_owned()),
            RestoreTarget::Time(time) => args.extend([
                "--type=time".to_owned(),
                format!("--target={time}"),
                "--target-exclusive".to_owned(),
                "--target-action=promote".to_owned(),
            ]),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.pgbackrest(&args).context("pgbackrest restore")?;
        Ok(())
    }

    /// Deletes the streamed segments that pgBackRest has archived too: the
    /// stream only has to cover what the archive does not hold yet. While
    /// archiving fails, nothing is deleted.
    pub fn prune_stream(&self) -> Result<usize> {
        let archived = self.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")?;
        let archived = archived.trim();
        if archived.len() != 24 {
            return Ok(0);
        }
        let mut removed = 0;
        for entry in fs::read_dir(self.stream_dir())? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let complete_segment = name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if complete_segment && name <= archived {
                fs::remove_file(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn replayed_stream_dir(&self) -> PathBuf {
        self.root().join("wal-stream.replayed")
    }

    /// After a restore and a fresh full backup, the stream that was
    /// replayed is no longer needed.
    pub fn drop_replayed_stream(&self) -> Result<()> {
        let dir = self.replayed_stream_dir();
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        Ok(())
    }

    pub fn pgbackrest(&self, args: &[&str]) -> Result<String> {
        run(as_postgres("pgbackrest")
            .arg(format!("--config={}", self.pgbackrest_config().display()))
            .arg(format!("--stanza={STANZA}"))
            .args(args))
    }

    /// A PostgreSQL client program, connecting as `postgres` over the socket
    /// (peer auth), so probes and provisioning log no failures.
    pub fn client(&self, program: &str) -> Command {
        self.client_in(program, "postgres")
    }

    fn client_in(&self, program: &str, database: &str) -> Command {
        let mut command = self.client_without_database(program);
        command.args(["-d", database]);
        command
    }

    /// As `postgres` over the socket, no database (pg_receivewal takes none).
    pub fn client_without_database(&self, program: &str) -> Command {
        let mut command = as_postgres(&format!("{BIN}/{program}"));
        command.arg("-h").arg(self.socket_dir()).args([
            "-p",
            &self.port().to_string(),
            "-U",
            "postgres",
        ]);
        command
    }

    pub fn psql(&self, sql: &str) -> Result<String> {
        self.psql_in("postgres", sql)
    }

    /// Runs `sql` as the superuser in `database`; rows as `a|b` lines.
    /// The SQL goes through psql's stdin, never its argv: provisioning SQL
    /// carries role passwords, and argv is visible to every local user.
    pub fn psql_in(&self, database: &str, sql: &str) -> Result<String> {
        let mut command = self.client_in("psql", database);
        command.args(["-v", "ON_ERROR_STOP=1", "-qtA", "-f", "-"]);
        run_with_input(&mut command, sql)
    }

    /// Removes the cluster and its backups (for `down --purge`).
    pub fn purge(&self) -> Result<()> {
        let root = self.root();
        if root.exists() {
            fs::remove_dir_all(&root)?;
        }
        Ok(())
    }
}

fn as_postgres(program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
        program,
    ]);
    command
}

fn chown_postgres(path: &std::path::Path) -> Result<()> {
    run(Command::new("chown")
        .arg("-R")
        .arg("postgres:postgres")
        .arg(path))
    .map(drop)
}

fn run(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}{}",
            command.get_program().to_string_lossy(),
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
