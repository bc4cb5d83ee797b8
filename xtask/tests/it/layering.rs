//! The layers of ARCHITECTURE.md ("Layers"), enforced by reading the code:
//! in xtask, `util` imports nothing else of xtask, `prom` only `util`,
//! `stack` only `prom` and `util`, and nothing imports `commands` but
//! `main.rs` and the commands themselves; and no two sibling modules of
//! xtask or of the orchestrator import each other, directly or around a
//! circle.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A source file as its module path: `src/stack/deploy.rs` → `stack::deploy`,
/// `src/stack/mod.rs` → `stack`, `src/main.rs` → `` (the crate root).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "main" | "lib")
    ) {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The code without comments and without `#[cfg(test)] mod tests { … }`
/// (tests may reach anywhere).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands a use tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        return vec![path.to_owned()];
    };
    let prefix = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|item| !item.trim().is_empty())
        .flat_map(expand)
        .map(|path| match path.as_str() {
            "self" => prefix.to_owned(),
            _ => format!("{prefix}::{path}"),
        })
        .collect()
}

/// Every module path a file refers to: its `use` trees and any inline
/// `crate::…`/`super::…` path, resolved to absolute module paths.
fn references(module: &str, code: &str) -> BTreeSet<String> {
    let mut paths = Vec::new();
    let mut lines = code.lines();
    while let Some(line) = lines.next() {
        let line = line.trim_start();
        let Some(tree) = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|p| line.strip_prefix(p))
        else {
            continue;
        };
        let mut statement = tree.to_owned();
        while !statement.contains(';') {
            match lines.next() {
                Some(more) => statement.push_str(more),
                None => break,
            }
        }
        let statement = statement.split(';').next().unwrap_or_default();
        paths.extend(expand(&statement.split_whitespace().collect::<String>()));
    }
    for anchor in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(anchor) {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            paths.push(tail[..end].trim_end_matches(':').to_owned());
            rest = &tail[anchor.len()..];
        }
    }
    // `super` of module `a::b` is `a`, whether it lives in a/b.rs or a/b/mod.rs.
    let parent = |m: &str| {
        m.rsplit_once("::")
            .map_or(String::new(), |(p, _)| p.to_owned())
    };
    paths
        .into_iter()
        .filter_map(|path| {
            let mut segments: Vec<&str> = path.split("::").collect();
            let mut base = match segments.first() {
                Some(&"crate") => String::new(),
                Some(&"super") => module.to_owned(),
                Some(&"self") => module.to_owned(),
                _ => return None,
            };
            if segments.first() == Some(&"crate") || segments.first() == Some(&"self") {
                segments.remove(0);
            }
            while segments.first() == Some(&"super") {
                base = parent(&base);
                segments.remove(0);
            }
            let joined = segments.join("::");
            Some(match (base.is_empty(), joined.is_empty()) {
                (true, _) => joined,
                (false, true) => base,
                (false, false) => format!("{base}::{joined}"),
            })
        })
        .collect()
}

struct Crate {
    /// module → the modules it refers to (resolved to existing modules).
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Crate {
    fn read(src: &Path) -> Self {
        let files = rust_files(src);
        let modules: BTreeMap<String, PathBuf> = files
            .iter()
            .map(|f| (module_of(src, f), f.clone()))
            .collect();
        let known: BTreeSet<&String> = modules.keys().collect();
        let resolve = |path: &str| -> Option<String> {
            // The longest prefix that is a module of this crate.
            let mut candidate = path.to_owned();
            loop {
                if known.contains(&candidate) {
                    return Some(candidate);
                }
                candidate = candidate.rsplit_once("::")?.0.to_owned();
            }
        };
        let edges = modules
            .iter()
            .map(|(module, file)| {
                let text = fs::read_to_string(file).unwrap_or_default();
                let targets = references(module, &code_of(&text))
                    .iter()
                    .filter_map(|p| resolve(p))
                    .filter(|t| t != module && !t.is_empty())
                    .collect();
                (module.clone(), targets)
            })
            .collect();
        Self { edges }
    }

    fn layer_of(module: &str) -> &str {
        module.split("::").next().unwrap_or("")
    }

    /// (from, to) pairs that break the layer rules.
    fn layer_violations(&self, allowed: &[(&str, &[&str])]) -> Vec<String> {
        let mut found = Vec::new();
        for (from, targets) in &self.edges {
            let Some((_, may)) = allowed.iter().find(|(l, _)| *l == Self::layer_of(from)) else {
                continue;
            };
            for to in targets {
                let to_layer = Self::layer_of(to);
                if to_layer != Self::layer_of(from) && !may.contains(&to_layer) {
                    found.push(format!("{from} imports {to}"));
                }
            }
        }
        found
    }

    /// Each edge lifted to the siblings it connects: `a::x::y → a::z` is
    /// also `a::x → a::z`, so a folder and a file importing each other
    /// (through any of the folder's files) form a circle too.
    fn lifted(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut edges = self.edges.clone();
        for (from, targets) in &self.edges {
            for to in targets {
                let (a, b): (Vec<&str>, Vec<&str>) =
                    (from.split("::").collect(), to.split("::").collect());
                let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
                if common < a.len() && common < b.len() {
                    let lift = |parts: &[&str]| parts[..=common].join("::");
                    edges.entry(lift(&a)).or_default().insert(lift(&b));
                }
            }
        }
        edges
    }

    /// Circles between modules that are not ancestors of one another (a
    /// parent declares its children; that is not an import circle).
    fn circles(&self) -> Vec<String> {
        let edges = self.lifted();
        let related = |a: &str, b: &str| {
            a.is_empty()
                || b.is_empty()
                || b.starts_with(&format!("{a}::"))
                || a.starts_with(&format!("{b}::"))
        };
        // Sorted members → the circle as found, so each is reported once.
        let mut found = BTreeMap::new();
        for start in edges.keys() {
            // Depth-first search for a path back to `start`.
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((node, path)) = stack.pop() {
                for next in edges.get(&node).into_iter().flatten() {
                    if related(&node, next) {
                        continue;
                    }
                    if next == start {
                        let mut members = path.clone();
                        members.sort();
                        let mut circle = path.clone();
                        circle.push(next.clone());
                        found
                            .entry(members.join(","))
                            .or_insert_with(|| circle.join(" → "));
                    } else if seen.insert(next.clone()) {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
        }
        found.into_values().collect()
    }
}

#[test]
fn xtask_layers_point_down_only() {
    let xtask = Crate::read(&workspace().join("xtask/src"));
    let violations = xtask.layer_violations(&[
        ("util", &[]),
        ("prom", &["util"]),
        ("stack", &["prom", "util"]),
        ("commands", &["stack", "prom", "util"]),
    ]);
    assert!(
        violations.is_empty(),
        "xtask's layers (ARCHITECTURE.md, \"Layers\") are broken:\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn no_import_circles_in_xtask_or_the_orchestrator() {
    for src in ["xtask/src", "orchestrator/src"] {
        let circles = Crate::read(&workspace().join(src)).circles();
        assert!(
            circles.is_empty(),
            "import circles in {src}:\n  {}",
            circles.join("\n  ")
        );
    }
}

#[test]
fn the_checker_sees_a_violation_and_a_circle() {
    let dir = std::env::temp_dir().join(format!("layering-{}", std::process::id()));
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write("main.rs", "mod commands;\nmod stack;\n");
    write(
        "stack/mod.rs",
        "mod a;\nmod b;\nuse crate::commands::deploy;\n",
    );
    write(
        "stack/a.rs",
        "use super::b::{self, Thing};\nuse super::e::W;\n",
    );
    write("stack/b.rs", "fn f() { crate::stack::a::g(); }\n");
    write("stack/c/mod.rs", "mod d;\nuse super::a::Y;\n");
    write("stack/c/d.rs", "");
    write("stack/e.rs", "use crate::stack::c::d::Z;\n");
    write("commands/mod.rs", "pub mod deploy;\n");
    write("commands/deploy.rs", "use crate::stack::{a::X, b};\n");
    let fake = Crate::read(&dir);
    let violations = fake.layer_violations(&[("stack", &[]), ("commands", &["stack"])]);
    assert_eq!(violations, ["stack imports commands::deploy"]);
    let circles = fake.circles();
    assert!(
        circles
            .iter()
            .any(|c| c.contains("stack::a → stack::b → stack::a")),
        "{circles:?}"
    );
    fs::remove_dir_all(&dir).unwrap();
}
