use std::collections::BTreeMap;

use k8s_manifests::{Object, Overlay, checks, render, repo_root, to_yaml};

#[test]
fn every_overlay_passes_every_check() {
    let root = repo_root();
    for overlay in Overlay::ALL {
        let objects = render(&root, overlay).unwrap();
        let problems = checks::all(&root, &objects).unwrap();
        assert!(problems.is_empty(), "{}: {problems:#?}", overlay.name());
    }
}

#[test]
fn object_ids_are_unique() {
    let objects = render(&repo_root(), Overlay::Base).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for o in &objects {
        assert!(seen.insert(o.id()), "{} twice", o.id());
    }
}

/// Kinds and counts, and the ids, of the base rendering.
#[test]
fn inventory_snapshot() {
    let objects = render(&repo_root(), Overlay::Base).unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &objects {
        *counts.entry(o.kind()).or_default() += 1;
    }
    let ids: Vec<String> = objects.iter().map(Object::id).collect();
    insta::assert_yaml_snapshot!("counts", counts);
    insta::assert_yaml_snapshot!("ids", ids);
}

/// The orchestrator's objects and policy in full, as YAML.
#[test]
fn orchestrator_snapshot() {
    let objects = render(&repo_root(), Overlay::Base).unwrap();
    let mine: Vec<Object> = objects
        .into_iter()
        .filter(|o| {
            o.namespace() == Some("octollm")
                && (o.name() == "orchestrator" || o.name() == "orchestrator-config")
        })
        .collect();
    insta::assert_snapshot!("orchestrator", to_yaml(&mine).unwrap());
}

#[test]
fn prod_differs_from_base_in_replicas_resources_and_storage() {
    let root = repo_root();
    let base = render(&root, Overlay::Base).unwrap();
    let prod = render(&root, Overlay::Prod).unwrap();
    let hpa = |objects: &[Object]| {
        objects
            .iter()
            .find_map(|o| match o {
                Object::HorizontalPodAutoscaler(h) if o.name() == "orchestrator" => {
                    h.spec.as_ref()?.min_replicas
                }
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(hpa(&base), 2);
    assert_eq!(hpa(&prod), 3);
    let claim_class = |objects: &[Object]| {
        objects.iter().find_map(|o| match o {
            Object::StatefulSet(s) if o.name() == "postgres" => {
                s.spec.as_ref()?.volume_claim_templates.as_ref()?[0]
                    .spec
                    .as_ref()?
                    .storage_class_name
                    .clone()
            }
            _ => None,
        })
    };
    assert_eq!(claim_class(&base), None);
    assert_eq!(claim_class(&prod).as_deref(), Some("ssd"));
}

#[test]
fn secrets_are_referenced_never_rendered() {
    let objects = render(&repo_root(), Overlay::Base).unwrap();
    let yaml = to_yaml(&objects).unwrap();
    assert!(!yaml.contains("\nkind: Secret\n"));
    // Passwords reach URLs only through $(VAR) expansion of Secret-sourced vars.
    assert!(yaml.contains(
        "postgres://octollm:$(DATABASE_PASSWORD)@postgres.octollm-data.svc:5432/octollm"
    ));
    assert!(yaml.contains("secretKeyRef"));
}

/// Every Secret the rendering references, by namespace, with the keys
/// used (a whole-Secret volume shows as `*`): what an operator must create.
#[test]
fn referenced_secrets_snapshot() {
    use std::collections::BTreeSet;
    let objects = render(&repo_root(), Overlay::Base).unwrap();
    let mut refs: BTreeSet<String> = BTreeSet::new();
    for o in &objects {
        let Some(pod) = o.pod_spec() else { continue };
        let ns = o.namespace().unwrap_or_default();
        for c in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            for e in c.env.iter().flatten() {
                if let Some(r) = e
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref())
                {
                    refs.insert(format!("{ns}/{} {}", r.name, r.key));
                }
            }
        }
        for v in pod.volumes.iter().flatten() {
            if let Some(s) = &v.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                match &s.items {
                    Some(items) => items.iter().for_each(|i| {
                        refs.insert(format!("{ns}/{name} {}", i.key));
                    }),
                    None => {
                        refs.insert(format!("{ns}/{name} *"));
                    }
                }
            }
        }
    }
    for o in &objects {
        if let Object::AlertmanagerConfig(a) = o {
            for r in &a.spec.receivers {
                for w in &r.webhook_configs {
                    refs.insert(format!(
                        "{}/{} {}",
                        o.namespace().unwrap_or_default(),
                        w.url_secret.name,
                        w.url_secret.key
                    ));
                }
            }
        }
    }
    insta::assert_yaml_snapshot!("secrets", refs);
}

/// YAML 1.1 readers (checkov, kubernetes-validate: PyYAML) read a bare `=`
/// as the "value" type; every such scalar is quoted.
#[test]
fn yaml_is_safe_for_yaml_1_1_readers() {
    let yaml = to_yaml(&render(&repo_root(), Overlay::Base).unwrap()).unwrap();
    assert!(yaml.contains("matchType: '='"));
    assert!(
        !yaml
            .lines()
            .any(|l| l.ends_with(": =") || l.ends_with("- ="))
    );
    assert_eq!(
        k8s_manifests::yaml_1_1_safe("a: =\nb:\n- =\nc: '='\n"),
        "a: '='\nb:\n- '='\nc: '='\n"
    );
}

/// Alertmanager routes and inhibits as the local routing template does,
/// and Prometheus keeps 30 days and sends to it.
#[test]
fn alerting_is_the_local_stacks() {
    let objects = render(&repo_root(), Overlay::Prod).unwrap();
    let config = objects
        .iter()
        .find_map(|o| match o {
            Object::AlertmanagerConfig(a) => Some(a.spec.clone()),
            _ => None,
        })
        .unwrap();
    insta::assert_yaml_snapshot!("alertmanager_config", config);
    let routes: Vec<(String, String)> = config
        .route
        .routes
        .iter()
        .map(|r| (r.matchers[0].value.clone(), r.receiver.clone()))
        .collect();
    assert_eq!(
        routes,
        [
            ("none", "heartbeat"),
            ("critical", "pagerduty"),
            ("warning", "slack"),
            ("info", "email")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert_eq!(config.inhibit_rules.len(), 2);
    assert!(
        config
            .receivers
            .iter()
            .all(|r| r.webhook_configs[0].url_secret.name == "alertmanager-receivers")
    );
    let prometheus = objects
        .iter()
        .find_map(|o| match o {
            Object::Prometheus(p) => Some(p.spec.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(prometheus.retention, "30d");
    assert_eq!(
        prometheus.alerting.alertmanagers[0].name,
        "alertmanager-operated"
    );
    assert_eq!(prometheus.replicas, 2);
}
