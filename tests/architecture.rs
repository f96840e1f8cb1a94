//! The layout README's "Architecture" section describes, kept true: the `use crate::` and
//! `super::` edges between the modules of `src/` form no cycle, and no source file grows
//! past about 500 lines unless its first comment says why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of the crate (`session::store`, …) → its source, test modules left out.
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // A patched copy of a dependency, not a module of ours.
                if !path.ends_with("vendor") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let text = match text.find("#[cfg(test)]\nmod tests") {
                    Some(i) => text[..i].to_owned(),
                    None => text,
                };
                out.insert(module_name(&root, &path), text);
            }
        }
    }
    out
}

fn module_name(root: &Path, path: &Path) -> String {
    let rel: PathBuf = path.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The module a path names: the longest prefix of it that is a module.
fn resolve(path: &[&str], modules: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

/// `module → modules it imports` through `crate::…` and `super::…` paths.
fn edges(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, text) in modules {
        let here: Vec<&str> = name.split("::").filter(|s| !s.is_empty()).collect();
        for (i, _) in text
            .match_indices("crate::")
            .chain(text.match_indices("super::"))
        {
            if i > 0 {
                let before = text.as_bytes()[i - 1];
                if before.is_ascii_alphanumeric() || before == b'_' || before == b':' {
                    continue;
                }
            }
            let path: Vec<&str> = text[i..]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            let mut target: Vec<&str> = Vec::new();
            let mut rest = &path[..];
            if rest.first() == Some(&"crate") {
                rest = &rest[1..];
            } else {
                target.extend(&here);
                while rest.first() == Some(&"super") {
                    target.pop();
                    rest = &rest[1..];
                }
            }
            target.extend(rest);
            if let Some(t) = resolve(&target, modules) {
                if &t != name && !t.is_empty() {
                    out.entry(name.clone()).or_default().insert(t);
                }
            }
        }
    }
    out
}

/// A cycle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut done, &mut Vec::new()))
}

#[test]
fn module_imports_form_no_cycle() {
    let modules = modules();
    assert!(modules.contains_key("session::store"), "modules were found");
    let graph = edges(&modules);
    assert!(
        graph
            .get("proxy::serving")
            .is_some_and(|e| e.contains("session")),
        "edges were found"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("modules import each other: {}", cycle.join(" -> "));
    }
}

#[test]
fn top_level_modules_depend_on_each_other_one_way() {
    let graph = edges(&modules());
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &graph {
        let a = from.split("::").next().unwrap().to_owned();
        for to in tos {
            let b = to.split("::").next().unwrap().to_owned();
            if a != b {
                top.entry(a.clone()).or_default().insert(b);
            }
        }
    }
    if let Some(cycle) = find_cycle(&top) {
        panic!(
            "top-level modules import each other: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", ["b"].as_slice()),
        ("b", ["c"].as_slice()),
        ("c", ["a"].as_slice()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph).map(|c| c.len()),
        Some(4),
        "a -> b -> c -> a"
    );
}

#[test]
fn no_source_file_is_over_500_lines_unless_its_first_comment_says_why() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("vendor") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests at the end do not count.
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => &text[..i],
                None => &text[..],
            };
            let lines = code.lines().count();
            let head: String = text
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .collect::<Vec<_>>()
                .join(" ");
            if lines > 520 && !head.contains("lines") {
                long.push(format!("{} ({lines} lines)", path.display()));
            }
        }
    }
    assert!(long.is_empty(), "too long without a reason: {long:?}");
}
