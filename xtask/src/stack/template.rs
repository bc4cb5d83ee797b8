//! Renders the config templates under `deploy/`: `${NAME}` is replaced by
//! the value of NAME; a name without a value is an error, never left in.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

pub type Vars = BTreeMap<&'static str, String>;

pub fn render(text: &str, vars: &Vars) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            bail!("unterminated `${{` in template");
        };
        let name = &after[..end];
        let value = vars
            .get(name)
            .with_context(|| format!("template variable ${{{name}}} has no value"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub fn render_file(template: &Path, vars: &Vars) -> Result<String> {
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("reading template {}", template.display()))?;
    render(&text, vars).with_context(|| format!("rendering {}", template.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_and_refuses_unknown_names() {
        let vars = Vars::from([("PORT", "5432".to_owned())]);
        assert_eq!(render("port = ${PORT};", &vars).unwrap(), "port = 5432;");
        assert!(render("${NOPE}", &vars).is_err());
        assert!(render("${PORT", &vars).is_err());
        assert_eq!(render("no vars", &vars).unwrap(), "no vars");
    }
}
