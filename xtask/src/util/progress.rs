//! Progress on stderr: a spinner for a long step when stderr is a terminal,
//! plain lines otherwise (CI logs, pipes).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The spinner of the step in progress, if any; lines print above it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Prints one progress line (`[xtask] …`) on stderr.
pub fn line(text: &str) {
    let active = ACTIVE.lock().ok().and_then(|guard| guard.clone());
    match active {
        Some(bar) => bar.println(format!("[xtask] {text}")),
        None => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("[xtask] {text}");
            }
        }
    }
}

/// A long step: a spinner with the elapsed time on a terminal, a start line
/// otherwise. Finish it with [`Step::done`]; dropped unfinished, it clears.
pub struct Step {
    what: String,
    started: Instant,
    bar: Option<ProgressBar>,
}

/// Starts a long step.
pub fn step(what: impl Into<String>) -> Step {
    let what = what.into();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("[xtask] {spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(what.clone());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    match &bar {
        Some(bar) => {
            if let Ok(mut active) = ACTIVE.lock() {
                *active = Some(bar.clone());
            }
        }
        None => line(&format!("{what} …")),
    }
    Step {
        what,
        started: Instant::now(),
        bar,
    }
}

impl Step {
    /// Ends the step with a line saying how long it took.
    pub fn done(mut self) {
        self.clear();
        line(&format!(
            "{} done in {:.1?}",
            self.what,
            self.started.elapsed()
        ));
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            if let Ok(mut active) = ACTIVE.lock() {
                *active = None;
            }
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        self.clear();
    }
}
