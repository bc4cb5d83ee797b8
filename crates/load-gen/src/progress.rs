//! Live progress on stderr: one updating line on a terminal, a plain log
//! line every five seconds otherwise.

use std::io::{IsTerminal, Write};

pub struct Progress {
    enabled: bool,
    tty: bool,
    drawn: bool,
}

/// Seconds between log lines when stderr is not a terminal.
const LOG_EVERY_S: u64 = 5;

impl Progress {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            tty: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Shows `line`, `sec` seconds into the run.
    pub fn update(&mut self, line: &str, sec: u64) {
        if !self.enabled {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
            self.drawn = true;
        } else if sec.is_multiple_of(LOG_EVERY_S) {
            let _ = writeln!(err, "{line}");
        }
    }

    pub fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr().lock());
            self.drawn = false;
        }
    }
}
