//! The stack's PostgreSQL 15 and its pgBackRest repository: initialised once
//! (data checksums on, 1 MB WAL segments), run in the foreground as user
//! `postgres`, WAL archived continuously, a full backup taken at first start.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::stack::{POSTGRES, Stack};
use super::template::{self, Vars};
use crate::{project_root, say};

const BIN: &str = "/usr/lib/postgresql/15/bin";
pub const DATABASE: &str = "octollm";
pub const ROLE: &str = "octollm";
pub const MONITOR_ROLE: &str = "octollm_monitor";
pub const STANZA: &str = "octollm";

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

    pub fn port(&self) -> u16 {
        self.stack.port(POSTGRES)
    }

    /// `postgres://octollm:…@127.0.0.1:<port>/octollm`
    pub fn url(&self) -> Result<String> {
        Ok(format!(
            "postgres://{ROLE}:{}@127.0.0.1:{}/{DATABASE}",
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
        for dir in [
            "run",
            "backup-repo",
            "pgbackrest/log",
            "pgbackrest/lock",
            "pgbackrest/spool",
        ] {
            fs::create_dir_all(root.join(dir))?;
        }
        let vars = self.vars();
        let templates = project_root().join("deploy/local");
        let pg_conf = template::render_file(&templates.join("postgresql.conf.tmpl"), &vars)?;
        let backrest_conf = template::render_file(&templates.join("pgbackrest.conf.tmpl"), &vars)?;
        fs::write(self.pgbackrest_config(), &backrest_conf)?;

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

    pub fn command(&self) -> Command {
        let mut command = as_postgres(&format!("{BIN}/postgres"));
        command.arg("-D").arg(self.data_dir());
        command
    }

    pub fn is_ready(&self) -> bool {
        self.client("pg_isready")
            .arg("-q")
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Creates the application and monitoring roles and the database.
    pub fn provision(&self) -> Result<()> {
        let app = self.stack.secret("postgres-password")?;
        let monitor = self.stack.secret("postgres-monitor-password")?;
        self.psql(&format!(
            "DO $$ BEGIN
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
        if self
            .psql(&format!(
                "SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
            ))?
            .trim()
            != "1"
        {
            self.psql(&format!("CREATE DATABASE {DATABASE} OWNER {ROLE}"))?;
        }
        Ok(())
    }

    /// Creates the pgBackRest stanza, checks archiving, and takes the first
    /// full backup when the repository has none.
    pub fn ensure_backups(&self) -> Result<()> {
        self.pgbackrest(&["stanza-create"])
            .context("pgbackrest stanza-create")?;
        self.pgbackrest(&["check"])
            .context("pgbackrest check (is WAL archiving working?)")?;
        let info: serde_json::Value =
            serde_json::from_str(&self.pgbackrest(&["info", "--output=json"])?)?;
        let backups = info[0]["backup"].as_array().map_or(0, Vec::len);
        if backups == 0 {
            say!("taking the initial full backup (pgBackRest)");
            self.pgbackrest(&["backup", "--type=full"])
                .context("initial full backup")?;
        }
        Ok(())
    }

    /// The newest backup of each kind, as Prometheus text for the
    /// Pushgateway (the names of TARGET.md §4), from `pgbackrest info`.
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

    pub fn pgbackrest(&self, args: &[&str]) -> Result<String> {
        run(as_postgres("pgbackrest")
            .arg(format!("--config={}", self.pgbackrest_config().display()))
            .arg(format!("--stanza={STANZA}"))
            .args(args))
    }

    /// A PostgreSQL client program, connecting as `postgres` over the socket
    /// (peer auth), so probes and provisioning log no failures.
    pub fn client(&self, program: &str) -> Command {
        let mut command = as_postgres(&format!("{BIN}/{program}"));
        command.arg("-h").arg(self.socket_dir()).args([
            "-p",
            &self.port().to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ]);
        command
    }

    pub fn psql(&self, sql: &str) -> Result<String> {
        run(self
            .client("psql")
            .args(["-v", "ON_ERROR_STOP=1", "-qtA", "-c", sql]))
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
