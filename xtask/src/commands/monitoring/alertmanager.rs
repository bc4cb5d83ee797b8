//! Alertmanager: the template rendered with test values, `amtool
//! check-config`, routing (the cases of alertmanager.test.yml, and every
//! alert rule by its own labels) and inhibition (posted to throwaway
//! Alertmanagers).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_yaml_ng::Value;
use xshell::{Shell, cmd};

use crate::prom::rules::{Rules, SEVERITY_RECEIVERS};
use crate::stack::template::{self, Vars};
use crate::util::{curl, http_ok, random_hex};

#[derive(Debug, Deserialize)]
pub struct Spec {
    #[serde(default)]
    pub routes: Vec<RouteCase>,
    #[serde(default)]
    pub inhibitions: Vec<InhibitionCase>,
}

#[derive(Debug, Deserialize)]
pub struct RouteCase {
    pub labels: BTreeMap<String, String>,
    pub receivers: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct InhibitionCase {
    pub name: String,
    pub source: BTreeMap<String, String>,
    pub target: BTreeMap<String, String>,
    pub inhibited: bool,
}

impl Spec {
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_yaml_ng::from_str(&text).with_context(|| format!("reading {}", path.display()))
    }
}

/// Renders the template as `cargo xtask deploy` would, with test values.
pub fn render(template_path: &Path, work: &Path) -> Result<PathBuf> {
    let token = work.join("alert-sink-token");
    std::fs::write(&token, "test-token")?;
    let vars = Vars::from([
        ("ALERT_SINK_URL", "http://127.0.0.1:9".to_owned()),
        (
            "ALERT_SINK_TOKEN_FILE",
            token.to_string_lossy().into_owned(),
        ),
        // Long enough that nothing is sent while the tests run.
        ("GROUP_WAIT", "1h".to_owned()),
        ("GROUP_INTERVAL", "1h".to_owned()),
    ]);
    let text = template::render_file(template_path, &vars)?;
    let path = work.join("alertmanager.yml");
    std::fs::write(&path, text)?;
    Ok(path)
}

pub fn check_config(sh: &Shell, config: &Path) -> Result<()> {
    let output = cmd!(sh, "amtool check-config {config}")
        .quiet()
        .ignore_status()
        .output()?;
    if !output.status.success() {
        bail!(
            "amtool check-config:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn receivers_of(config: &Path) -> Result<Vec<String>> {
    let value: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(config)?)?;
    Ok(value["receivers"]
        .as_sequence()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

fn route_test(
    sh: &Shell,
    config: &Path,
    labels: &BTreeMap<String, String>,
    receivers: &[String],
) -> Option<String> {
    let expected = format!("--verify.receivers={}", receivers.join(","));
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let args = pairs.clone();
    let output = cmd!(
        sh,
        "amtool config routes test --config.file={config} {expected} {args...}"
    )
    .quiet()
    .ignore_status()
    .output();
    match output {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "{{{}}} should go to {}, amtool says: {}",
            pairs.join(", "),
            receivers.join(","),
            String::from_utf8_lossy(&o.stdout).trim()
        )),
        Err(e) => Some(format!("cannot run amtool: {e}")),
    }
}

/// The route cases, severity and receiver coverage, and every alert rule
/// routed by its labels to the receiver of its severity.
pub fn check_routes(sh: &Shell, config: &Path, spec: &Spec, rules: &Rules) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for case in &spec.routes {
        problems.extend(route_test(sh, config, &case.labels, &case.receivers));
    }
    for (severity, receiver) in SEVERITY_RECEIVERS {
        if !spec
            .routes
            .iter()
            .any(|c| c.labels.get("severity").map(String::as_str) == Some(severity))
        {
            problems.push(format!("no route case for severity={severity}"));
        }
        if !spec
            .routes
            .iter()
            .any(|c| c.receivers.iter().any(|r| r == receiver))
        {
            problems.push(format!("no route case reaches receiver {receiver}"));
        }
    }
    for receiver in receivers_of(config)? {
        if !spec.routes.iter().any(|c| c.receivers.contains(&receiver)) {
            problems.push(format!("no route case reaches receiver {receiver}"));
        }
    }
    for alert in rules.alerts() {
        let mut labels = alert.labels.clone();
        labels.insert("alertname".to_owned(), alert.name().to_owned());
        labels.insert("job".to_owned(), "any-job".to_owned());
        let severity = labels.get("severity").cloned().unwrap_or_default();
        if let Some((_, receiver)) = SEVERITY_RECEIVERS.iter().find(|(s, _)| *s == severity) {
            problems.extend(
                route_test(sh, config, &labels, &[(*receiver).to_owned()])
                    .map(|p| format!("alert {}: {p}", alert.name())),
            );
        }
    }
    problems.sort();
    problems.dedup();
    Ok(problems)
}

/// One throwaway Alertmanager; killed when dropped.
struct Throwaway {
    child: Child,
    url: String,
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

fn start(config: &Path, work: &Path) -> Result<Throwaway> {
    let port = free_port()?;
    let storage = work.join(format!("am-{port}-{}", random_hex(4)?));
    std::fs::create_dir_all(&storage)?;
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting prometheus-alertmanager")?;
    Ok(Throwaway {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

fn post_alert(am: &Throwaway, labels: &BTreeMap<String, String>) -> Result<()> {
    let body = serde_json::json!([{ "labels": labels }]).to_string();
    curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        &format!("{}/api/v2/alerts", am.url),
    ])?;
    Ok(())
}

/// Whether Alertmanager marks the alert with exactly `labels` as inhibited
/// (`None` while it does not list it yet).
fn inhibited(am: &Throwaway, labels: &BTreeMap<String, String>) -> Result<Option<bool>> {
    let alerts: serde_json::Value =
        serde_json::from_str(&curl(&[&format!("{}/api/v2/alerts", am.url)])?)?;
    let wanted = serde_json::json!(labels);
    Ok(alerts.as_array().and_then(|all| {
        all.iter().find(|a| a["labels"] == wanted).map(|a| {
            a["status"]["inhibitedBy"]
                .as_array()
                .is_some_and(|by| !by.is_empty())
        })
    }))
}

/// Runs every case against one Alertmanager each (in parallel); returns,
/// per case, whether its target ended up inhibited.
fn run_cases(config: &Path, work: &Path, cases: &[&InhibitionCase]) -> Result<Vec<bool>> {
    let instances: Vec<Throwaway> = cases
        .iter()
        .map(|_| start(config, work))
        .collect::<Result<_>>()?;
    for am in &instances {
        let started = Instant::now();
        while !http_ok(&format!("{}/-/ready", am.url)) {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("throwaway Alertmanager at {} did not start", am.url);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for (am, case) in instances.iter().zip(cases) {
        post_alert(am, &case.source)?;
    }
    // The inhibitor learns of sources asynchronously: give it the source
    // first, then ask about the target.
    for (am, case) in instances.iter().zip(cases) {
        let started = Instant::now();
        while inhibited(am, &case.source)?.is_none() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    for (am, case) in instances.iter().zip(cases) {
        post_alert(am, &case.target)?;
    }
    let mut results = vec![false; cases.len()];
    let started = Instant::now();
    loop {
        for (i, (am, case)) in instances.iter().zip(cases).enumerate() {
            results[i] = inhibited(am, &case.target)?.unwrap_or(false);
        }
        let settled = instances.len() == results.len()
            && cases.iter().zip(&results).all(|(c, r)| *r == c.inhibited);
        if settled || started.elapsed() > Duration::from_secs(1) {
            return Ok(results);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every inhibition case holds, and every inhibit rule is needed: with the
/// rule removed, some `inhibited: true` case fails.
pub fn check_inhibitions(config: &Path, work: &Path, spec: &Spec) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let all: Vec<&InhibitionCase> = spec.inhibitions.iter().collect();
    let results = run_cases(config, work, &all)?;
    for (case, got) in all.iter().zip(&results) {
        if *got != case.inhibited {
            problems.push(format!(
                "inhibition case \"{}\": target {} inhibited, expected {}",
                case.name,
                if *got { "was" } else { "was not" },
                if case.inhibited { "inhibited" } else { "not" }
            ));
        }
    }
    let value: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(config)?)?;
    let rules = value["inhibit_rules"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let positive: Vec<&InhibitionCase> = all.iter().copied().filter(|c| c.inhibited).collect();
    for (index, rule) in rules.iter().enumerate() {
        let mut without = value.clone();
        if let Some(Value::Sequence(list)) = without.get_mut("inhibit_rules") {
            list.remove(index);
        }
        let variant = work.join(format!("alertmanager-without-inhibit-{index}.yml"));
        std::fs::write(&variant, serde_yaml_ng::to_string(&without)?)?;
        let results = run_cases(&variant, work, &positive)?;
        if results.iter().all(|inhibited| *inhibited) {
            problems.push(format!(
                "inhibit rule #{} ({}) is covered by no inhibition case: removing it changes no result",
                index + 1,
                serde_json::to_string(rule).unwrap_or_default()
            ));
        }
    }
    Ok(problems)
}
