//! The OctoLLM services on Kubernetes: their Deployments, config and the
//! call graph between them.
//!
//! The call graph is the one the local stack wires (`xtask/src/stack/launch.rs`):
//! each edge is an env var a service reads that names another component's
//! address. The services' env is built from these edges, and the
//! NetworkPolicies from the same edges, so a policy opens exactly the
//! paths the services are configured to use.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::ConfigMap;

use crate::workload::{
    App, Check, Kind, Part, Size, empty_dir, env, meta, mount, secret_env, secret_key_volume,
};
use crate::{NS_APP, NS_DATA, NS_MONITORING, Object, Params};

/// How one service is deployed.
#[derive(Clone, Copy, Debug)]
pub struct Svc {
    /// Component, binary, Service and Prometheus job name.
    pub name: &'static str,
    pub port: i32,
    /// Scales horizontally (stateless; HPA on CPU).
    pub scales: bool,
    /// The drain period it is given on SIGTERM (`OCTOLLM_SHUTDOWN_GRACE`).
    pub drain_seconds: i64,
    pub size: Size,
    /// Built on service-kit (serves /health/deep, reads OCTOLLM_*; exports traces).
    pub service_kit: bool,
}

const SMALL: Size = Size::new(50, 500, 64, 256);
const MEDIUM: Size = Size::new(100, 1000, 128, 512);
const LARGE: Size = Size::new(250, 2000, 256, 1024);

/// Every service, in the order of the local stack's start.
pub const SERVICES: &[Svc] = &[
    Svc {
        name: "llm-sim",
        port: 8090,
        scales: false,
        drain_seconds: 5,
        size: SMALL,
        service_kit: false,
    },
    Svc {
        name: "reflex-layer",
        port: 8080,
        scales: true,
        drain_seconds: 10,
        size: MEDIUM,
        service_kit: true,
    },
    Svc {
        name: "planner-arm",
        port: 8001,
        scales: true,
        drain_seconds: 30,
        size: SMALL,
        service_kit: true,
    },
    Svc {
        name: "retriever-arm",
        port: 8002,
        scales: true,
        drain_seconds: 30,
        size: SMALL,
        service_kit: true,
    },
    Svc {
        name: "coder-arm",
        port: 8003,
        scales: true,
        drain_seconds: 30,
        size: SMALL,
        service_kit: true,
    },
    Svc {
        name: "judge-arm",
        port: 8004,
        scales: true,
        drain_seconds: 30,
        size: SMALL,
        service_kit: true,
    },
    Svc {
        name: "guardian-arm",
        port: 8005,
        scales: true,
        drain_seconds: 10,
        size: SMALL,
        service_kit: true,
    },
    Svc {
        name: "executor-arm",
        port: 8006,
        scales: true,
        drain_seconds: 15,
        size: SMALL,
        service_kit: true,
    },
    Svc {
        name: "orchestrator",
        port: 8000,
        scales: true,
        drain_seconds: 30,
        size: LARGE,
        service_kit: true,
    },
];

pub fn svc(name: &str) -> Option<&'static Svc> {
    SERVICES.iter().find(|s| s.name == name)
}

/// One edge of the call graph: `from` calls `to` on `port`, told where by `var`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub from: &'static str,
    pub to: &'static str,
    pub namespace: &'static str,
    pub port: i32,
    pub var: &'static str,
}

pub const POSTGRES: &str = "postgres";
pub const POSTGRES_PORT: i32 = 5432;
pub const REDIS: &str = "redis";
pub const REDIS_PORT: i32 = 6379;
pub const JAEGER: &str = "jaeger";
pub const OTLP_HTTP_PORT: i32 = 4318;

const ARMS: [&str; 6] = [
    "planner-arm",
    "retriever-arm",
    "coder-arm",
    "judge-arm",
    "guardian-arm",
    "executor-arm",
];

/// The services' calls, as `xtask/src/stack/launch.rs` wires them locally:
/// the orchestrator's `DATABASE_URL`, `LLM_BASE_URL`, `REFLEX_URL` and
/// `OCTOLLM_ARMS`; the reflex layer's `REDIS_URL`; the LLM-using arms'
/// `LLM_BASE_URL`; the retriever's `DATABASE_URL`. Plus, on Kubernetes
/// only, every service-kit service's traces to Jaeger
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`).
pub fn calls() -> Vec<Call> {
    let call = |from, to, namespace, port, var| Call {
        from,
        to,
        namespace,
        port,
        var,
    };
    let mut calls = vec![
        call(
            "orchestrator",
            POSTGRES,
            NS_DATA,
            POSTGRES_PORT,
            "DATABASE_URL",
        ),
        call("orchestrator", "llm-sim", NS_APP, 8090, "LLM_BASE_URL"),
        call("orchestrator", "reflex-layer", NS_APP, 8080, "REFLEX_URL"),
        call("reflex-layer", REDIS, NS_DATA, REDIS_PORT, "REDIS_URL"),
        call(
            "retriever-arm",
            POSTGRES,
            NS_DATA,
            POSTGRES_PORT,
            "DATABASE_URL",
        ),
    ];
    for arm in ARMS {
        if let Some(s) = svc(arm) {
            calls.push(call("orchestrator", s.name, NS_APP, s.port, "OCTOLLM_ARMS"));
        }
    }
    for arm in ["planner-arm", "coder-arm", "judge-arm"] {
        calls.push(call(arm, "llm-sim", NS_APP, 8090, "LLM_BASE_URL"));
    }
    for s in SERVICES.iter().filter(|s| s.service_kit) {
        calls.push(call(
            s.name,
            JAEGER,
            NS_MONITORING,
            OTLP_HTTP_PORT,
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ));
    }
    calls.sort();
    calls
}

/// `http://<name>.<namespace>.svc:<port>`
pub fn service_url(name: &str, namespace: &str, port: i32) -> String {
    format!("http://{name}.{namespace}.svc:{port}")
}

/// `KEY=VALUE` lines of `deploy/local/<name>.env`, the services' settings.
pub fn env_file(root: &Path, name: &str) -> Result<Vec<(String, String)>> {
    let path = root.join("deploy/local").join(format!("{name}.env"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .with_context(|| format!("{}: `{l}` is not KEY=VALUE", path.display()))
        })
        .collect()
}

/// Secrets the services reference (created by the operator, never rendered).
/// The users' API token(s): open the orchestrator's task API only.
pub const API_TOKEN_SECRET: &str = "octollm-api-token";
/// The orchestrator's service token: the only credential the reflex layer
/// and the arms accept (as `secrets/service-token` locally).
pub const SERVICE_TOKEN_SECRET: &str = "octollm-service-token";
pub const CAPABILITY_KEY_SECRET: &str = "octollm-capability-key";
pub const REFLEX_KEY_SECRET: &str = "octollm-reflex-key";
pub const POSTGRES_SECRET: &str = "octollm-postgres";
pub const REDIS_SECRET: &str = "octollm-redis";
pub const LLM_SIM_SECRET: &str = "octollm-llm-sim-admin";

const SECRETS_DIR: &str = "/var/run/secrets/octollm";

pub fn image(params: &Params, name: &str) -> String {
    format!("{}/{name}:{}", params.registry, params.version)
}

/// A service's Deployment, Service, ServiceAccount, PDB, HPA and ConfigMap.
pub fn service_objects(root: &Path, params: &Params, s: &Svc) -> Result<Vec<Object>> {
    let calls: Vec<Call> = calls().into_iter().filter(|c| c.from == s.name).collect();
    // Settings: the local env file, then what the pod's addresses change.
    let mut config: BTreeMap<String, String> = env_file(root, s.name)?.into_iter().collect();
    let listen = if s.service_kit {
        "OCTOLLM_LISTEN"
    } else {
        "LLM_SIM_LISTEN"
    };
    config.insert(listen.to_owned(), format!("0.0.0.0:{}", s.port));
    if s.service_kit {
        config.insert(
            "OCTOLLM_SHUTDOWN_GRACE".to_owned(),
            format!("{}s", s.drain_seconds),
        );
        config.insert("OTEL_SERVICE_NAME".to_owned(), s.name.to_owned());
    }
    let mut secret_vars = Vec::new();
    let mut volumes = vec![empty_dir("tmp")];
    let mut mounts = Vec::new();
    let mut arms = Vec::new();
    for c in &calls {
        let url = service_url(c.to, c.namespace, c.port);
        match c.var {
            "LLM_BASE_URL" => {
                config.insert(c.var.to_owned(), format!("{url}/v1"));
            }
            "OCTOLLM_ARMS" => arms.push(format!("{}={url}", c.to.trim_end_matches("-arm"))),
            "DATABASE_URL" => {
                let (key, database) = if s.name == "orchestrator" {
                    ("app-password", "octollm")
                } else {
                    ("app-password", "octollm_knowledge")
                };
                secret_vars.push(secret_env("DATABASE_PASSWORD", POSTGRES_SECRET, key));
                // $(VAR) is expanded by the kubelet: the password stays in the Secret.
                secret_vars.push(env(
                    "DATABASE_URL",
                    format!(
                        "postgres://octollm:$(DATABASE_PASSWORD)@{}.{}.svc:{}/{database}",
                        c.to, c.namespace, c.port
                    ),
                ));
            }
            "REDIS_URL" => {
                secret_vars.push(secret_env("REDIS_PASSWORD", REDIS_SECRET, "password"));
                secret_vars.push(env(
                    "REDIS_URL",
                    format!(
                        "redis://:$(REDIS_PASSWORD)@{}.{}.svc:{}/0",
                        c.to, c.namespace, c.port
                    ),
                ));
            }
            var => {
                config.insert(var.to_owned(), url);
            }
        }
    }
    if !arms.is_empty() {
        config.insert("OCTOLLM_ARMS".to_owned(), arms.join(","));
        // A Service balances connections, not requests: over one HTTP/2
        // connection every call would go to the same pod. Containers' open-files
        // limits leave room for a connection per call in flight.
        config.insert("OCTOLLM_INTERNAL_HTTP2".to_owned(), "false".to_owned());
    }
    let mut secret_file = |var: &str,
                           volume: &str,
                           secret: &str,
                           key: &str,
                           config: &mut BTreeMap<String, String>| {
        volumes.push(secret_key_volume(volume, secret, key));
        mounts.push(mount(volume, &format!("{SECRETS_DIR}/{volume}"), true));
        config.insert(var.to_owned(), format!("{SECRETS_DIR}/{volume}/{key}"));
    };
    // As stack::launch wires it: the orchestrator accepts the users' token
    // and presents its service token; the reflex layer and the arms accept
    // only that service token.
    if s.name == "orchestrator" {
        secret_file(
            "OCTOLLM_API_TOKEN_FILE",
            "api-token",
            API_TOKEN_SECRET,
            "token",
            &mut config,
        );
        secret_file(
            "REFLEX_TOKEN_FILE",
            "service-token",
            SERVICE_TOKEN_SECRET,
            "token",
            &mut config,
        );
        config.insert(
            "OCTOLLM_ARM_TOKEN_FILE".to_owned(),
            format!("{SECRETS_DIR}/service-token/token"),
        );
    } else if s.service_kit {
        secret_file(
            "OCTOLLM_API_TOKEN_FILE",
            "service-token",
            SERVICE_TOKEN_SECRET,
            "token",
            &mut config,
        );
    }
    match s.name {
        "orchestrator" => {
            secret_file(
                "OCTOLLM_CAPABILITY_KEY_FILE",
                "capability-key",
                CAPABILITY_KEY_SECRET,
                "key",
                &mut config,
            );
        }
        "executor-arm" => {
            secret_file(
                "OCTOLLM_CAPABILITY_KEY_FILE",
                "capability-key",
                CAPABILITY_KEY_SECRET,
                "key",
                &mut config,
            );
            volumes.push(empty_dir("workspace"));
            mounts.push(mount("workspace", "/var/lib/executor", false));
            config.insert(
                "EXECUTOR_WORKDIR".to_owned(),
                "/var/lib/executor".to_owned(),
            );
        }
        "reflex-layer" => {
            secret_file(
                "REFLEX_KEY_FILE",
                "reflex-key",
                REFLEX_KEY_SECRET,
                "key",
                &mut config,
            );
            // The stack's own callers (the orchestrator screens as its clients)
            // get their tiers from the Secret-held caller ids, not from here.
            secret_vars.push(secret_env(
                "REFLEX_USER_TIERS",
                API_TOKEN_SECRET,
                "reflex-user-tiers",
            ));
        }
        "llm-sim" => secret_file(
            "LLM_SIM_ADMIN_TOKEN_FILE",
            "admin-token",
            LLM_SIM_SECRET,
            "token",
            &mut config,
        ),
        _ => {}
    }
    let config_name = format!("{}-config", s.name);
    let config_map = ConfigMap {
        metadata: meta(
            &config_name,
            NS_APP,
            crate::workload::labels(s.name, "service"),
        ),
        data: Some(config),
        ..ConfigMap::default()
    };
    let mut part = Part::new(
        s.name,
        &image(params, s.name),
        params.size(s.size),
        Check::Http {
            path: "/health",
            port: "http",
        },
        Check::Http {
            path: "/ready",
            port: "http",
        },
    );
    part.ports = vec![("http", s.port)];
    part.env = secret_vars;
    part.env_config_map = Some(config_name);
    part.mounts = mounts;
    let kind = if s.scales {
        Kind::Deployment {
            replicas: params.replicas,
            autoscale: Some((params.replicas, params.max_replicas)),
        }
    } else {
        Kind::Deployment {
            replicas: 1,
            autoscale: None,
        }
    };
    let mut app = App::new(s.name, NS_APP, "service", kind, part);
    app.volumes = volumes;
    if s.name == "reflex-layer" {
        app.skips.push(("CKV_K8S_35", "REFLEX_USER_TIERS (caller ids of the stack's own clients) and REDIS_PASSWORD, for REDIS_URL's $(REDIS_PASSWORD), are env-only settings".to_owned()));
    } else if calls.iter().any(|c| c.var == "DATABASE_URL") {
        app.skips.push(("CKV_K8S_35", "the service reads DATABASE_URL only; the password enters it through $(DATABASE_PASSWORD) expansion".to_owned()));
    }
    // SIGTERM → the service drains for `drain_seconds`, then exits; 5 s of margin before SIGKILL.
    app.grace_seconds = s.drain_seconds + 5;
    app.service_labels
        .insert(crate::workload::JOB_LABEL.to_owned(), s.name.to_owned());
    let mut out: Vec<Object> = vec![config_map.into()];
    out.extend(app.objects());
    Ok(out)
}
