//! The podman overlay: the same typed service Deployments, reshaped for
//! `podman kube play` (Podman 4.3), which has no StatefulSets, no Service
//! DNS and no Secrets or ConfigMaps of its own here:
//!
//! - every pod joins the host network (`hostNetwork`) and every address
//!   `<service>.<namespace>.svc:<port>` becomes `127.0.0.1:<host port>` of
//!   the smoke's port window, the services' listen addresses included;
//! - a ConfigMap's settings (`envFrom`) become the container's own env;
//!   a Secret-sourced env var becomes its value and a Secret volume a
//!   host directory of files (both written by the caller under `target/`,
//!   mode 0600, never committed); `$(VAR)` references are expanded;
//! - `emptyDir` volumes become host directories; probes are dropped (Podman
//!   turns them into health checks that run `curl` inside the container,
//!   and the images carry no curl: the smoke probes `/health` and `/ready`
//!   from the host instead);
//! - traces are not exported (no Jaeger under podman);
//! - PostgreSQL and Redis are the test images (`localhost/octollm/postgres:15`,
//!   `localhost/octollm/redis:7`) as Deployments, not the StatefulSets
//!   (no pgBackRest, no object storage, no exporters).
//!
//! Everything else of the pod spec is kept: the UID, the read-only root
//! filesystem, the dropped capabilities, requests and limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, HostPathVolumeSource, PodSpec, PodTemplateSpec, Volume,
};

use crate::services::{POSTGRES, REDIS, SERVICES};
use crate::workload::{env, labels, meta, mount, selector};
use crate::{NS_APP, Object, Overlay, checks, render};

/// Where the smoke's stack lives on this machine.
#[derive(Clone, Debug)]
pub struct PodmanStack {
    /// The host port of every component: services, `postgres`, `redis`.
    pub ports: BTreeMap<String, u16>,
    /// Secret values by (Secret name, key).
    pub secrets: BTreeMap<(String, String), String>,
    /// Host directory holding `<secret>/<key>` files and `volumes/<pod>/<volume>`.
    pub dir: PathBuf,
    /// `localhost/octollm/<service>:<version>`.
    pub image_prefix: String,
}

/// The components of the smoke, in start order.
pub fn components() -> Vec<&'static str> {
    let mut out = vec![POSTGRES, REDIS];
    out.extend(SERVICES.iter().map(|s| s.name));
    out
}

impl PodmanStack {
    fn port(&self, name: &str) -> Result<u16> {
        self.ports
            .get(name)
            .copied()
            .with_context(|| format!("no host port for {name}"))
    }

    fn secret(&self, name: &str, key: &str) -> Result<String> {
        self.secrets
            .get(&(name.to_owned(), key.to_owned()))
            .cloned()
            .with_context(|| format!("no value for secret {name} key {key}"))
    }

    /// Every `<svc>.<ns>.svc:<port>` in `text` rewritten to `127.0.0.1:<host port>`,
    /// and `0.0.0.0:<port>` (a listen address) to the component's own.
    fn rewrite(&self, me: &str, text: &str) -> Result<String> {
        let mut out = text.to_owned();
        for (name, ns, port) in checks::service_addresses(text) {
            out = out.replace(
                &format!("{name}.{ns}.svc:{port}"),
                &format!("127.0.0.1:{}", self.port(&name)?),
            );
        }
        if let Some(rest) = out.strip_prefix("0.0.0.0:")
            && rest.parse::<u16>().is_ok()
        {
            out = format!("127.0.0.1:{}", self.port(me)?);
        }
        Ok(out)
    }
}

fn host_path(name: &str, path: &Path) -> Volume {
    Volume {
        name: name.to_owned(),
        host_path: Some(HostPathVolumeSource {
            path: path.display().to_string(),
            type_: Some("Directory".to_owned()),
        }),
        ..Volume::default()
    }
}

/// `$(VAR)` references to earlier vars, expanded as the kubelet does.
fn expand(value: &str, earlier: &BTreeMap<String, String>) -> String {
    let mut out = value.to_owned();
    for (k, v) in earlier {
        out = out.replace(&format!("$({k})"), v);
    }
    out
}

fn service_deployment(
    stack: &PodmanStack,
    d: &Deployment,
    config: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<Object> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let mut d = d.clone();
    d.metadata.annotations = None;
    d.metadata.namespace = None;
    let spec = d.spec.as_mut().context("no spec")?;
    spec.replicas = Some(1);
    let pod = spec.template.spec.as_mut().context("no pod spec")?;
    pod.host_network = Some(true);
    // Podman 4.3 ignores the service account; there is no API server.
    pod.service_account_name = None;
    let volumes_dir = stack.dir.join("volumes").join(&name);
    let mut volumes = Vec::new();
    for v in pod.volumes.take().unwrap_or_default() {
        if let Some(secret) = &v.secret {
            let secret_name = secret.secret_name.clone().unwrap_or_default();
            volumes.push(host_path(
                &v.name,
                &stack.dir.join("secrets").join(secret_name),
            ));
        } else {
            volumes.push(host_path(&v.name, &volumes_dir.join(&v.name)));
        }
    }
    pod.volumes = Some(volumes);
    for c in &mut pod.containers {
        let image = format!(
            "{}/{}:{}",
            stack.image_prefix,
            name,
            env!("CARGO_PKG_VERSION")
        );
        c.image = Some(image);
        c.image_pull_policy = Some("Never".to_owned());
        c.liveness_probe = None;
        c.readiness_probe = None;
        c.ports = None;
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        let mut out: Vec<EnvVar> = Vec::new();
        for from in c.env_from.take().unwrap_or_default() {
            if let Some(cm) = from.config_map_ref {
                for (k, v) in config.get(&cm.name).cloned().unwrap_or_default() {
                    if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
                        continue;
                    }
                    let v = stack.rewrite(&name, &v)?;
                    values.insert(k.clone(), v.clone());
                    out.push(env(&k, v));
                }
            }
        }
        for e in c.env.take().unwrap_or_default() {
            let value = match e
                .value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
            {
                Some(r) => stack.secret(&r.name, &r.key)?,
                None => stack.rewrite(
                    &name,
                    &expand(e.value.as_deref().unwrap_or_default(), &values),
                )?,
            };
            values.insert(e.name.clone(), value.clone());
            out.push(env(&e.name, value));
        }
        c.env = Some(out);
    }
    Ok(d.into())
}

fn store(
    name: &str,
    image: &str,
    command: Vec<String>,
    env_vars: Vec<EnvVar>,
    data: &Path,
    data_path: &str,
    extra: Option<(&Path, &str)>,
) -> Object {
    let mut mounts = vec![mount("data", data_path, false)];
    let mut volumes = vec![host_path("data", data)];
    if let Some((dir, path)) = extra {
        mounts.push(mount("config", path, true));
        volumes.push(host_path("config", dir));
    }
    let container = Container {
        name: name.to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: Some("Never".to_owned()),
        command: (!command.is_empty()).then_some(command),
        env: Some(env_vars),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    Deployment {
        metadata: meta(name, NS_APP, labels(name, "store")),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: selector(name),
            template: PodTemplateSpec {
                metadata: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    labels: Some(labels(name, "store")),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    host_network: Some(true),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
    .into()
}

/// The data stores of the smoke: the test images of PostgreSQL (superuser
/// `octollm`, database `octollm`; the caller creates `octollm_knowledge`)
/// and Redis (its config, with `requirepass`, written by the caller into
/// `<dir>/redis-config/redis.conf`).
pub fn stores(stack: &PodmanStack) -> Result<Vec<Object>> {
    let mut pg = store(
        POSTGRES,
        "localhost/octollm/postgres:15",
        Vec::new(),
        vec![
            env("POSTGRES_USER", "octollm"),
            env("POSTGRES_DB", "octollm"),
            env(
                "POSTGRES_PASSWORD",
                stack.secret(crate::services::POSTGRES_SECRET, "app-password")?,
            ),
        ],
        &stack.dir.join("volumes/postgres/data"),
        "/var/lib/postgresql/data",
        None,
    );
    if let Object::Deployment(d) = &mut pg
        && let Some(c) = d
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .and_then(|p| p.containers.first_mut())
    {
        c.args = Some(vec![
            "-c".into(),
            format!("port={}", stack.port(POSTGRES)?),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
        ]);
    }
    let redis = store(
        REDIS,
        "localhost/octollm/redis:7",
        vec![
            "/usr/bin/redis-server".into(),
            "/etc/redis/redis.conf".into(),
        ],
        Vec::new(),
        &stack.dir.join("volumes/redis/data"),
        "/var/lib/redis",
        Some((&stack.dir.join("redis-config"), "/etc/redis")),
    );
    Ok(vec![pg, redis])
}

/// The services of the dev rendering, reshaped for `podman kube play`.
pub fn services(root: &Path, stack: &PodmanStack) -> Result<Vec<Object>> {
    let objects = render(root, Overlay::Dev)?;
    let config: BTreeMap<String, BTreeMap<String, String>> = objects
        .iter()
        .filter_map(|o| match o {
            Object::ConfigMap(c) if o.namespace() == Some(NS_APP) => {
                Some((o.name().to_owned(), c.data.clone().unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    objects
        .iter()
        .filter_map(|o| match o {
            Object::Deployment(d) if o.namespace() == Some(NS_APP) => {
                Some(service_deployment(stack, d, &config))
            }
            _ => None,
        })
        .collect()
}

/// The host directories the overlay mounts: (path, whether a Secret's).
pub fn host_dirs(objects: &[Object]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = objects
        .iter()
        .filter_map(Object::pod_spec)
        .flat_map(|p| p.volumes.iter().flatten())
        .filter_map(|v| v.host_path.as_ref().map(|h| PathBuf::from(&h.path)))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}
