//! The podman overlay: the same Deployments, wired to this machine's ports.

use std::collections::BTreeMap;

use k8s_manifests::podman::{self, PodmanStack};
use k8s_manifests::{Object, repo_root, to_yaml};

fn stack() -> PodmanStack {
    let ports: BTreeMap<String, u16> = podman::components()
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c.to_owned(), 5300 + i as u16))
        .collect();
    let secrets = [
        ("octollm-api-token", "token"),
        ("octollm-service-token", "token"),
        ("octollm-api-token", "reflex-user-tiers"),
        ("octollm-capability-key", "key"),
        ("octollm-reflex-key", "key"),
        ("octollm-llm-sim-admin", "token"),
        ("octollm-postgres", "app-password"),
        ("octollm-redis", "password"),
    ]
    .into_iter()
    .map(|(s, k)| ((s.to_owned(), k.to_owned()), format!("secret-of-{s}-{k}")))
    .collect();
    PodmanStack {
        ports,
        secrets,
        dir: "/tmp/kp".into(),
        image_prefix: "localhost/octollm".into(),
    }
}

#[test]
fn services_are_rewired_to_host_ports_and_keep_their_hardening() {
    let stack = stack();
    let objects = podman::services(&repo_root(), &stack).unwrap();
    assert_eq!(objects.len(), 9);
    let yaml = to_yaml(&objects).unwrap();
    assert!(!yaml.contains(".svc:"), "a cluster address is left");
    assert!(!yaml.contains("$("), "an unexpanded reference is left");
    assert!(!yaml.contains("secretKeyRef") && !yaml.contains("configMapRef"));
    assert!(!yaml.contains("OTEL_EXPORTER_OTLP_ENDPOINT"));
    assert!(yaml.contains(
        "postgres://octollm:secret-of-octollm-postgres-app-password@127.0.0.1:5300/octollm"
    ));
    for o in &objects {
        let Object::Deployment(_) = o else {
            panic!("{} is not a Deployment", o.id())
        };
        let pod = o.pod_spec().unwrap();
        assert_eq!(pod.host_network, Some(true));
        let c = &pod.containers[0];
        let env: BTreeMap<_, _> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.clone().unwrap_or_default()))
            .collect();
        let listen = env
            .get("OCTOLLM_LISTEN")
            .or(env.get("LLM_SIM_LISTEN"))
            .unwrap();
        assert_eq!(
            *listen,
            format!("127.0.0.1:{}", stack.ports[o.name()]),
            "{}",
            o.name()
        );
        assert_eq!(
            c.image.as_deref(),
            Some(
                format!(
                    "localhost/octollm/{}:{}",
                    o.name(),
                    env!("CARGO_PKG_VERSION")
                )
                .as_str()
            )
        );
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            pod.security_context.as_ref().unwrap().run_as_user,
            Some(10001)
        );
        assert!(pod.volumes.iter().flatten().all(|v| {
            v.host_path
                .as_ref()
                .is_some_and(|h| h.path.starts_with("/tmp/kp/"))
        }));
    }
    let orchestrator = yaml
        .split("\n---\n")
        .find(|d| d.contains("name: orchestrator\n"))
        .unwrap();
    assert!(
        orchestrator.contains("planner=http://127.0.0.1:5304"),
        "{orchestrator}"
    );
}

#[test]
fn a_missing_secret_value_is_an_error() {
    let mut stack = stack();
    stack
        .secrets
        .remove(&("octollm-redis".to_owned(), "password".to_owned()));
    let error = podman::services(&repo_root(), &stack)
        .unwrap_err()
        .to_string();
    assert!(error.contains("octollm-redis"), "{error}");
}
