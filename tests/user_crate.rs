//! Every doc example, the README's and `docs/*.md`'s code compile in a *user's* crate: one
//! whose only dependency is evnet, plus what the example's text says to add to
//! `Cargo.toml`.
//!
//! rustdoc compiles doc examples with every dependency of evnet in scope, so an example
//! that writes `zmq::Context` without `use evnet::zmq` passes `cargo test --doc` and fails
//! in the user's crate. This test extracts the examples the way rustdoc reads them (hidden
//! `# ` lines kept, a `main` wrapped around a body without one, returning a `Result` when
//! the body ends in `(())`), writes each as an example of a crate of its own outside this
//! package, and runs `cargo check` there. An example that needs another crate says so in
//! the paragraph before it, as "... `tokio` ... in your `Cargo.toml`"; it is built in a
//! second crate that has those crates too.

mod util;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Crates an example may ask for in its text; each with the dependency line it gets.
const EXTRAS: &[(&str, &str)] = &[
    (
        "tokio",
        r#"tokio = { version = "1", default-features = false, features = ["rt", "net", "time", "macros"] }"#,
    ),
    ("futures", r#"futures = "0.3""#),
    ("mio", r#"mio = { version = "1", features = ["os-poll"] }"#),
    ("calloop", r#"calloop = "0.14""#),
    ("libc", r#"libc = "0.2""#),
    ("rcgen", r#"rcgen = "0.14""#),
];

#[derive(Debug)]
struct Example {
    /// `src/fair/mod.rs:48`, for the failure message.
    origin: String,
    code: String,
    extras: BTreeSet<&'static str>,
}

/// The fenced code blocks of `lines` (doc comment text or markdown), with the paragraph
/// before each. `rust_by_default`: a fence without a language is Rust (rustdoc's rule).
fn blocks(lines: &[(usize, String)], origin: &str, out: &mut Vec<Example>) {
    let mut i = 0;
    // The last paragraph of text before a block (blank lines end it, they do not clear
    // it: the block usually follows a blank line).
    let mut paragraph: Vec<&str> = Vec::new();
    let mut ended = false;
    while i < lines.len() {
        let (no, line) = &lines[i];
        let t = line.trim_start();
        if let Some(attrs) = t.strip_prefix("```") {
            let attrs: Vec<&str> = attrs.split(',').map(str::trim).collect();
            let rust = attrs.iter().all(|a| {
                matches!(*a, "" | "rust" | "no_run" | "should_panic") || a.starts_with("edition")
            });
            let mut code = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].1.trim_start().starts_with("```") {
                code.push(lines[i].1.clone());
                i += 1;
            }
            if rust {
                let text = paragraph.join(" ");
                let extras = if text.contains("Cargo.toml") {
                    EXTRAS
                        .iter()
                        .filter(|(name, _)| text.contains(&format!("`{name}`")))
                        .map(|(name, _)| *name)
                        .collect()
                } else {
                    BTreeSet::new()
                };
                out.push(Example {
                    origin: format!("{origin}:{}", no + 1),
                    code: rustdoc_main(&code),
                    extras,
                });
            }
            paragraph.clear();
        } else if t.is_empty() {
            ended = true;
        } else {
            if ended {
                paragraph.clear();
                ended = false;
            }
            paragraph.push(t);
        }
        i += 1;
    }
}

/// What rustdoc compiles for a block: hidden lines shown, `main` added when missing.
fn rustdoc_main(code: &[String]) -> String {
    let lines: Vec<&str> = code
        .iter()
        .map(|l| {
            let t = l.trim_start();
            if t == "#" {
                ""
            } else if let Some(rest) = t.strip_prefix("# ") {
                rest
            } else {
                l.as_str()
            }
        })
        .collect();
    let body = lines.join("\n");
    let mut out = String::from("#![allow(unused)]\n");
    if body.contains("fn main") {
        out.push_str(&body);
    } else if body.trim_end().ends_with("(())") {
        out.push_str(&format!(
            "fn main() {{\n    fn _inner() -> Result<(), impl core::fmt::Debug> {{\n{body}\n    }}\n    _inner().unwrap()\n}}\n"
        ));
    } else {
        out.push_str(&format!("fn main() {{\n{body}\n}}\n"));
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn all_examples(root: &Path) -> Vec<Example> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        // Runs of doc comment lines (`///` or `//!`), each run one doc text.
        let mut run: Vec<(usize, String)> = Vec::new();
        for (no, line) in text.lines().enumerate() {
            let t = line.trim_start();
            match t.strip_prefix("///").or_else(|| t.strip_prefix("//!")) {
                Some(d) => run.push((no, d.strip_prefix(' ').unwrap_or(d).to_string())),
                None if !run.is_empty() => {
                    blocks(&run, &rel, &mut out);
                    run.clear();
                }
                None => {}
            }
        }
        blocks(&run, &rel, &mut out);
    }
    let mut md = vec![root.join("README.md")];
    for e in fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            md.push(p);
        }
    }
    md.sort();
    for f in md {
        let text = fs::read_to_string(&f).unwrap();
        let lines: Vec<(usize, String)> = text
            .lines()
            .enumerate()
            .map(|(n, l)| (n, l.to_string()))
            .collect();
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        // In markdown a bare fence is not Rust: only ```rust blocks count.
        let mut found = Vec::new();
        blocks(&lines, &rel, &mut found);
        let rusty: Vec<usize> = lines
            .iter()
            .filter(|(_, l)| l.trim_start().starts_with("```rust"))
            .map(|(n, _)| n + 1)
            .collect();
        out.extend(found.into_iter().filter(|e| {
            let line: usize = e.origin.rsplit(':').next().unwrap().parse().unwrap();
            rusty.contains(&line)
        }));
    }
    out
}

/// A crate at `dir` depending on evnet (every front end) and `extras`, with `examples` as
/// its examples; `cargo check --examples` there. Returns cargo's output on failure.
fn check_crate(
    root: &Path,
    dir: &Path,
    extras: &BTreeSet<&str>,
    examples: &[&Example],
) -> Result<(), String> {
    let _ = fs::remove_dir_all(dir.join("examples"));
    fs::create_dir_all(dir.join("examples")).unwrap();
    fs::create_dir_all(dir.join("src")).unwrap();
    let mut toml = format!(
        "[package]\nname = \"evnet-user\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [workspace]\n\n[dependencies]\nevnet = {{ path = {:?}, features = [\"front-ends\"] }}\n",
        root.display().to_string()
    );
    for (name, line) in EXTRAS {
        if extras.contains(name) {
            toml.push_str(line);
            toml.push('\n');
        }
    }
    fs::write(dir.join("Cargo.toml"), toml).unwrap();
    fs::write(dir.join("src/lib.rs"), "").unwrap();
    // The same versions as this package resolved: nothing new to download or build.
    if !dir.join("Cargo.lock").exists() {
        fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    }
    let mut names = Vec::new();
    for (i, e) in examples.iter().enumerate() {
        let name = format!("doc{i:03}");
        let head = format!("// {}\n", e.origin);
        fs::write(dir.join(format!("examples/{name}.rs")), head + &e.code).unwrap();
        names.push((name, &e.origin));
    }
    let out = Command::new(env!("CARGO"))
        .args([
            "check",
            "--examples",
            "--keep-going",
            "--quiet",
            "--message-format",
            "short",
        ])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", root.join("target/user-crate"))
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    if out.status.success() {
        return Ok(());
    }
    let mut msg = String::from_utf8_lossy(&out.stderr).into_owned();
    for (name, origin) in names {
        msg = msg.replace(
            &format!("examples/{name}.rs"),
            &format!("{origin} (as examples/{name}.rs)"),
        );
    }
    Err(msg)
}

#[test]
fn every_doc_example_compiles_in_a_crate_that_depends_on_evnet_alone() {
    // The first run builds evnet's dependencies for `cargo check` (libzmq included).
    let _w = util::watchdog::watchdog(Duration::from_secs(1500), "user crate");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let examples = all_examples(&root);
    assert!(
        examples.len() >= 30,
        "the extraction found only {} examples",
        examples.len()
    );
    let plain: Vec<&Example> = examples.iter().filter(|e| e.extras.is_empty()).collect();
    let extra: Vec<&Example> = examples.iter().filter(|e| !e.extras.is_empty()).collect();
    let extras: BTreeSet<&str> = extra
        .iter()
        .flat_map(|e| e.extras.iter().copied())
        .collect();
    let base = root.join("target/user-crate");
    let mut failures = Vec::new();
    if let Err(e) = check_crate(&root, &base.join("plain"), &BTreeSet::new(), &plain) {
        failures.push(format!("== evnet alone:\n{e}"));
    }
    if !extra.is_empty() {
        if let Err(e) = check_crate(&root, &base.join("extras"), &extras, &extra) {
            failures.push(format!("== evnet and {extras:?}:\n{e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_extraction_reads_blocks_as_rustdoc_does() {
    let text = [
        "Text before.",
        "Needs `tokio` in your `Cargo.toml`:",
        "```",
        "# use std::io;",
        "let x = 1;",
        "# Ok::<(), io::Error>(())",
        "```",
        "",
        "```text",
        "not rust",
        "```",
        "```compile_fail",
        "nope",
        "```",
        "```no_run",
        "fn main() {}",
        "```",
    ];
    let lines: Vec<(usize, String)> = text
        .iter()
        .enumerate()
        .map(|(n, l)| (n, l.to_string()))
        .collect();
    let mut out = Vec::new();
    blocks(&lines, "x.rs", &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].origin, "x.rs:3");
    assert!(out[0].extras.contains("tokio") && out[0].extras.len() == 1);
    assert!(out[0].code.contains("fn _inner() -> Result<(), impl core::fmt::Debug> {\nuse std::io;\nlet x = 1;\nOk::<(), io::Error>(())"));
    assert!(out[1].extras.is_empty());
    assert_eq!(out[1].code, "#![allow(unused)]\nfn main() {}");
}
