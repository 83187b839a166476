//! The crates' modules form layers: no module imports from one that
//! imports it, directly or through others (ARCHITECTURE.md, "Code map").
//!
//! A reader of the source text, not a compiler: for each file under a
//! crate's `src/` (binaries in `src/bin/` and unit tests after
//! `#[cfg(test)]` aside, comments stripped) it collects the modules named
//! by `crate::…` and `super::…` paths (in `use` trees too) and by a
//! module's use of its own submodules (`mod x;` then `x::…`), maps each to
//! the file that defines the longest matching module, and fails naming
//! every group of files that import each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every module file of a crate's `src/`, by module path.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != src.join("bin") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            out.insert(module, path);
        }
    }
    out
}

/// The file's code: before its unit tests, without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(cut) => &text[..cut],
        None => &text[..],
    };
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string (a URL) is rare in paths we care about;
            // cutting there loses nothing but the rest of that line.
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expand a `use` tree (`a::{b, c::d}`) into its paths.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    let (head, rest) = match tree.find('{') {
        None => {
            let path: Vec<String> = tree
                .split(" as ")
                .next()
                .unwrap_or("")
                .split("::")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty() && s != "*" && s != "self")
                .collect();
            return vec![path];
        }
        Some(i) => {
            let close = tree.rfind('}').filter(|&c| c > i).unwrap_or(tree.len());
            (&tree[..i], &tree[i + 1..close])
        }
    };
    let prefix: Vec<String> = head
        .split("::")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&rest[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&rest[start..]);
    let mut out = Vec::new();
    for part in parts.into_iter().filter(|p| !p.trim().is_empty()) {
        for tail in expand(part) {
            out.push(prefix.iter().cloned().chain(tail).collect());
        }
    }
    if out.is_empty() {
        out.push(prefix);
    }
    out
}

/// The modules a file's paths name, resolved against its own module path.
fn named(module: &Module, text: &str, children: &[String]) -> Vec<Module> {
    let mut paths: Vec<Vec<String>> = Vec::new();
    // `use` statements, whole trees (a statement may run over lines).
    let mut statement: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if statement.is_none() {
            let bare = trimmed
                .strip_prefix("pub(crate) ")
                .or_else(|| trimmed.strip_prefix("pub(super) "))
                .or_else(|| trimmed.strip_prefix("pub "))
                .unwrap_or(trimmed);
            if let Some(tree) = bare.strip_prefix("use ") {
                statement = Some(String::new());
                statement.as_mut().unwrap().push_str(tree);
            }
        } else if let Some(s) = statement.as_mut() {
            s.push(' ');
            s.push_str(trimmed);
        }
        if let Some(s) = statement.take_if(|s| s.contains(';')) {
            let tree = &s[..s.find(';').unwrap_or(s.len())];
            paths.extend(expand(tree));
        }
    }
    // Paths written inline: `crate::a::b`, `super::c`, `child::f`.
    for root in std::iter::once("crate")
        .chain(std::iter::once("super"))
        .chain(children.iter().map(String::as_str))
    {
        let needle = format!("{root}::");
        let mut from = 0;
        while let Some(i) = text[from..].find(&needle) {
            let at = from + i;
            let before = text[..at].chars().last();
            from = at + needle.len();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let tail: String = text[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(tail.split("::").map(str::to_string).collect());
        }
    }
    let mut out = Vec::new();
    for path in paths {
        let Some(first) = path.first() else { continue };
        let resolved: Module = match first.as_str() {
            "crate" => path[1..].to_vec(),
            "super" => {
                let mut base = module.clone();
                let mut rest = &path[..];
                while rest.first().is_some_and(|p| p == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.into_iter().chain(rest.iter().cloned()).collect()
            }
            child if children.iter().any(|c| c == child) => {
                module.iter().cloned().chain(path.iter().cloned()).collect()
            }
            _ => continue,
        };
        out.push(resolved);
    }
    out
}

/// Which files each file imports from, within one crate.
fn graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mods = modules(src);
    let mut out = BTreeMap::new();
    for (module, file) in &mods {
        let text = code(file);
        let children: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                let l = l
                    .strip_prefix("pub(crate) ")
                    .or_else(|| l.strip_prefix("pub "))
                    .unwrap_or(l);
                l.strip_prefix("mod ")?
                    .strip_suffix(';')
                    .map(str::to_string)
            })
            .collect();
        let mut targets = BTreeSet::new();
        for path in named(module, &text, &children) {
            for n in (1..=path.len()).rev() {
                if let Some(target) = mods.get(&path[..n]) {
                    if target != file {
                        targets.insert(target.clone());
                    }
                    break;
                }
            }
        }
        out.insert(file.clone(), targets);
    }
    out
}

/// Groups of files that import each other (Tarjan's strongly connected
/// components of more than one file).
fn circles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        groups: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a PathBuf) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for t in &w.graph[v] {
            if !w.index.contains_key(t) {
                visit(w, t);
                let low = w.low[t].min(w.low[v]);
                w.low.insert(v, low);
            } else if w.stack.contains(&t) {
                let low = w.index[t].min(w.low[v]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut group = Vec::new();
            while let Some(t) = w.stack.pop() {
                group.push(t.clone());
                if t == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                w.groups.push(group);
            }
        }
    }
    let mut w = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        groups: Vec::new(),
    };
    for v in graph.keys() {
        if !w.index.contains_key(v) {
            visit(&mut w, v);
        }
    }
    w.groups
}

#[test]
fn no_module_imports_from_one_that_imports_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for krate in ["schemas", "sync", "server", "tests"] {
        let src = root.join(krate).join("src");
        let g = graph(&src);
        assert!(g.len() > 3, "read too few files under {}", src.display());
        for group in circles(&g) {
            let names: Vec<String> = group
                .iter()
                .map(|f| {
                    let inside: Vec<String> = g[f]
                        .iter()
                        .filter(|t| group.contains(t))
                        .map(|t| t.strip_prefix(&src).unwrap().display().to_string())
                        .collect();
                    format!(
                        "{} -> {}",
                        f.strip_prefix(&src).unwrap().display(),
                        inside.join(", ")
                    )
                })
                .collect();
            found.push(format!("{krate}:\n  {}", names.join("\n  ")));
        }
    }
    assert!(
        found.is_empty(),
        "files that import each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_reader_sees_a_circle_when_there_is_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("web/entry")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod web;\npub mod state;\n").unwrap();
    std::fs::write(src.join("state.rs"), "use crate::web::is_page;\n").unwrap();
    std::fs::write(
        src.join("web/mod.rs"),
        "mod entry;\npub fn is_page() {}\nfn f() { entry::draw(); }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("web/entry/mod.rs"),
        "mod render;\nmod shapes;\nuse render::draw as d;\npub fn draw() { d() }\n",
    )
    .unwrap();
    std::fs::write(src.join("web/entry/shapes.rs"), "pub fn box_() {}\n").unwrap();
    // `super` here is `web::entry`, not `web`, so this names the sibling
    // and not web/mod.rs; the comment names nothing.
    std::fs::write(
        src.join("web/entry/render.rs"),
        "use super::shapes::box_; // a comment naming crate::web\npub fn draw() {}\n",
    )
    .unwrap();
    let g = graph(src);
    assert!(circles(&g).is_empty(), "{g:?}");
    // Now state imports web, and web's entry/render imports state.
    std::fs::write(
        src.join("web/entry/render.rs"),
        "use crate::{state, web::{is_page}};\npub fn draw() {}\n",
    )
    .unwrap();
    let g = graph(src);
    let found = circles(&g);
    assert_eq!(found.len(), 1, "{g:?}");
    assert_eq!(found[0].len(), 4, "{found:?}");
}
