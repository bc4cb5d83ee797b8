//! The checks catch what they are for: each test breaks a copy of the
//! rendering in one way and expects that check to name it.

use k8s_manifests::{Object, Overlay, checks, render, repo_root};
use k8s_openapi::api::networking::v1::{
    NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn base() -> Vec<Object> {
    render(&repo_root(), Overlay::Base).unwrap()
}

fn deployment<'a>(
    objects: &'a mut [Object],
    name: &str,
) -> &'a mut k8s_openapi::api::apps::v1::Deployment {
    objects
        .iter_mut()
        .find_map(|o| match o {
            Object::Deployment(d) if d.metadata.name.as_deref() == Some(name) => Some(&mut **d),
            _ => None,
        })
        .unwrap()
}

fn first_container(
    d: &mut k8s_openapi::api::apps::v1::Deployment,
) -> &mut k8s_openapi::api::core::v1::Container {
    &mut d
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
}

#[test]
fn a_container_without_limits_fails() {
    let mut objects = base();
    first_container(deployment(&mut objects, "judge-arm"))
        .resources
        .as_mut()
        .unwrap()
        .limits = None;
    let problems = checks::containers(&objects);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("judge-arm") && p.contains("no cpu limits")),
        "{problems:?}"
    );
}

#[test]
fn a_container_without_probes_fails() {
    let mut objects = base();
    first_container(deployment(&mut objects, "coder-arm")).readiness_probe = None;
    let problems = checks::containers(&objects);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("coder-arm") && p.contains("probe")),
        "{problems:?}"
    );
}

#[test]
fn a_pod_running_as_root_fails() {
    let mut objects = base();
    let d = deployment(&mut objects, "orchestrator");
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .run_as_user = Some(0);
    let problems = checks::containers(&objects);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("orchestrator") && p.contains("root")),
        "{problems:?}"
    );
    let mut objects = base();
    first_container(deployment(&mut objects, "planner-arm"))
        .security_context
        .as_mut()
        .unwrap()
        .run_as_user = Some(0);
    assert!(
        checks::containers(&objects)
            .iter()
            .any(|p| p.contains("planner-arm") && p.contains("runs as root"))
    );
}

#[test]
fn a_network_policy_opening_an_unconfigured_path_fails() {
    let mut objects = base();
    // The guardian calls nobody; let it reach PostgreSQL.
    let policy = objects
        .iter_mut()
        .find_map(|o| match o {
            Object::NetworkPolicy(n) if n.metadata.name.as_deref() == Some("guardian-arm") => {
                Some(n)
            }
            _ => None,
        })
        .unwrap();
    let spec = policy.spec.as_mut().unwrap();
    let ns = LabelSelector {
        match_labels: Some(
            [(
                "kubernetes.io/metadata.name".to_owned(),
                "octollm-data".to_owned(),
            )]
            .into(),
        ),
        ..LabelSelector::default()
    };
    let pod = LabelSelector {
        match_labels: Some([("app.kubernetes.io/name".to_owned(), "postgres".to_owned())].into()),
        ..LabelSelector::default()
    };
    spec.egress
        .get_or_insert_with(Vec::new)
        .push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(ns),
                pod_selector: Some(pod),
                ..Default::default()
            }]),
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(5432)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        });
    let problems = checks::network_policies(&objects);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("guardian-arm")
            && problems[0].contains("postgres")
            && problems[0].contains("5432")
    );
}

#[test]
fn a_configured_call_without_a_policy_fails() {
    let mut objects = base();
    objects.retain(|o| {
        !(matches!(o, Object::NetworkPolicy(_))
            && o.name() == "reflex-layer"
            && o.namespace() == Some("octollm"))
    });
    let problems = checks::network_policies(&objects);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("reflex-layer") && p.contains("no NetworkPolicy opens it")),
        "{problems:?}"
    );
}

#[test]
fn a_rule_file_missing_from_the_prometheus_rules_fails() {
    let mut objects = base();
    objects.retain(|o| !(matches!(o, Object::PrometheusRule(_)) && o.name() == "octollm-backup"));
    let problems = checks::rules(&repo_root(), &objects).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("backup.yml"));
    // A changed rule is missing too.
    let mut objects = base();
    for o in &mut objects {
        if let Object::PrometheusRule(r) = o
            && r.metadata.name.as_deref() == Some("octollm-availability")
        {
            r.spec.groups[0].rules[0].expr = "up == 2".into();
        }
    }
    assert!(
        checks::rules(&repo_root(), &objects)
            .unwrap()
            .iter()
            .any(|p| p.contains("availability.yml"))
    );
}

#[test]
fn a_dashboard_missing_from_the_config_maps_fails() {
    let mut objects = base();
    objects.retain(|o| o.name() != "dashboard-slo");
    let problems = checks::dashboards(&repo_root(), &objects).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("slo.json"));
}
