//! Faults in the backup path: a damaged file in the pgBackRest repository
//! (found by a real `pgbackrest verify`), the backup metrics gone from the
//! Pushgateway, and WAL archiving that cannot write to the repository.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::stack::backup::{self, Kind};
use crate::stack::postgres::{Postgres, STANZA};
use crate::stack::{Component, Stack};
use crate::util::curl;
use crate::util::wait_for;

/// The Pushgateway groups (`store` values) of job=octollm-backup.
const BACKUP_STORES: [&str; 2] = ["postgres", "redis"];

/// `application_name` of the client switching WAL segments.
const WAL_SWITCHER: &str = "alert-sim-wal-switch";

/// A repository file as it was before the damage.
pub struct DamagedFile {
    path: PathBuf,
    original: Vec<u8>,
}

/// Inverts every byte of a file of the newest backup, then runs the real
/// verify, which pushes `octollm_backup_verify_success 0`.
pub fn damage_backup(stack: &Stack) -> Result<DamagedFile> {
    let path = newest_backup_file(&Postgres::new(stack).backup_repo())?;
    let original = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let damaged: Vec<u8> = original.iter().map(|b| !b).collect();
    std::fs::write(&path, damaged).with_context(|| format!("damaging {}", path.display()))?;
    let file = DamagedFile { path, original };
    if backup::verify(stack).is_ok() {
        repair(&file)?;
        bail!(
            "pgbackrest verify found nothing wrong with {} inverted",
            file.path.display()
        );
    }
    Ok(file)
}

/// Puts the file back and verifies again: the repository must be intact.
pub fn repair_and_verify(stack: &Stack, file: &DamagedFile) -> Result<()> {
    repair(file)?;
    backup::verify(stack)
}

fn repair(file: &DamagedFile) -> Result<()> {
    std::fs::write(&file.path, &file.original)
        .with_context(|| format!("restoring {}", file.path.display()))
}

/// `PG_VERSION` of the newest full backup (differentials hold only the
/// files that changed): small, and every restore needs it.
fn newest_backup_file(repo: &Path) -> Result<PathBuf> {
    let backups = repo.join("backup").join(STANZA);
    let newest_full = std::fs::read_dir(&backups)
        .with_context(|| format!("listing {}", backups.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.ends_with('F') && !name.contains('_'))
        .max()
        .with_context(|| format!("no full backup in {}", backups.display()))?;
    let pg_data = backups.join(newest_full).join("pg_data");
    std::fs::read_dir(&pg_data)
        .with_context(|| format!("listing {}", pg_data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("PG_VERSION"))
        })
        .with_context(|| format!("no PG_VERSION file in {}", pg_data.display()))
}

/// Deletes every backup group from the Pushgateway (what a wiped or
/// restarted Pushgateway without persistence looks like).
pub fn delete_backup_status(stack: &Stack) -> Result<()> {
    for store in BACKUP_STORES {
        let url = format!(
            "{}/metrics/job/octollm-backup/store/{store}",
            stack.url(Component::Pushgateway)
        );
        curl(&["-X", "DELETE", &url])?;
    }
    Ok(())
}

/// What the runbook says to do: take a backup, which reports again.
pub fn report_backup_status(stack: &Stack) -> Result<()> {
    backup::back_up(stack, Kind::Incr)
}

/// WAL archiving broken: the repository's archive directory loses every
/// permission (archive-push runs as postgres), and a client switches WAL
/// segments every 2 s so the archiver keeps trying and failing.
pub struct BrokenArchiving {
    dir: PathBuf,
    mode: u32,
    switcher: Child,
}

pub fn break_archiving(stack: &Stack) -> Result<BrokenArchiving> {
    let dir = Postgres::new(stack)
        .backup_repo()
        .join("archive")
        .join(STANZA);
    let mode = std::fs::metadata(&dir)
        .with_context(|| format!("no archive directory {}", dir.display()))?
        .permissions()
        .mode();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000))?;
    let switcher = Postgres::new(stack)
        .client("psql")
        .env("PGAPPNAME", WAL_SWITCHER)
        .args([
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "DO $$ BEGIN LOOP PERFORM pg_switch_wal(); COMMIT; PERFORM pg_sleep(2); END LOOP; END $$;",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let switcher = match switcher {
        Ok(child) => child,
        Err(error) => {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
            return Err(error).context("starting psql to switch WAL segments");
        }
    };
    Ok(BrokenArchiving {
        dir,
        mode,
        switcher,
    })
}

/// Restores the directory's permissions, and proves archiving works again:
/// after a last WAL switch (which wakes the archiver), pg_stat_archiver
/// must show a success newer than its last failure.
pub fn restore_archiving(stack: &Stack, mut broken: BrokenArchiving) -> Result<()> {
    let pg = Postgres::new(stack);
    // The backend loops on its own: end it, then its client.
    pg.psql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{WAL_SWITCHER}'"
    ))?;
    broken.switcher.kill()?;
    broken.switcher.wait()?;
    std::fs::set_permissions(&broken.dir, std::fs::Permissions::from_mode(broken.mode))?;
    pg.psql("SELECT pg_switch_wal()")?;
    let caught_up = || {
        pg.psql(
            "SELECT last_archived_time > coalesce(last_failed_time, '-infinity') FROM pg_stat_archiver",
        )
        .is_ok_and(|out| out.trim() == "t")
    };
    wait_for(
        "WAL archiving to succeed again",
        Duration::from_secs(60),
        caught_up,
    )
}
