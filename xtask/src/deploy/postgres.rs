//! The stack's PostgreSQL 15: initialised once (data checksums on), run in
//! the foreground as user `postgres` under our supervision.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use super::stack::{POSTGRES_PORT, Stack, wait_for};
use crate::say;

const BIN: &str = "/usr/lib/postgresql/15/bin";
const DATABASE: &str = "octollm";
const ROLE: &str = "octollm";

pub struct Postgres<'a> {
    stack: &'a Stack,
}

impl<'a> Postgres<'a> {
    pub fn new(stack: &'a Stack) -> Self {
        Self { stack }
    }

    fn data_dir(&self) -> PathBuf {
        self.stack.postgres_dir().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.stack.postgres_dir().join("run")
    }

    pub fn port(&self) -> u16 {
        self.stack.port(POSTGRES_PORT)
    }

    /// `postgres://octollm:…@127.0.0.1:<port>/octollm`
    pub fn url(&self) -> Result<String> {
        Ok(format!(
            "postgres://{ROLE}:{}@127.0.0.1:{}/{DATABASE}",
            self.password()?,
            self.port()
        ))
    }

    fn password(&self) -> Result<String> {
        let path = self
            .stack
            .state_dir
            .join("secrets")
            .join("postgres-password");
        if let Ok(password) = fs::read_to_string(&path) {
            return Ok(password.trim().to_owned());
        }
        let password = super::random_hex(24)?;
        super::write_secret(&path, &password)?;
        Ok(password)
    }

    fn as_postgres(program: &str) -> Command {
        let mut command = Command::new("setpriv");
        command.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
            &format!("{BIN}/{program}"),
        ]);
        command
    }

    /// Creates the cluster the first time; later runs keep its data.
    pub fn init(&self, sh: &Shell) -> Result<()> {
        let root = self.stack.postgres_dir();
        fs::create_dir_all(self.socket_dir())?;
        if self.data_dir().join("PG_VERSION").exists() {
            return Ok(());
        }
        say!("initialising PostgreSQL in {}", self.data_dir().display());
        fs::create_dir_all(self.data_dir())?;
        fs::set_permissions(self.data_dir(), fs::Permissions::from_mode(0o700))?;
        let root_str = root.to_string_lossy().to_string();
        cmd!(sh, "chown -R postgres:postgres {root_str}").run()?;
        let output = Self::as_postgres("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "--username=postgres",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--data-checksums",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ])
            .output()
            .context("cannot run initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    pub fn start(&self) -> Result<()> {
        if self.stack.pid("postgres").is_some() {
            return Ok(());
        }
        let mut command = Self::as_postgres("postgres");
        command
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port().to_string())
            .arg("-k")
            .arg(self.socket_dir())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
            ]);
        self.stack.spawn("postgres", command)?;
        let socket = self.socket_dir();
        let port = self.port().to_string();
        wait_for("postgres", Duration::from_secs(30), || {
            Command::new(format!("{BIN}/pg_isready"))
                .arg("-h")
                .arg(&socket)
                .args(["-p", &port, "-q"])
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Creates the application role and database when missing.
    pub fn provision(&self) -> Result<()> {
        let password = self.password()?;
        self.psql(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                 CREATE ROLE {ROLE} LOGIN;
               END IF;
             END $$;
             ALTER ROLE {ROLE} PASSWORD '{password}';"
        ))?;
        let exists = self.psql(&format!(
            "SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
        ))?;
        if exists.trim() != "1" {
            self.psql(&format!("CREATE DATABASE {DATABASE} OWNER {ROLE}"))?;
        }
        Ok(())
    }

    fn psql(&self, sql: &str) -> Result<String> {
        let output = Command::new("setpriv")
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(format!("{BIN}/psql"))
            .arg("-h")
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port().to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-qtA", "-c", sql])
            .output()
            .context("cannot run psql")?;
        if !output.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Removes the cluster's data (for `down --purge`).
    pub fn purge(&self) -> Result<()> {
        let root = self.stack.postgres_dir();
        if root.exists() {
            fs::remove_dir_all(&root)?;
        }
        Ok(())
    }
}
