//! `deploy/k8s/` is exactly what the code renders. To regenerate:
//! `cargo xtask deploy --target k8s --dry-run --out deploy/k8s`
//! (or `K8S_MANIFESTS_BLESS=1 cargo test -p k8s-manifests`).

use k8s_manifests::{HEADER, kustomize, repo_root};

#[test]
fn committed_files_match_the_rendering() {
    let root = repo_root();
    let dir = root.join("deploy/k8s");
    let files = kustomize::files(&root).unwrap();
    if std::env::var_os("K8S_MANIFESTS_BLESS").is_some() {
        for (path, text) in &files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }
    let mut stale = Vec::new();
    for (path, text) in &files {
        assert!(
            text.starts_with(HEADER),
            "{path} lacks the generated header"
        );
        match std::fs::read_to_string(dir.join(path)) {
            Ok(committed) if committed == *text => {}
            Ok(_) => stale.push(format!("{path} differs")),
            Err(_) => stale.push(format!("{path} is missing")),
        }
    }
    // And nothing generated-looking is left over.
    let expected: std::collections::BTreeSet<String> =
        files.iter().map(|(p, _)| p.clone()).collect();
    for sub in ["base", "overlays/dev", "overlays/prod"] {
        for entry in std::fs::read_dir(dir.join(sub)).into_iter().flatten() {
            let path = format!("{sub}/{}", entry.unwrap().file_name().to_string_lossy());
            if path.ends_with(".yaml") && !expected.contains(&path) {
                stale.push(format!("{path} is not generated any more"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "deploy/k8s is stale ({stale:?}); run `cargo xtask deploy --target k8s --dry-run --out deploy/k8s`"
    );
}
