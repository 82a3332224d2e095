//! The import rules of the crate, checked on every `cargo test` so the house
//! stays the way its folders say: small helpers and the protocol at the
//! bottom, the peer table above them, the node above that, the HTTP surface
//! above the node, and its clients beside it speaking HTTP. The test reads
//! the `crate::` paths of every source file (tests excluded) and fails,
//! naming file and line, on an import the table below does not allow.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The ground floor: the limits and the error type import nothing of the crate.
const BASE: &[&str] = &["error", "limits"];

/// The top-level helpers: they import only the ground floor, and every
/// module may import them.
const HELPERS: &[&str] = &[
    "error", "limits", "logging", "names", "sys", "time", "units",
];

/// What each top-level module may import besides the helpers. Read as a
/// stack: every module names only modules listed above it, so no circle
/// can form.
const ALLOWED: &[(&str, &[&str])] = &[
    ("proto", &[]),
    ("peers", &["proto"]),
    ("report", &["peers", "proto"]),
    ("cli", &["report"]),
    ("config", &["cli", "peers", "proto", "report"]),
    ("node", &["cli", "config", "peers", "proto", "report"]),
    ("http", &["node", "peers", "proto", "report", "config"]),
    ("client", &["cli", "http"]),
    (
        "cmd",
        &[
            "cli", "client", "config", "http", "node", "peers", "proto", "report",
        ],
    ),
];

/// The top-level module a source file belongs to (`src/node/sender.rs` is
/// `node`), or None for the crate root.
fn owner(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "layers")).then(|| name.to_string())
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level modules named by `crate::x` paths on one line, including
/// inside `use crate::{a, b::c}` groups.
fn imports(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        } else {
            found.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    found
}

/// Every import the rules forbid, as "file:line: a imports b".
fn violations(src: &Path) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    sources(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let Some(module) = owner(src, &file) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&file) else {
            found.push(format!("{}: unreadable", file.display()));
            continue;
        };
        for (number, line) in text.lines().enumerate() {
            // Unit tests may reach anywhere; they sit at the end of a file.
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            if line.trim_start().starts_with("//") {
                continue;
            }
            for target in imports(line) {
                // Items of the crate root itself (`crate::Error` is the error module's).
                let target = if target == "Error" {
                    "error".to_string()
                } else {
                    target
                };
                let ok = target == module
                    || HELPERS.contains(&target.as_str())
                    || allowed
                        .get(module.as_str())
                        .is_some_and(|list| list.contains(&target.as_str()))
                    || target.is_empty()
                    || target.chars().next().is_some_and(char::is_uppercase);
                let ok = if BASE.contains(&module.as_str()) {
                    target == module
                } else if HELPERS.contains(&module.as_str()) {
                    target == module || BASE.contains(&target.as_str())
                } else {
                    ok
                };
                if !ok {
                    found.push(format!(
                        "{}:{}: {module} imports {target}",
                        file.display(),
                        number + 1
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn imports_follow_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "imports against the layers:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rules_form_a_stack() {
    // Each module may import only modules listed before it: no circle.
    for (index, (module, deps)) in ALLOWED.iter().enumerate() {
        for dep in *deps {
            let position = ALLOWED.iter().position(|(name, _)| name == dep);
            assert!(
                position.is_some_and(|p| p < index),
                "{module} may import {dep}, which is not below it"
            );
        }
    }
}

#[test]
fn group_imports_are_read() {
    assert_eq!(
        imports("use crate::{node::State, peers::PeerId};"),
        ["node", "peers"]
    );
    assert_eq!(imports("x = crate::limits::MAX;"), ["limits"]);
}
