//! How a `run_command` plan step becomes the executor's `{command, args}`.
//!
//! The step's `action` is read as a command line without a shell: its first
//! word is the program, the remaining whitespace-separated words its
//! arguments, passed as argv. Only programs on the orchestrator's allow-list
//! (`OCTOLLM_EXECUTOR_COMMANDS`) are granted, and the capability token names
//! exactly that one program. Anything a shell would interpret (`;`, `|`, `$`,
//! redirections, quotes, globs, …), absolute paths and `..` are refused
//! rather than escaped: a plan that needs them is not run.

/// Most arguments one command may take.
const MAX_ARGS: usize = 32;
/// Longest argument.
const MAX_ARG_CHARS: usize = 256;
const SHELL_CHARACTERS: &[char] = &[
    ';', '&', '|', '$', '`', '<', '>', '(', ')', '{', '}', '[', ']', '*', '?', '!', '~', '\'', '"',
    '\\', '#', '=',
];

/// The program and arguments `action` asks for, or why it is refused.
pub fn derive(action: &str, allowed: &[String]) -> Result<(String, Vec<String>), String> {
    let mut words = action.split_whitespace();
    let Some(command) = words.next() else {
        return Err("run_command step has an empty action".into());
    };
    if !allowed.iter().any(|a| a == command) {
        return Err(format!(
            "command {:?} is not allowed (allowed: {})",
            truncate(command),
            allowed.join(", ")
        ));
    }
    let args: Vec<String> = words.map(str::to_owned).collect();
    if args.len() > MAX_ARGS {
        return Err(format!(
            "command {command:?} has more than {MAX_ARGS} arguments"
        ));
    }
    for arg in &args {
        if arg.chars().count() > MAX_ARG_CHARS {
            return Err(format!(
                "an argument of {command:?} is longer than {MAX_ARG_CHARS} characters"
            ));
        }
        if arg
            .chars()
            .any(|c| c.is_control() || SHELL_CHARACTERS.contains(&c))
        {
            return Err(format!(
                "argument {:?} of {command:?} contains shell syntax, which is not allowed",
                truncate(arg)
            ));
        }
        if arg.starts_with('/') || arg.split('/').any(|part| part == "..") {
            return Err(format!(
                "argument {:?} of {command:?} leaves the working directory, which is not allowed",
                truncate(arg)
            ));
        }
    }
    Ok((command.to_owned(), args))
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["echo".into(), "ls".into()]
    }

    #[test]
    fn splits_an_allowed_command_into_argv() {
        assert_eq!(
            derive("  echo hello   world ", &allowed()),
            Ok(("echo".into(), vec!["hello".into(), "world".into()]))
        );
        assert_eq!(derive("ls", &allowed()), Ok(("ls".into(), vec![])));
        assert_eq!(
            derive("ls -la src/x", &allowed()),
            Ok(("ls".into(), vec!["-la".into(), "src/x".into()]))
        );
    }

    #[test]
    fn refuses_what_is_not_granted_or_needs_a_shell() {
        for (action, expected) in [
            ("", "empty action"),
            ("rm -rf x", "\"rm\" is not allowed"),
            ("/bin/echo hi", "is not allowed"),
            ("echo hi; rm -rf x", "shell syntax"),
            ("echo $(id)", "shell syntax"),
            ("echo `id`", "shell syntax"),
            ("echo hi > f", "shell syntax"),
            ("echo 'quoted'", "shell syntax"),
            ("ls /etc", "leaves the working directory"),
            ("ls ../..", "leaves the working directory"),
            ("echo a\u{7}b", "shell syntax"),
        ] {
            let error = derive(action, &allowed()).unwrap_err();
            assert!(error.contains(expected), "{action:?}: {error}");
        }
        let many = format!("echo {}", vec!["a"; 33].join(" "));
        assert!(
            derive(&many, &allowed())
                .unwrap_err()
                .contains("more than 32")
        );
        let long = format!("echo {}", "a".repeat(257));
        assert!(
            derive(&long, &allowed())
                .unwrap_err()
                .contains("longer than")
        );
    }
}
