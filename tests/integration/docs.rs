//! The README and the book in `docs/` stay true to the repository and to the binary: every
//! relative link resolves, every page of `docs/` is in its table of contents, and every `descent`
//! command and flag their code shows exists in that command's `--help`.
//!
//! No network and no training: the files are read, and the binary runs only with `--help`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::common::descent;

/// The repository root (the root package's manifest lives there).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file under `docs/`.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    pages.extend(markdown_under(&root().join("docs")));
    pages
}

/// Every `.md` file under `dir`, recursively, sorted.
fn markdown_under(dir: &Path) -> Vec<PathBuf> {
    crate::common::files_under(dir, "md")
}

/// A page's path as the failures name it: relative to the repository root.
fn shown(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

/// One line of a Markdown page: its number (from 1), its text, and whether it belongs to a fenced
/// code block (the fence lines included).
struct Line {
    number: usize,
    text: String,
    fenced: bool,
}

/// The lines of `text`, each marked fenced or not. A fence opens with three or more backticks
/// or tildes and closes with at least as many of the same character.
fn lines(text: &str) -> Vec<Line> {
    let mut fence: Option<(char, usize)> = None;
    let mut lines = Vec::new();
    for (index, text) in text.lines().enumerate() {
        let trimmed = text.trim_start();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|c| *c == m).count());
        let is_fence = run >= 3;
        let fenced = fence.is_some() || is_fence;
        match (fence, marker) {
            (None, Some(m)) if is_fence => fence = Some((m, run)),
            (Some((open, length)), Some(m))
                if m == open && run >= length && trimmed[run * m.len_utf8()..].trim().is_empty() =>
            {
                fence = None
            }
            _ => {}
        }
        lines.push(Line { number: index + 1, text: text.to_string(), fenced });
    }
    lines
}

/// `line` without its inline code spans (the text between pairs of backticks).
fn without_code_spans(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

/// The targets of the Markdown links on one line outside code: `[text](target)`,
/// `![alt](target)` and reference definitions `[label]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut targets = Vec::new();
    let trimmed = line.trim_start();
    if trimmed.starts_with('[')
        && let Some(end) = trimmed.find("]:")
        && !trimmed[..end].contains("](")
        && let Some(target) = trimmed[end + 2..].split_whitespace().next()
    {
        targets.push(target.trim_matches(['<', '>']).to_string());
    }
    let mut rest = line.as_str();
    while let Some(at) = rest.find("](") {
        let opened = rest[..at].contains('[');
        let after = &rest[at + 2..];
        let target = match after.strip_prefix('<') {
            Some(inside) => inside.split('>').next().unwrap_or_default(),
            None => after.split(|c: char| c == ')' || c.is_whitespace()).next().unwrap_or_default(),
        };
        if opened {
            targets.push(target.to_string());
        }
        rest = after;
    }
    targets
}

/// Whether a link target names a scheme (`https:`, `mailto:`, ...) rather than a path.
fn has_scheme(target: &str) -> bool {
    target.split_once(':').is_some_and(|(scheme, _)| {
        scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    })
}

/// The file or folder a relative link from `page` points to, or `None` for a link that is not
/// a path in the repository (a scheme, or an anchor on the same page).
fn link_path(page: &Path, target: &str) -> Option<PathBuf> {
    if has_scheme(target) || target.starts_with('#') {
        return None;
    }
    let path = target.split(['#', '?']).next().unwrap_or_default().replace("%20", " ");
    Some(match path.strip_prefix('/') {
        Some(from_root) => root().join(from_root),
        None => page.parent().unwrap().join(path),
    })
}

/// Every relative link of every page: (page, line number, target, where it points).
fn relative_links() -> Vec<(PathBuf, usize, String, PathBuf)> {
    let mut links = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for line in lines(&text).into_iter().filter(|line| !line.fenced) {
            for target in link_targets(&line.text) {
                if let Some(path) = link_path(&page, &target) {
                    links.push((page.clone(), line.number, target, path));
                }
            }
        }
    }
    links
}

/// The pages docs/SUMMARY.md lists, relative to `docs/` (fragments stripped), and the failures
/// of entries that point outside `docs/`.
fn summary_entries(docs: &Path) -> (BTreeSet<PathBuf>, Vec<String>) {
    let summary = docs.join("SUMMARY.md");
    let text = std::fs::read_to_string(&summary).expect("docs/SUMMARY.md exists");
    let (mut listed, mut failures) = (BTreeSet::new(), Vec::new());
    for line in lines(&text).into_iter().filter(|line| !line.fenced) {
        let entry = line.text.trim_start();
        if !(entry.starts_with("- [") || entry.starts_with("* [")) {
            continue;
        }
        for target in link_targets(&line.text) {
            match link_path(&summary, &target).map(|path| normalize(&path)) {
                Some(path) if path.starts_with(normalize(docs)) => {
                    listed.insert(path.strip_prefix(normalize(docs)).unwrap().to_path_buf());
                }
                _ => failures
                    .push(format!("docs/SUMMARY.md:{}: `{target}` is not a page in docs/", line.number)),
            }
        }
    }
    (listed, failures)
}

/// `path` with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let links = relative_links();
    let mut failures: Vec<String> = links
        .iter()
        .filter(|(_, _, _, path)| !path.exists())
        .map(|(page, number, target, _)| format!("{}:{number}: `{target}` does not exist", shown(page)))
        .collect();

    let docs = root().join("docs");
    assert!(docs.join("book.toml").is_file(), "docs/book.toml (mdBook's configuration) is missing");
    let (listed, summary_failures) = summary_entries(&docs);
    failures.extend(summary_failures);
    for page in markdown_under(&docs) {
        let relative = page.strip_prefix(&docs).unwrap().to_path_buf();
        if relative != Path::new("SUMMARY.md") && !listed.contains(&relative) {
            failures.push(format!("{}: not listed in docs/SUMMARY.md", shown(&page)));
        }
    }

    assert!(failures.is_empty(), "{} broken links or pages:\n{}", failures.len(), failures.join("\n"));
    // Not vacuous: the README and the book link to each other and to the repository's files.
    assert!(links.len() >= 50, "only {} relative links found", links.len());
    assert!(listed.len() >= 10, "docs/SUMMARY.md lists only {} pages", listed.len());
}

/// A `descent` command shown in a page's code: the subcommand (`["config", "show"]` for a
/// nested one) and every `--flag` after it.
#[derive(Debug)]
struct Invocation {
    command: Vec<String>,
    flags: Vec<String>,
}

/// Separators after which a shell line runs something else (a pipe, a list, a redirection).
const SEPARATORS: [&str; 8] = ["|", "||", "&&", ";", "&", ">", ">>", "2>"];

/// The `descent` invocation on one line of code, if the line runs `descent SUB ...` or
/// `cargo run ... -- SUB ...` (after an optional `$ ` prompt and `NAME=value` variables). Lines
/// of output, `cargo run --example`, and `cargo run -- --help` without a subcommand give `None`.
fn invocation(line: &str) -> Option<Invocation> {
    let line = line.trim();
    let line = line.strip_prefix("$ ").unwrap_or(line);
    let mut words = line.split_whitespace().skip_while(|word| is_assignment(word)).peekable();
    match *words.peek()? {
        "descent" => {
            words.next();
        }
        "cargo" => {
            let before: Vec<&str> = words.by_ref().take_while(|word| *word != "--").collect();
            let example = before.iter().any(|w| w.starts_with("--example") || w.starts_with("--bin"));
            if before.get(1) != Some(&"run") || example {
                return None;
            }
        }
        _ => return None,
    }
    let rest: Vec<&str> = words.collect();
    let sub = *rest.first().filter(|sub| !sub.starts_with('-'))?;
    let mut command = vec![sub.to_string()];
    if sub == "config"
        && let Some(nested) = rest.get(1).filter(|word| !word.starts_with('-'))
    {
        command.push(nested.to_string());
    }
    let flags = flags(&rest[command.len()..]);
    Some(Invocation { command, flags })
}

/// Whether a shell word is a variable assignment (`DESCENT_PYTHON=...`).
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

/// The `--flags` among a command's words, up to a comment or a shell separator: optional-syntax
/// brackets (`[--epochs 15]`), alternatives (`--a|--b`), `=value` and trailing punctuation are
/// stripped.
fn flags(words: &[&str]) -> Vec<String> {
    let mut flags = Vec::new();
    let mut depth = 0i32;
    for word in words {
        if word.starts_with('#') || (depth <= 0 && SEPARATORS.contains(word)) {
            break;
        }
        for piece in word.split('|') {
            let piece = piece.trim_start_matches(['[', '(']);
            let Some(name) = piece.strip_prefix("--") else { continue };
            let name = name.split('=').next().unwrap_or_default();
            let name = name.trim_end_matches([']', ')', ',', '`', '.', ';', ':', '"', '\'']);
            if !name.is_empty() {
                flags.push(format!("--{name}"));
            }
        }
        depth += word.matches('[').count() as i32 - word.matches(']').count() as i32;
    }
    flags
}

/// Every `descent` invocation in the code of every page: fenced blocks and indented lines, a
/// line ending in `\` joined with the next. Returns (page, line number, the line, invocation).
fn invocations() -> Vec<(String, usize, String, Invocation)> {
    let mut found = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let mut pending: Option<(usize, String)> = None;
        for line in lines(&text) {
            let code = line.fenced || line.text.starts_with("    ") || line.text.starts_with('\t');
            if !code && pending.is_none() {
                continue;
            }
            let (number, joined) = match pending.take() {
                Some((number, start)) => (number, format!("{start} {}", line.text.trim())),
                None => (line.number, line.text.trim().to_string()),
            };
            if let Some(start) = joined.strip_suffix('\\') {
                pending = Some((number, start.trim_end().to_string()));
                continue;
            }
            if let Some(invocation) = invocation(&joined) {
                found.push((shown(&page), number, joined, invocation));
            }
        }
    }
    found
}

/// Whether `help` lists `flag` as an option: a line that starts with it (after an optional
/// short form, `-q, `), followed by a space, a comma, `=`, `<`, `[` or the end of the line.
fn lists_flag(help: &str, flag: &str) -> bool {
    help.lines().any(|line| {
        let line = line.trim_start();
        let line = match line.split_once(", ") {
            Some((short, long)) if short.len() == 2 && short.starts_with('-') => long,
            _ => line,
        };
        line.strip_prefix(flag)
            .is_some_and(|after| after.is_empty() || after.starts_with([' ', ',', '=', '<', '[', '\n']))
    })
}

#[test]
fn every_descent_command_and_flag_the_docs_show_exists() {
    let found = invocations();
    let mut helps: BTreeMap<Vec<String>, Result<String, String>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut flags_checked = 0;
    for (page, number, line, invocation) in &found {
        let help = helps.entry(invocation.command.clone()).or_insert_with(|| {
            let mut args: Vec<&str> = invocation.command.iter().map(String::as_str).collect();
            args.push("--help");
            let output = descent(&args);
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            if output.status.success() { Ok(stdout) } else { Err(stderr) }
        });
        let command = invocation.command.join(" ");
        match help {
            Err(stderr) => failures.push(format!(
                "{page}:{number}: `{line}`: `descent {command} --help` fails: {}",
                stderr.lines().next().unwrap_or_default()
            )),
            Ok(help) => {
                for flag in &invocation.flags {
                    flags_checked += 1;
                    if !lists_flag(help, flag) {
                        failures.push(format!(
                            "{page}:{number}: `{line}`: `descent {command} --help` does not list {flag}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} commands or flags that do not exist:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Not vacuous: the pages show most commands, with many flags.
    assert!(found.len() >= 20, "only {} descent command lines found", found.len());
    assert!(helps.len() >= 8, "only {} distinct commands found: {:?}", helps.len(), helps.keys());
    assert!(flags_checked >= 50, "only {flags_checked} flags checked");
}

#[test]
fn the_docs_parsers_read_what_the_pages_write() {
    // Links: inline, images, angle brackets, reference definitions; not inside code spans.
    assert_eq!(
        link_targets("See [a](a.md#x), ![b](img/b.png \"t\") and [c](<c d.md>); `[e](e.md)`."),
        ["a.md#x", "img/b.png", "c d.md"]
    );
    assert_eq!(link_targets("[label]: ../x.md"), ["../x.md"]);
    assert!(has_scheme("https://burn.dev") && has_scheme("mailto:a@b") && !has_scheme("../a.md"));
    let fenced: Vec<bool> = lines("a\n```sh\n[x](y)\n```\nb").iter().map(|l| l.fenced).collect();
    assert_eq!(fenced, [false, true, true, true, false]);

    // Commands: prompts, variables, cargo's own flags, brackets, comments, separators.
    let shown = |line: &str| invocation(line).map(|i| (i.command.join(" "), i.flags.join(" ")));
    assert_eq!(
        shown("$ cargo run --release --features wgpu -- cnn [--epochs 15] [--monitor a|b] --set=x # --no"),
        Some(("cnn".into(), "--epochs --monitor --set".into()))
    );
    assert_eq!(
        shown("DESCENT_REMOTE_TOKEN=... descent config show --optim adam > run.toml"),
        Some(("config show".into(), "--optim".into()))
    );
    assert_eq!(
        shown("descent bench [--steps 10 | --n 5] | head --lines"),
        Some(("bench".into(), "--steps --n".into()))
    );
    assert!(shown("cargo run --release --example lesson2").is_none());
    assert!(shown("cargo run --release -- --help").is_none());
    assert!(shown("error: loss became inf").is_none());
    assert!(lists_flag("  -q, --quiet\n      --lr <LR>  Learning rate", "--quiet"));
    assert!(lists_flag("      --lr <LR>  Learning rate", "--lr"));
    assert!(!lists_flag("      --lr-find  x\n  mentions --lr in prose", "--lr"));
}
