//! The write ledger: `octollm-load ledger` runs beside a drill and records
//! every task the orchestrator acknowledged; after the restore the ledger is
//! compared with the database.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::stack::launch::release_dir;
use crate::stack::{Component, Stack};

/// One acknowledged task: its id and when it was sent and acknowledged
/// (unix microseconds, this machine's clock, which the database shares).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub id: String,
    pub sent_us: i64,
    pub acked_us: i64,
}

/// A running ledger workload.
pub struct Ledger {
    child: Child,
    path: PathBuf,
}

impl Ledger {
    pub fn start(stack: &Stack, path: &Path, rate: u32) -> Result<Self> {
        let _ = fs::remove_file(path);
        let child = Command::new(release_dir().join("octollm-load"))
            .arg("ledger")
            .args(["--url", &stack.url(Component::Orchestrator)])
            .arg("--token-file")
            .arg(stack.token_path())
            .arg("--out")
            .arg(path)
            .args(["--rate", &rate.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the ledger workload (octollm-load)")?;
        Ok(Self {
            child,
            path: path.to_owned(),
        })
    }

    /// Stops the workload (it lets submissions in flight finish) and reads
    /// what it recorded.
    pub fn stop(mut self) -> Result<Vec<Ack>> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-s", "TERM", &pid]).status()?;
        let started = std::time::Instant::now();
        while self.child.try_wait()?.is_none() {
            if started.elapsed() > Duration::from_secs(15) {
                let _ = self.child.kill();
                bail!("the ledger workload did not stop within 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        read(&self.path)
    }
}

/// A drill that fails midway must not leave its workload running.
impl Drop for Ledger {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn read(path: &Path) -> Result<Vec<Ack>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut fields = line.split(',');
            let (Some(id), Some(sent), Some(acked)) = (fields.next(), fields.next(), fields.next())
            else {
                bail!("ledger line {line:?} is not id,sent,acked");
            };
            Ok(Ack {
                id: id.to_owned(),
                sent_us: sent.parse()?,
                acked_us: acked.parse()?,
            })
        })
        .collect()
}

/// What a comparison of the ledger with the database found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// Acknowledged writes the restore had to keep.
    pub expected: usize,
    /// Of those, missing from the database: data loss.
    pub lost: usize,
    /// Writes acknowledged after a point-in-time target that are present anyway.
    pub unexpected: usize,
    /// Sent before and acknowledged after the target: either outcome is correct.
    pub ambiguous: usize,
    /// The newest acknowledgement that survived (unix µs).
    pub last_surviving_ack_us: Option<i64>,
    /// The oldest acknowledgement that was lost (unix µs).
    pub oldest_lost_ack_us: Option<i64>,
    /// A few lost ids, for the report.
    pub lost_examples: Vec<String>,
}

/// Compares the ledger with the ids present after a restore. With a target
/// (point-in-time restore), writes acknowledged before it must be present
/// and writes sent after it must be absent; without one, every write must be.
pub fn compare(ledger: &[Ack], present: &HashSet<String>, target_us: Option<i64>) -> Verdict {
    let mut verdict = Verdict::default();
    for ack in ledger {
        let must_exist = match target_us {
            None => true,
            Some(t) if ack.acked_us < t => true,
            Some(t) if ack.sent_us > t => false,
            Some(_) => {
                verdict.ambiguous += 1;
                continue;
            }
        };
        let exists = present.contains(&ack.id);
        if must_exist {
            verdict.expected += 1;
            if !exists {
                verdict.lost += 1;
                let oldest = verdict.oldest_lost_ack_us.get_or_insert(ack.acked_us);
                *oldest = (*oldest).min(ack.acked_us);
                if verdict.lost_examples.len() < 5 {
                    verdict.lost_examples.push(ack.id.clone());
                }
            }
        } else if exists {
            verdict.unexpected += 1;
        }
        if exists {
            verdict.last_surviving_ack_us = verdict.last_surviving_ack_us.max(Some(ack.acked_us));
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: &str, sent_us: i64, acked_us: i64) -> Ack {
        Ack {
            id: id.into(),
            sent_us,
            acked_us,
        }
    }

    fn present(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn latest_restore_counts_every_missing_write_as_lost() {
        let ledger = [ack("a", 1, 2), ack("b", 3, 4), ack("c", 5, 6)];
        let verdict = compare(&ledger, &present(&["a", "b", "c"]), None);
        assert_eq!((verdict.expected, verdict.lost), (3, 0));
        assert_eq!(verdict.last_surviving_ack_us, Some(6));

        let verdict = compare(&ledger, &present(&["a", "b"]), None);
        assert_eq!(verdict.lost, 1);
        assert_eq!(verdict.lost_examples, ["c"]);
        assert_eq!(verdict.oldest_lost_ack_us, Some(6));
        assert_eq!(verdict.last_surviving_ack_us, Some(4));
    }

    #[test]
    fn point_in_time_restore_keeps_before_drops_after_and_skips_the_straddler() {
        // Target 10: a acked before it, b straddles it, c sent after it.
        let ledger = [ack("a", 1, 5), ack("b", 8, 12), ack("c", 11, 13)];
        let good = compare(&ledger, &present(&["a"]), Some(10));
        assert_eq!(
            (good.expected, good.lost, good.unexpected, good.ambiguous),
            (1, 0, 0, 1)
        );

        // A restore to the wrong (too early) point loses a...
        let too_early = compare(&ledger, &present(&[]), Some(10));
        assert_eq!(too_early.lost, 1);
        // ...and one past the target keeps c, which must not exist.
        let too_late = compare(&ledger, &present(&["a", "b", "c"]), Some(10));
        assert_eq!((too_late.lost, too_late.unexpected), (0, 1));
    }
}
