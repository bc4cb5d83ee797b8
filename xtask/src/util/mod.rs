//! The bottom layer: output, processes, secrets, HTTP through curl, and the
//! exit-code convention. It imports nothing else of xtask.

mod exit;
mod http;
mod process;
pub mod progress;
mod secrets;

use std::path::{Path, PathBuf};

pub use exit::{ExitStatus, check_failed};
pub use http::{curl, http_ok, http_status};
pub use process::{
    cpu_seconds_of_tree, is_alive, raise_open_files_limit, run_with_input, signal, wait_for,
};
pub use secrets::{random_hex, read_token, write_secret};

/// The workspace root: the parent of this crate's manifest directory.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Progress output for humans, on stderr; data goes to stdout ([`emit!`]).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        $crate::util::progress::line(&format!($($arg)*));
    }};
}

/// Data for scripts and people: one line on stdout.
#[macro_export]
macro_rules! emit {
    ($($arg:tt)*) => {{
        #[allow(clippy::print_stdout)]
        { println!($($arg)*); }
    }};
}
