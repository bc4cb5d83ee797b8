//! The podman `kube play` smoke of `cargo xtask ci`: the services'
//! Deployments of the dev rendering, reshaped by `k8s_manifests::podman`
//! (host network, addresses rewritten to this machine's ports, Secrets as
//! files and values under `target/kube-play/`), played with the images
//! `cargo xtask images` built from this machine's release binaries, then:
//! `/health` and `/ready` of every service, one task through the real
//! arms (planner → steps → guardian → judge), `promtool check metrics` on
//! every `/metrics`, and teardown (`podman kube down`), also on failure.
//!
//! What does not run under podman (4.3): the StatefulSets (PostgreSQL and
//! Redis run as the test images instead, without pgBackRest, S3 or
//! exporters), Services and their DNS, NetworkPolicies, PDBs, HPAs,
//! ServiceAccounts, probes (the smoke probes from the host), every custom
//! resource (Prometheus Operator, Velero) and the monitoring stack.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_manifests::podman::{self, PodmanStack};
use k8s_manifests::services::{
    API_TOKEN_SECRET, CAPABILITY_KEY_SECRET, LLM_SIM_SECRET, POSTGRES_SECRET, REDIS_SECRET,
    REFLEX_KEY_SECRET, SERVICE_TOKEN_SECRET,
};
use k8s_manifests::{Object, to_yaml};
use xshell::Shell;

use super::super::images;
use crate::say;
use crate::stack::container_engine;
use crate::stack::launch::caller_id;
use crate::stack::ports::KUBE_PLAY_WINDOW;
use crate::util::{curl, http_ok, project_root, random_hex, wait_for, write_secret};

/// Runs the smoke; tears the pods down whatever happens.
pub fn run(sh: &Shell) -> Result<()> {
    images::ensure_images(sh)?;
    images::build_service_images(sh, false)?;
    let dir = project_root().join("target/kube-play");
    let conf = container_engine::containers_conf(sh);
    let play = Play {
        dir: dir.clone(),
        conf,
    };
    play.down_all();
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    let stack = prepare(&dir)?;
    let result = play.smoke(&stack);
    play.down_all();
    if result.is_ok() {
        fs::remove_dir_all(&dir)?;
    }
    result
}

/// The ports, secrets and host directories of the smoke.
fn prepare(dir: &Path) -> Result<PodmanStack> {
    let (first, last) = KUBE_PLAY_WINDOW;
    let components = podman::components();
    let mut ports = BTreeMap::new();
    for (i, name) in components.iter().enumerate() {
        let port = first + u16::try_from(i)?;
        if port > last {
            bail!(
                "the kube play window {first}-{last} is too small for {} components",
                components.len()
            );
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            bail!(
                "port {port} ({name}) of the kube play window is taken (a smoke left running? `podman pod ps`)"
            );
        }
        ports.insert((*name).to_owned(), port);
    }
    let token = random_hex(32)?;
    let redis_password = random_hex(24)?;
    let mut secrets = BTreeMap::new();
    let mut put = |secret: &str, key: &str, value: String| {
        secrets.insert((secret.to_owned(), key.to_owned()), value);
    };
    put(API_TOKEN_SECRET, "token", token.clone());
    put(SERVICE_TOKEN_SECRET, "token", random_hex(32)?);
    put(
        API_TOKEN_SECRET,
        "reflex-user-tiers",
        format!("{}=internal", caller_id(&token)?),
    );
    put(CAPABILITY_KEY_SECRET, "key", random_hex(32)?);
    put(REFLEX_KEY_SECRET, "key", random_hex(32)?);
    put(LLM_SIM_SECRET, "token", random_hex(32)?);
    put(POSTGRES_SECRET, "app-password", random_hex(24)?);
    put(REDIS_SECRET, "password", redis_password.clone());
    let stack = PodmanStack {
        ports,
        secrets,
        dir: dir.to_path_buf(),
        image_prefix: "localhost/octollm".to_owned(),
    };
    // Secret volumes: one directory per Secret, one file per key. Readable
    // inside the containers (UID 10001); on the host only root enters `dir`.
    for ((secret, key), value) in &stack.secrets {
        let sdir = dir.join("secrets").join(secret);
        fs::create_dir_all(&sdir)?;
        fs::set_permissions(&sdir, fs::Permissions::from_mode(0o755))?;
        let file = sdir.join(key);
        fs::write(&file, value)?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o444))?;
    }
    let redis_conf = dir.join("redis-config");
    fs::create_dir_all(&redis_conf)?;
    fs::set_permissions(&redis_conf, fs::Permissions::from_mode(0o755))?;
    let conf = redis_conf.join("redis.conf");
    fs::write(
        &conf,
        format!(
            "bind 127.0.0.1\nport {}\nprotected-mode yes\ndir /var/lib/redis\nappendonly yes\nappendfsync everysec\nrequirepass {redis_password}\n",
            stack.ports.get("redis").copied().unwrap_or_default()
        ),
    )?;
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o444))?;
    write_secret(
        &dir.join("api.header"),
        &format!("Authorization: Bearer {token}\n"),
    )?;
    Ok(stack)
}

struct Play {
    dir: PathBuf,
    conf: PathBuf,
}

impl Play {
    fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf);
        c
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.yaml"))
    }

    /// `podman kube play` of one group of objects (written 0600: it carries the smoke's secrets).
    fn play(&self, name: &str, objects: &[Object]) -> Result<()> {
        for dir in podman::host_dirs(objects) {
            if !dir.exists() {
                fs::create_dir_all(&dir)?;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777))?;
            }
        }
        let file = self.file(name);
        write_secret(&file, &to_yaml(objects)?)?;
        let output = self
            .podman()
            .args(["kube", "play", "--replace"])
            .arg(&file)
            .output()?;
        if !output.status.success() {
            bail!(
                "podman kube play {}: {}",
                file.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    fn down_all(&self) {
        for name in ["services", "stores"] {
            let file = self.file(name);
            if file.exists() {
                let _ = self.podman().args(["kube", "down"]).arg(&file).output();
            }
        }
    }

    fn logs(&self, pod: &str, container: &str) -> String {
        self.podman()
            .args(["logs", "--tail", "20", &format!("{pod}-pod-0-{container}")])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    }

    fn smoke(&self, stack: &PodmanStack) -> Result<()> {
        let root = project_root();
        let started = Instant::now();
        self.play("stores", &podman::stores(stack)?)?;
        let pg_port = stack
            .ports
            .get("postgres")
            .copied()
            .unwrap_or_default()
            .to_string();
        // The retriever's database (the test image creates only `octollm`).
        wait_for("PostgreSQL in its pod", Duration::from_secs(60), || {
            self.podman()
                .args([
                    "exec",
                    "postgres-pod-0-postgres",
                    "psql",
                    "-U",
                    "octollm",
                    "-d",
                    "octollm",
                    "-h",
                    "/var/run/postgresql",
                    "-p",
                    &pg_port,
                ])
                .args(["-tAc", "SELECT 1"])
                .output()
                .is_ok_and(|o| o.status.success())
        })?;
        let created = self
            .podman()
            .args([
                "exec",
                "postgres-pod-0-postgres",
                "psql",
                "-U",
                "octollm",
                "-d",
                "octollm",
                "-h",
                "/var/run/postgresql",
                "-p",
                &pg_port,
            ])
            .args(["-c", "CREATE DATABASE octollm_knowledge"])
            .output()?;
        if !created.status.success() {
            bail!(
                "creating octollm_knowledge: {}",
                String::from_utf8_lossy(&created.stderr)
            );
        }
        let services = podman::services(&root, stack)?;
        say!(
            "kube play: {} service Deployments on ports {}-{}",
            services.len(),
            KUBE_PLAY_WINDOW.0,
            KUBE_PLAY_WINDOW.1
        );
        self.play("services", &services)?;
        for name in podman::components().into_iter().skip(2) {
            let port = stack.ports.get(name).copied().unwrap_or_default();
            let base = format!("http://127.0.0.1:{port}");
            let ready = wait_for(
                &format!("{name}'s /health and /ready"),
                Duration::from_secs(90),
                || http_ok(&format!("{base}/health")) && http_ok(&format!("{base}/ready")),
            );
            if let Err(e) = ready {
                bail!("{e}; its last log lines:\n{}", self.logs(name, name));
            }
        }
        say!(
            "kube play: every service healthy and ready in {:.0?}",
            started.elapsed()
        );
        // The pod spec's hardening is what podman runs.
        for name in podman::components().into_iter().skip(2) {
            let container = format!("{name}-pod-0-{name}");
            let format =
                "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Privileged}}";
            let out = self
                .podman()
                .args(["inspect", "--format", format, &container])
                .output()?;
            let seen = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !seen.starts_with("10001") || !seen.contains(" true ") || !seen.ends_with("false") {
                bail!(
                    "{container} runs as `{seen}` (user, read-only root, privileged), not 10001/true/false"
                );
            }
        }
        let orchestrator = format!(
            "http://127.0.0.1:{}",
            stack.ports.get("orchestrator").copied().unwrap_or_default()
        );
        let header = format!("@{}", self.dir.join("api.header").display());
        let body = serde_json::json!({"goal": "Summarise why durable task queues matter.", "priority": "high"}).to_string();
        let accepted: serde_json::Value = serde_json::from_str(&curl(&[
            "-X",
            "POST",
            "-H",
            &header,
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
            &format!("{orchestrator}/v1/tasks"),
        ])?)?;
        let id = accepted["task_id"]
            .as_str()
            .context("no task_id")?
            .to_owned();
        let mut task = serde_json::Value::Null;
        for _ in 0..4 {
            task = serde_json::from_str(&curl(&[
                "-H",
                &header,
                &format!("{orchestrator}/v1/tasks/{id}?wait=30"),
            ])?)?;
            if task["status"] != "queued" && task["status"] != "running" {
                break;
            }
        }
        if task["status"] != "succeeded" {
            bail!(
                "the smoke task ended as {}: {task}\norchestrator log:\n{}",
                task["status"],
                self.logs("orchestrator", "orchestrator")
            );
        }
        // Through the real arms: the planner arm and the arms its steps went to served it.
        let arms_used = arms_that_executed(stack)?;
        if !arms_used.iter().any(|a| a == "planner") || arms_used.len() < 3 {
            bail!("the smoke task did not go through the arms (executions seen: {arms_used:?})");
        }
        say!("kube play: task {id} succeeded through the arms {arms_used:?}");
        for name in podman::components().into_iter().skip(2) {
            let port = stack.ports.get(name).copied().unwrap_or_default();
            let metrics = curl(&[&format!("http://127.0.0.1:{port}/metrics")])?;
            let mut promtool = Command::new("promtool");
            promtool.args(["check", "metrics"]);
            crate::util::run_with_input(&mut promtool, &metrics)
                .with_context(|| format!("promtool check metrics on {name}'s /metrics"))?;
        }
        say!(
            "kube play: promtool check metrics clean on all {} services, {:.0?} in all",
            podman::components().len() - 2,
            started.elapsed()
        );
        Ok(())
    }
}

/// The arms (by the `arm` label of `octollm_arm_executions_total`) that
/// answered at least one execution.
fn arms_that_executed(stack: &PodmanStack) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for name in podman::components() {
        let Some(arm) = name.strip_suffix("-arm") else {
            continue;
        };
        let port = stack.ports.get(name).copied().unwrap_or_default();
        let metrics = curl(&[&format!("http://127.0.0.1:{port}/metrics")])?;
        let served = metrics
            .lines()
            .filter(|l| {
                l.starts_with("octollm_arm_executions_total{") && l.contains("status=\"ok\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        if served > 0.0 {
            out.push(arm.to_owned());
        }
    }
    Ok(out)
}
