//! The top layer: one module per `cargo xtask` command. Commands build on
//! `stack`, `prom` and `util`; nothing below imports a command
//! (ARCHITECTURE.md, "Layers"). `ci` composes the other commands.

pub mod alert_sim;
pub mod backup;
pub mod ci;
pub mod deploy;
pub mod detection_eval;
pub mod doctor;
pub mod down;
pub mod dr_test;
pub mod images;
pub mod k8s;
pub mod load_test;
pub mod logs;
pub mod monitoring;
pub mod prerequisites;
pub mod restart;
pub mod runbooks;
pub mod status;
pub mod workflows;

use std::path::PathBuf;

use anyhow::Result;

use crate::stack::Stack;

/// Where a deployed stack is, for the commands that operate one without
/// harming it. `OCTOLLM_STATE_DIR` chooses it too; commands that damage a
/// stack on purpose (alert-sim, dr-test) take theirs only from an explicit
/// `--state-dir` ([`TargetStackArgs`]).
#[derive(clap::Args, Clone)]
pub struct StackArgs {
    /// The stack's state directory.
    #[arg(long, env = "OCTOLLM_STATE_DIR", default_value = ".octollm")]
    pub state_dir: PathBuf,
}

impl StackArgs {
    /// The stack a previous deploy recorded there.
    pub fn open(&self) -> Result<Stack> {
        Stack::open(&self.state_dir)
    }
}

/// For commands that damage a stack on purpose: a live stack only when
/// named explicitly; without it they deploy a throwaway one.
#[derive(clap::Args, Clone)]
pub struct TargetStackArgs {
    /// Run against the live stack deployed in DIR instead of a throwaway
    /// one. Never taken from OCTOLLM_STATE_DIR: this command loads or
    /// damages the stack it runs on.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// `--json`: machine-readable output on stdout instead of the table.
#[derive(clap::Args, Clone, Copy)]
pub struct OutputArgs {
    /// Print JSON on stdout (progress stays on stderr).
    #[arg(long)]
    pub json: bool,
}

/// A row of a static table (a scenario) that the command line can name.
pub trait Named: Sized + Sync + 'static {
    fn name(&self) -> &'static str;
    /// One line for `--help`.
    fn help(&self) -> &'static str;
    /// Every row, wrapped, in table order (a `OnceLock` in the table's module).
    fn picks() -> &'static [Pick<Self>];
}

/// Makes the rows of a static table (`$table`, of a type with `name` and
/// `summary` fields) nameable on the command line as [`Pick`]s.
#[macro_export]
macro_rules! pickable {
    ($row:ty, $table:expr) => {
        impl $crate::commands::Named for $row {
            fn name(&self) -> &'static str {
                self.name
            }

            fn help(&self) -> &'static str {
                self.summary
            }

            fn picks() -> &'static [$crate::commands::Pick<Self>] {
                static PICKS: std::sync::OnceLock<Vec<$crate::commands::Pick<$row>>> =
                    std::sync::OnceLock::new();
                PICKS.get_or_init(|| $table.iter().map($crate::commands::Pick).collect())
            }
        }
    };
}

/// A table row as a clap value: `--help` lists every name with its help,
/// and any other name is a usage error (exit code 2).
pub struct Pick<T: 'static>(pub &'static T);

impl<T> Clone for Pick<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Pick<T> {}

impl<T: Named> clap::ValueEnum for Pick<T> {
    fn value_variants<'a>() -> &'a [Self] {
        T::picks()
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.name()).help(self.0.help()))
    }
}
