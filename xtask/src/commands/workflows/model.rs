//! The parts of a GitHub Actions workflow the checks read: its `run:`
//! steps with the environment each one sees, its `workflow_dispatch`
//! inputs and its `uses:` lines (read as text, for their comments).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_yaml_ng::{Mapping, Value};

/// One problem a check found, where it is and which check found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `actionlint`, `shellcheck`, `zizmor`, `pins`, `xtask-args`.
    pub check: &'static str,
    /// File, and job/step or line.
    pub place: String,
    pub message: String,
}

/// A workflow file, read and parsed.
pub struct Workflow {
    pub path: PathBuf,
    /// The file name (`ci.yml`), for messages.
    pub name: String,
    pub text: String,
    doc: Value,
}

/// A `workflow_dispatch` input: the values a run can give it.
#[derive(Debug, Default, Clone)]
pub struct Input {
    pub options: Vec<String>,
    pub default: Option<String>,
}

/// A `run:` step and what its script sees.
#[derive(Debug, Clone)]
pub struct RunStep {
    /// `ci.yml job fast, step "build xtask (user ci)"`.
    pub place: String,
    pub script: String,
    /// `shell:` of the step, else of the job's or the workflow's defaults.
    pub shell: Option<String>,
    /// `env:` of the workflow, the job and the step, the nearest winning.
    pub env: BTreeMap<String, String>,
    /// The job's `strategy.matrix` lists.
    pub matrix: BTreeMap<String, Vec<String>>,
}

/// Every `*.yml`/`*.yaml` in `dir`, sorted by name; none is an error (a
/// check over no files would pass without looking).
pub fn load(dir: &Path) -> Result<Vec<Workflow>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("no workflow files (*.yml) in {}", dir.display());
    }
    paths.into_iter().map(|p| Workflow::read(&p)).collect()
}

impl Workflow {
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(path, text)
    }

    pub fn parse(path: &Path, text: String) -> Result<Self> {
        let doc: Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not YAML", path.display()))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(Self {
            path: path.to_path_buf(),
            name,
            text,
            doc,
        })
    }

    /// `on.workflow_dispatch.inputs`.
    pub fn inputs(&self) -> BTreeMap<String, Input> {
        let inputs = self
            .doc
            .get("on")
            .and_then(|on| on.get("workflow_dispatch"))
            .and_then(|wd| wd.get("inputs"))
            .and_then(Value::as_mapping);
        inputs
            .into_iter()
            .flatten()
            .filter_map(|(name, spec)| {
                let input = Input {
                    options: spec
                        .get("options")
                        .and_then(Value::as_sequence)
                        .into_iter()
                        .flatten()
                        .filter_map(scalar)
                        .collect(),
                    default: spec.get("default").and_then(scalar),
                };
                Some((scalar(name)?, input))
            })
            .collect()
    }

    /// Every `run:` step of every job, in file order.
    pub fn run_steps(&self) -> Vec<RunStep> {
        let workflow_env = env_of(&self.doc);
        let workflow_shell = default_shell(&self.doc);
        let mut steps = Vec::new();
        for (job_id, job) in self.jobs() {
            let mut env = workflow_env.clone();
            env.extend(env_of(job));
            let shell = default_shell(job).or_else(|| workflow_shell.clone());
            let matrix = matrix_of(job);
            let job_steps = job.get("steps").and_then(Value::as_sequence);
            for (index, step) in job_steps.into_iter().flatten().enumerate() {
                let Some(script) = step.get("run").and_then(scalar) else {
                    continue;
                };
                let label = step
                    .get("name")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("#{}", index + 1), |n| format!("\"{n}\""));
                let mut step_env = env.clone();
                step_env.extend(env_of(step));
                steps.push(RunStep {
                    place: format!("{} job {job_id}, step {label}", self.name),
                    script,
                    shell: step
                        .get("shell")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .or_else(|| shell.clone()),
                    env: step_env,
                    matrix: matrix.clone(),
                });
            }
        }
        steps
    }

    fn jobs(&self) -> Vec<(String, &Value)> {
        self.doc
            .get("jobs")
            .and_then(Value::as_mapping)
            .into_iter()
            .flat_map(Mapping::iter)
            .filter_map(|(id, job)| Some((scalar(id)?, job)))
            .collect()
    }

    /// `(line number, text)` of every line whose key is `uses:`.
    pub fn uses_lines(&self) -> Vec<(usize, &str)> {
        self.text
            .lines()
            .enumerate()
            .filter(|(_, line)| {
                let key = line.trim_start().trim_start_matches("- ");
                key.starts_with("uses:")
            })
            .map(|(i, line)| (i + 1, line))
            .collect()
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn env_of(node: &Value) -> BTreeMap<String, String> {
    node.get("env")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((scalar(k)?, scalar(v)?)))
        .collect()
}

fn default_shell(node: &Value) -> Option<String> {
    node.get("defaults")
        .and_then(|d| d.get("run"))
        .and_then(|r| r.get("shell"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn matrix_of(job: &Value) -> BTreeMap<String, Vec<String>> {
    job.get("strategy")
        .and_then(|s| s.get("matrix"))
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let values: Vec<String> = v.as_sequence()?.iter().filter_map(scalar).collect();
            Some((scalar(k)?, values))
        })
        .collect()
}

/// The `${{ … }}` expressions in `text`, as (byte range, inner text).
pub fn expressions(text: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("${{").map(|i| i + from) {
        let Some(end) = text[start..].find("}}").map(|i| i + start + 2) else {
            break;
        };
        found.push((start..end, text[start + 3..end - 2].trim()));
        from = end;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
name: t
on:
  workflow_dispatch:
    inputs:
      profile:
        type: choice
        options: [smoke, soak]
        default: smoke
env:
  A: workflow
  B: workflow
defaults:
  run:
    shell: bash
jobs:
  one:
    env:
      B: job
    strategy:
      matrix:
        drill: [x, y]
    steps:
      - uses: actions/checkout@abc # v1
      - name: go
        env:
          C: ${{ inputs.profile }}
        run: echo "$A $B $C"
      - run: true
        shell: sh
"#;

    #[test]
    fn steps_see_the_nearest_env_and_shell() {
        let wf = Workflow::parse(Path::new("t.yml"), SAMPLE.to_owned()).unwrap();
        let steps = wf.run_steps();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].place, "t.yml job one, step \"go\"");
        assert_eq!(steps[0].env["A"], "workflow");
        assert_eq!(steps[0].env["B"], "job");
        assert_eq!(steps[0].env["C"], "${{ inputs.profile }}");
        assert_eq!(steps[0].shell.as_deref(), Some("bash"));
        assert_eq!(steps[0].matrix["drill"], ["x", "y"]);
        assert_eq!(steps[1].place, "t.yml job one, step #3");
        assert_eq!(steps[1].shell.as_deref(), Some("sh"));
        let inputs = wf.inputs();
        assert_eq!(inputs["profile"].options, ["smoke", "soak"]);
        assert_eq!(inputs["profile"].default.as_deref(), Some("smoke"));
        assert_eq!(wf.uses_lines().len(), 1);
    }

    #[test]
    fn expressions_are_found_with_their_ranges() {
        let text = "a ${{ inputs.x || 'y' }} b ${{matrix.m}}";
        let found = expressions(text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].1, "inputs.x || 'y'");
        assert_eq!(&text[found[1].0.clone()], "${{matrix.m}}");
    }
}
