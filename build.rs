//! Bakes the compiler version and the git revision into the binary, so every result
//! records what built it (`harness::environment::capture`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `program args` in `dir`, returning its trimmed stdout if it succeeded.
fn run(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let rustc_version =
        run(&rustc, &["--version"], &manifest_dir).unwrap_or_else(|| "unknown".to_string());

    let revision = match run("git", &["rev-parse", "--short", "HEAD"], &manifest_dir) {
        Some(rev) if !rev.is_empty() => {
            // Only tracked files count: results and scratch files left in the tree must
            // not make every build look modified.
            let dirty = run(
                "git",
                &["status", "--porcelain", "--untracked-files=no"],
                &manifest_dir,
            )
            .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        _ => "unknown".to_string(),
    };

    println!("cargo:rustc-env=RAFTBENCH_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=RAFTBENCH_GIT_REVISION={revision}");

    // Listing files replaces cargo's default (rerun on any change in the package), so name
    // everything that can change the answer: a commit moves HEAD or its branch ref and
    // rewrites the index; an edit to the sources makes the tree dirty.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    let git_dir = run("git", &["rev-parse", "--git-dir"], &manifest_dir)
        .map(|d| manifest_dir.join(d))
        .unwrap_or_else(|| manifest_dir.join(".git"));
    for name in ["HEAD", "index", "packed-refs"] {
        let p = git_dir.join(name);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
    if let Ok(head) = std::fs::read_to_string(git_dir.join("HEAD")) {
        if let Some(reference) = head.trim().strip_prefix("ref: ") {
            let p = git_dir.join(reference);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
}
