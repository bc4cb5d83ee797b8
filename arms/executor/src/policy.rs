//! What may run: allow-listed programs, resolved to absolute paths at start,
//! with arguments that stay inside the working directory.
//!
//! Commands run as argv, never through a shell, so `;`, `$(…)`, backticks
//! and globs are inert text. What remains dangerous is what the programs
//! themselves do with their arguments: read files (so no absolute paths,
//! no `..`, no links out of the working directory) and, for `date`, set the
//! clock (so `date` may only format and display).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The default allow-list: programs that only read, print or wait.
pub const DEFAULT_COMMANDS: &str = "echo,cat,ls,wc,head,tail,date,uname,sleep";

/// Directories searched for allow-listed programs, and the child's `PATH`.
pub const SEARCH_PATH: &str = "/usr/bin:/bin";

/// `date` flags that only change how a date is shown.
const DATE_DISPLAY_FLAGS: &[&str] = &[
    "-u",
    "--utc",
    "--universal",
    "-R",
    "--rfc-email",
    "-I",
    "-Idate",
    "-Ihours",
    "-Iminutes",
    "-Iseconds",
    "-Ins",
    "--iso-8601",
];

/// Why a command may not run; shown to the caller (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("the command must be a bare program name, not a path")]
    PathAsCommand,
    #[error("command {command:?} is not on the allow-list ({allowed})")]
    NotAllowed { command: String, allowed: String },
    #[error("argument {index} contains a NUL byte")]
    NulByte { index: usize },
    #[error(
        "argument {index} is an absolute path; paths must be relative to the working directory"
    )]
    AbsolutePath { index: usize },
    #[error("argument {index} climbs out of the working directory (`..`)")]
    ParentDirectory { index: usize },
    #[error("argument {index} names a link that leads outside the working directory")]
    EscapingLink { index: usize },
    #[error("{command} may not use argument {index} ({why})")]
    Argument {
        command: &'static str,
        index: usize,
        why: &'static str,
    },
}

/// The allow-list, each name resolved to the program that will run.
#[derive(Debug, Clone)]
pub struct CommandPolicy {
    programs: BTreeMap<String, PathBuf>,
    workdir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("allow-listed command {0:?} is not a bare program name")]
    BadName(String),
    #[error("allow-listed command {name:?} is not installed in {SEARCH_PATH}")]
    Missing { name: String },
    #[error("the allow-list is empty")]
    Empty,
    #[error("working directory {path}: {source}")]
    Workdir {
        path: String,
        source: std::io::Error,
    },
}

impl CommandPolicy {
    /// Resolves each comma-separated name in [`SEARCH_PATH`] and creates
    /// (and canonicalises) the working directory.
    pub fn new(allowed: &str, workdir: &Path) -> Result<Self, PolicyError> {
        let mut programs = BTreeMap::new();
        for name in allowed.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !is_bare_name(name) {
                return Err(PolicyError::BadName(name.to_owned()));
            }
            let found = SEARCH_PATH
                .split(':')
                .map(|dir| Path::new(dir).join(name))
                .find(|path| path.is_file())
                .ok_or_else(|| PolicyError::Missing {
                    name: name.to_owned(),
                })?;
            programs.insert(name.to_owned(), found);
        }
        if programs.is_empty() {
            return Err(PolicyError::Empty);
        }
        let workdir_error = |source| PolicyError::Workdir {
            path: workdir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(workdir).map_err(workdir_error)?;
        let workdir = workdir.canonicalize().map_err(workdir_error)?;
        Ok(Self { programs, workdir })
    }

    /// The allow-listed names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.programs.keys().map(String::as_str)
    }

    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// Whether `command` is on the allow-list (its metric label is its name).
    pub fn allows(&self, command: &str) -> bool {
        self.programs.contains_key(command)
    }

    /// The program to run for `command` with `args`, or why not.
    pub fn check(&self, command: &str, args: &[String]) -> Result<&Path, Denial> {
        if !is_bare_name(command) {
            return Err(Denial::PathAsCommand);
        }
        let program = self
            .programs
            .get(command)
            .ok_or_else(|| Denial::NotAllowed {
                command: command.to_owned(),
                allowed: self.names().collect::<Vec<_>>().join(", "),
            })?;
        for (i, arg) in args.iter().enumerate() {
            self.check_path_like(i + 1, arg)?;
        }
        match command {
            "date" => check_date(args)?,
            "wc" => check_wc(args)?,
            _ => {}
        }
        Ok(program)
    }

    /// No NUL, no absolute path (also after `=`), no `..`, no link out.
    fn check_path_like(&self, index: usize, arg: &str) -> Result<(), Denial> {
        if arg.contains('\0') {
            return Err(Denial::NulByte { index });
        }
        for piece in arg.split('=') {
            if piece.starts_with('/') {
                return Err(Denial::AbsolutePath { index });
            }
            if Path::new(piece)
                .components()
                .any(|c| c == Component::ParentDir)
            {
                return Err(Denial::ParentDirectory { index });
            }
        }
        if !arg.starts_with('-') && !arg.is_empty() {
            let path = self.workdir.join(arg);
            if path.symlink_metadata().is_ok() {
                let inside = path
                    .canonicalize()
                    .is_ok_and(|real| real.starts_with(&self.workdir));
                if !inside {
                    return Err(Denial::EscapingLink { index });
                }
            }
        }
        Ok(())
    }
}

fn is_bare_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != ".."
}

/// `wc` takes only the counting options, spelt out. GNU getopt accepts any
/// unambiguous prefix of a long option, so refusing `--files0-from` by name
/// let `--files0=list`, `--fi=list` or `--f=list` read file names from a
/// file; and after `--` an operand starting with `-` would skip the link
/// check. Hence an allow-list, not a deny-list.
fn check_wc(args: &[String]) -> Result<(), Denial> {
    const LONG: [&str; 5] = [
        "--bytes",
        "--chars",
        "--lines",
        "--words",
        "--max-line-length",
    ];
    for (i, arg) in args.iter().enumerate() {
        let allowed = if let Some(long) = arg.strip_prefix("--") {
            !long.is_empty() && LONG.contains(&arg.as_str())
        } else if let Some(short) = arg.strip_prefix('-') {
            // `-` alone is standard input, which the executor leaves empty.
            short
                .chars()
                .all(|c| matches!(c, 'c' | 'm' | 'l' | 'w' | 'L'))
        } else {
            true
        };
        if !allowed {
            return Err(Denial::Argument {
                command: "wc",
                index: i + 1,
                why: "only the counting options -c -m -l -w -L (or their long names, spelt out) are allowed",
            });
        }
    }
    Ok(())
}

/// `date` may format (`+FORMAT`), pick a zone style, or display a given
/// date (`-d`/`--date`); a bare operand or `-s` would set the clock.
fn check_date(args: &[String]) -> Result<(), Denial> {
    let deny = |index: usize| Denial::Argument {
        command: "date",
        index,
        why: "date may only format or display dates, never set the clock or read files",
    };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "-d" || arg == "--date" {
            if i + 1 >= args.len() {
                return Err(deny(i + 1));
            }
            i += 2;
            continue;
        }
        let display = arg.starts_with('+')
            || DATE_DISPLAY_FLAGS.contains(&arg)
            || arg.starts_with("--iso-8601=")
            || arg.starts_with("--rfc-3339=")
            || arg.starts_with("--date=")
            || (arg.starts_with("-d") && arg.len() > 2);
        if !display {
            return Err(deny(i + 1));
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn policy() -> (tempfile::TempDir, CommandPolicy) {
        let dir = tempfile::tempdir().unwrap();
        let policy = CommandPolicy::new(DEFAULT_COMMANDS, dir.path()).unwrap();
        (dir, policy)
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn programs_resolve_to_absolute_paths() {
        let (_dir, policy) = policy();
        let echo = policy.check("echo", &args(&["hi"])).unwrap();
        assert!(echo.is_absolute() && echo.ends_with("echo"));
        assert!(matches!(
            CommandPolicy::new("echo,no-such-program-xyz", Path::new("/tmp")),
            Err(PolicyError::Missing { .. })
        ));
        assert!(matches!(
            CommandPolicy::new("/bin/sh", Path::new("/tmp")),
            Err(PolicyError::BadName(_))
        ));
    }

    #[test]
    fn names_outside_the_list_and_paths_are_denied() {
        let (_dir, policy) = policy();
        for command in ["rm", "sh", "bash", "echo; rm -rf /", "$(id)", "`id`"] {
            assert!(policy.check(command, &[]).is_err(), "{command}");
        }
        assert_eq!(policy.check("/bin/echo", &[]), Err(Denial::PathAsCommand));
        assert_eq!(policy.check("../echo", &[]), Err(Denial::PathAsCommand));
    }

    #[test]
    fn arguments_stay_inside_the_working_directory() {
        let (dir, policy) = policy();
        for (list, denial) in [
            (vec!["/etc/passwd"], Denial::AbsolutePath { index: 1 }),
            (
                vec!["ok", "../../etc/passwd"],
                Denial::ParentDirectory { index: 2 },
            ),
            (vec!["a/../../b"], Denial::ParentDirectory { index: 1 }),
            (
                vec!["--files0-from=/etc/x"],
                Denial::AbsolutePath { index: 1 },
            ),
            (vec!["x\0y"], Denial::NulByte { index: 1 }),
        ] {
            assert_eq!(policy.check("cat", &args(&list)), Err(denial), "{list:?}");
        }
        std::fs::write(dir.path().join("notes.txt"), "hi").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink("notes.txt", dir.path().join("in")).unwrap();
        assert!(policy.check("cat", &args(&["notes.txt", "in"])).is_ok());
        assert_eq!(
            policy.check("cat", &args(&["out"])),
            Err(Denial::EscapingLink { index: 1 })
        );
        // Shell syntax is only text to echo.
        assert!(
            policy
                .check("echo", &args(&["; rm -rf x", "$(id)", "`id`", "*"]))
                .is_ok()
        );
    }

    #[test]
    fn date_cannot_set_the_clock() {
        let (_dir, policy) = policy();
        for ok in [
            vec![],
            vec!["+%Y-%m-%d"],
            vec!["-u", "-Iseconds"],
            vec!["-d", "yesterday", "+%s"],
            vec!["--date=2020-01-01"],
        ] {
            assert!(policy.check("date", &args(&ok)).is_ok(), "{ok:?}");
        }
        for bad in [
            vec!["-s", "2020-01-01"],
            vec!["--set=2020-01-01"],
            vec!["010100002030"],
            vec!["-us"],
            vec!["-f", "dates.txt"],
            vec!["-d"],
        ] {
            assert!(policy.check("date", &args(&bad)).is_err(), "{bad:?}");
        }
        for bad in [
            vec!["--files0-from=list"],
            vec!["--files0=list"],
            vec!["--fi=list"],
            vec!["--f=list"],
            vec!["--lin"],
            vec!["--", "-notes"],
            vec!["-l", "--total=only"],
            vec!["-lx"],
        ] {
            assert!(policy.check("wc", &args(&bad)).is_err(), "{bad:?}");
        }
        for ok in [
            vec!["-l", "notes.txt"],
            vec!["-lwc", "notes.txt"],
            vec!["--lines", "--words", "notes.txt"],
            vec!["-"],
            vec!["notes.txt"],
        ] {
            assert!(policy.check("wc", &args(&ok)).is_ok(), "{ok:?}");
        }
    }
}
