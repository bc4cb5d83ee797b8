//! Every third-party action is pinned to a full commit SHA with its tag in a
//! comment (`uses: owner/repo@<40 hex> # v1.2.3`), and that (action, tag,
//! SHA) is a row of the committed table `.github/action-pins.tsv`, whose
//! SHAs were read from each action's repository (`git rev-parse
//! <tag>^{commit}`). An offline linter cannot tell a made-up SHA from a real
//! one; the table can, as long as nobody adds a row without looking.
//!
//! Also: every `zizmor: ignore[…]` comment carries a written reason.

use anyhow::{Result, bail};

use super::model::{Finding, Workflow};

/// A row of the pin table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// `owner/repo`.
    pub action: String,
    pub tag: String,
    pub sha: String,
}

/// Reads the table: `action<TAB>tag<TAB>sha` per line, `#` comments.
pub fn read_table(text: &str) -> Result<Vec<Pin>> {
    let mut pins = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [action, tag, sha] = fields[..] else {
            bail!(
                "action pin table line {}: want `action tag sha`, got {line:?}",
                number + 1
            );
        };
        if !is_full_sha(sha) || action.split('/').count() != 2 {
            bail!(
                "action pin table line {}: {line:?} is not `owner/repo tag <40 hex>`",
                number + 1
            );
        }
        pins.push(Pin {
            action: action.to_owned(),
            tag: tag.to_owned(),
            sha: sha.to_owned(),
        });
    }
    Ok(pins)
}

fn is_full_sha(text: &str) -> bool {
    text.len() == 40
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The pin findings of one workflow.
pub fn check(workflow: &Workflow, table: &[Pin]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (line_number, line) in workflow.uses_lines() {
        let place = format!("{}:{line_number}", workflow.name);
        let mut finding = |message: String| {
            findings.push(Finding {
                check: "pins",
                place: place.clone(),
                message,
            });
        };
        let after_key = line.split_once("uses:").map_or("", |(_, rest)| rest);
        let (value, comment) = match after_key.split_once(" #") {
            Some((value, comment)) => (value, Some(comment.trim())),
            None => (after_key, None),
        };
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        if value.starts_with("./") {
            continue; // an action of this repository
        }
        if let Some(image) = value.strip_prefix("docker://") {
            if !image.contains("@sha256:") {
                finding(format!("{value}: a Docker action must be pinned by digest"));
            }
            continue;
        }
        let Some((path, reference)) = value.split_once('@') else {
            finding(format!("{value}: no @ref at all"));
            continue;
        };
        let action = path.split('/').take(2).collect::<Vec<_>>().join("/");
        if !is_full_sha(reference) {
            finding(format!(
                "{value}: pinned to `{reference}`, not a full commit SHA (write `{path}@<sha> # {reference}`)"
            ));
            continue;
        }
        let Some(tag) = comment.and_then(|c| c.split_whitespace().next()) else {
            finding(format!(
                "{value}: no `# <tag>` comment naming the pinned version"
            ));
            continue;
        };
        match table
            .iter()
            .find(|p| p.action == action && p.sha == reference)
        {
            Some(pin) if pin.tag == tag => {}
            Some(pin) => finding(format!(
                "{value}: the comment says {tag}, but the pin table has this SHA as {}",
                pin.tag
            )),
            None => finding(format!(
                "{action}@{reference} # {tag}: not in .github/action-pins.tsv; \
                 read the tag's commit from the action's repository \
                 (git rev-parse {tag}^{{commit}}) and add the row"
            )),
        }
    }
    findings.extend(unexplained_ignores(workflow));
    findings
}

/// `zizmor: ignore[…]` comments without a reason after them.
fn unexplained_ignores(workflow: &Workflow) -> Vec<Finding> {
    workflow
        .text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let at = line.find("zizmor: ignore[")?;
            let rest = &line[at..];
            let reason = rest.find(']').map_or("", |end| &rest[end + 1..]);
            let reason = reason.trim().trim_start_matches(['-', ':', '—']).trim();
            (reason.split_whitespace().count() < 3).then(|| Finding {
                check: "zizmor-ignore",
                place: format!("{}:{}", workflow.name, i + 1),
                message: "a zizmor ignore without a written reason after it \
                          (`# zizmor: ignore[audit] <why this is safe>`)"
                    .to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SHA: &str = "3d3c42e5aac5ba805825da76410c181273ba90b1";

    fn table() -> Vec<Pin> {
        read_table(&format!("# comment\nactions/checkout\tv7.0.1\t{SHA}\n")).unwrap()
    }

    fn findings(uses: &str) -> Vec<String> {
        let text = format!("jobs:\n  a:\n    steps:\n      - uses: {uses}\n");
        let wf = Workflow::parse(Path::new("w.yml"), text).unwrap();
        check(&wf, &table())
            .into_iter()
            .map(|f| f.message)
            .collect()
    }

    #[test]
    fn a_pin_in_the_table_passes() {
        assert!(findings(&format!("actions/checkout@{SHA} # v7.0.1")).is_empty());
        assert!(findings("./.github/actions/local").is_empty());
    }

    #[test]
    fn tags_made_up_shas_and_wrong_comments_fail() {
        let tag = findings("actions/checkout@v4");
        assert!(tag[0].contains("not a full commit SHA"), "{tag:?}");
        let made_up =
            findings("actions/checkout@0123456789abcdef0123456789abcdef01234567 # v7.0.1");
        assert!(
            made_up[0].contains("not in .github/action-pins.tsv"),
            "{made_up:?}"
        );
        let wrong = findings(&format!("actions/checkout@{SHA} # v6.0.0"));
        assert!(
            wrong[0].contains("the pin table has this SHA as v7.0.1"),
            "{wrong:?}"
        );
        let bare = findings(&format!("actions/checkout@{SHA}"));
        assert!(bare[0].contains("no `# <tag>` comment"), "{bare:?}");
        let docker = findings("docker://alpine:3");
        assert!(docker[0].contains("by digest"), "{docker:?}");
    }

    #[test]
    fn the_table_refuses_short_shas() {
        assert!(read_table("actions/checkout v4 3d3c42e").is_err());
        assert!(read_table("checkout v4 3d3c42e5aac5ba805825da76410c181273ba90b1").is_err());
    }

    #[test]
    fn ignores_need_a_reason() {
        let text = "a: 1 # zizmor: ignore[template-injection]\n\
                    b: 2 # zizmor: ignore[artipacked] the job pushes with this token on purpose\n";
        let wf = Workflow::parse(Path::new("w.yml"), text.to_owned()).unwrap();
        let found = unexplained_ignores(&wf);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].place, "w.yml:1");
    }
}
