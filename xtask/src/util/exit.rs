//! Exit codes: 0 ok, 1 a check failed (a drill, a threshold, a component
//! down), 2 usage (clap's own), 3 the tool itself failed.

use std::fmt;
use std::process::ExitCode;

/// Marks an error as "the check failed", as opposed to "the tool broke".
/// Wrap it with `anyhow::Error::new` or build one with [`check_failed`];
/// context added on top keeps the marker.
#[derive(Debug)]
pub struct CheckFailed(pub String);

impl fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckFailed {}

/// An error meaning the check ran and failed (exit code 1).
pub fn check_failed(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CheckFailed(message.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Ok = 0,
    CheckFailed = 1,
    Usage = 2,
    ToolFailed = 3,
}

impl ExitStatus {
    /// The status an error ends the command with.
    pub fn of(error: &anyhow::Error) -> Self {
        if error.chain().any(|cause| cause.is::<CheckFailed>()) {
            Self::CheckFailed
        } else {
            Self::ToolFailed
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status as u8)
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn a_failed_check_keeps_its_code_under_context() {
        let error = Err::<(), _>(check_failed("2 of 9 drills failed"))
            .context("dr-test")
            .err();
        assert_eq!(
            error.as_ref().map(ExitStatus::of),
            Some(ExitStatus::CheckFailed)
        );
    }

    #[test]
    fn any_other_error_is_the_tool_failing() {
        let error = anyhow::anyhow!("curl: connection refused");
        assert_eq!(ExitStatus::of(&error), ExitStatus::ToolFailed);
    }
}
