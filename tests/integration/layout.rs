//! The shape the code keeps (ARCHITECTURE.md): no circle of imports between the top-level
//! modules of either crate, and no function longer than a screen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a function may be, from its `fn` line to its closing brace.
const MAX_FUNCTION_LINES: usize = 80;

/// The crates' source folders, from the repository root.
const CRATES: [&str; 2] = ["crates/descent/src", "crates/descent-cli/src"];

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    crate::common::files_under(dir, "rs")
}

/// The top-level module a file belongs to (`train` for `src/train/engine.rs`), or `None` for the
/// crate root.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// The text of a file without its `#[cfg(test)]` module and comments' contents.
fn code_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start() == "#[cfg(test)]" {
            break; // the tests at the end of a file may reach anywhere
        }
        lines.push(line);
    }
    lines
}

/// The top-level modules each module names with `crate::`.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = sources(src).iter().filter_map(|f| top_module(src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in sources(src) {
        let Some(from) = top_module(src, &file) else { continue };
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for line in code_lines(&text) {
            let code = line.split("//").next().unwrap_or_default();
            for (index, _) in code.match_indices("crate::") {
                let rest = &code[index + "crate::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if name != from && modules.contains(&name) {
                    graph.entry(from.clone()).or_default().insert(name);
                }
            }
        }
    }
    graph
}

/// A circle through `start`, if there is one: the modules on it.
fn circle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![start.to_string()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

/// For each folder module (`train/`, `data/`, ...) of `src`: the sibling files each of its
/// files names with `super::` or `crate::FOLDER::` (the folder's `mod.rs`, which re-exports
/// them, is not a sibling).
fn sibling_imports(src: &Path) -> Vec<(String, BTreeMap<String, BTreeSet<String>>)> {
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let folder = entry.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        let name = folder.file_name().unwrap().to_str().unwrap().to_string();
        let siblings: BTreeSet<String> = std::fs::read_dir(&folder)
            .unwrap()
            .filter_map(|e| e.unwrap().path().file_stem()?.to_str().map(String::from))
            .filter(|stem| stem != "mod" && stem != "tests")
            .collect();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for sibling in &siblings {
            let Ok(text) = std::fs::read_to_string(folder.join(format!("{sibling}.rs"))) else { continue };
            for line in code_lines(&text) {
                let code = line.split("//").next().unwrap_or_default();
                let crate_path = format!("crate::{name}::");
                for prefix in ["super::", crate_path.as_str()] {
                    for (index, _) in code.match_indices(prefix) {
                        let rest = &code[index + prefix.len()..];
                        let target: String =
                            rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                        if target != *sibling && siblings.contains(&target) {
                            graph.entry(sibling.clone()).or_default().insert(target);
                        }
                    }
                }
            }
        }
        folders.push((name, graph));
    }
    folders
}

/// Every circle of `graphs` (named graphs of imports), and how many imports they hold.
fn circles(graphs: Vec<(String, BTreeMap<String, BTreeSet<String>>)>) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    let mut edges = 0;
    for (name, graph) in graphs {
        edges += graph.values().map(BTreeSet::len).sum::<usize>();
        let on_circles = graph.keys().filter_map(|module| circle_through(&graph, module));
        found.extend(on_circles.map(|circle| format!("{name}: {}", circle.join(" -> "))));
    }
    (found, edges)
}

#[test]
fn no_file_of_a_folder_module_reaches_itself_through_its_siblings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graphs = CRATES.iter().flat_map(|krate| {
        let folders = sibling_imports(&root.join(krate));
        folders.into_iter().map(move |(folder, graph)| (format!("{krate}/{folder}"), graph))
    });
    let (found, edges) = circles(graphs.collect());
    assert!(edges > 5, "only {edges} imports between sibling files were found: the scan is broken");
    assert!(found.is_empty(), "circles between sibling files:\n{}", found.join("\n"));
}

#[test]
fn no_top_level_module_reaches_itself_through_its_imports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graphs = CRATES.iter().map(|krate| (krate.to_string(), imports(&root.join(krate))));
    let (found, edges) = circles(graphs.collect());
    assert!(edges > 20, "only {edges} imports between modules were found: the scan is broken");
    assert!(found.is_empty(), "module circles:\n{}", found.join("\n"));
}

#[test]
fn no_function_is_longer_than_80_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut long = Vec::new();
    let mut functions = 0;
    for krate in CRATES {
        for file in sources(&root.join(krate)) {
            let text = std::fs::read_to_string(&file).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (start, line) in lines.iter().enumerate() {
                let trimmed = line.trim_start();
                let is_fn =
                    ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn ", "const fn ", "pub const fn "]
                        .iter()
                        .any(|prefix| trimmed.starts_with(prefix))
                        || trimmed.starts_with("unsafe fn ")
                        || trimmed.starts_with("pub unsafe fn ");
                if !is_fn || trimmed.ends_with(';') {
                    continue;
                }
                let indent = &line[..line.len() - trimmed.len()];
                let close = format!("{indent}}}");
                let Some(length) = lines[start..].iter().position(|l| *l == close) else { continue };
                functions += 1;
                if length + 1 > MAX_FUNCTION_LINES {
                    let name = trimmed.split('(').next().unwrap_or(trimmed);
                    long.push(format!(
                        "{}:{}: {name} has {} lines",
                        file.strip_prefix(root).unwrap().display(),
                        start + 1,
                        length + 1
                    ));
                }
            }
        }
    }
    assert!(functions > 300, "only {functions} functions were found: the scan is broken");
    assert!(long.is_empty(), "functions over {MAX_FUNCTION_LINES} lines:\n{}", long.join("\n"));
}
