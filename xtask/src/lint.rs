//! `cargo xtask lint`: formatting, clippy, cargo-deny and the boundary check, in order,
//! stopping at the first failure.

use crate::error::Result;
use crate::{boundary, clippy, paths, process};

/// Runs every lint step; fails on the first failing one with what to do next.
pub fn run() -> Result<()> {
    let root = paths::workspace_root();
    let cargo = || {
        let mut cmd = process::cargo_command();
        cmd.current_dir(&root);
        cmd
    };
    step(1, "rustfmt", "run `cargo fmt --all` and commit the result", || {
        process::run(cargo().args(["fmt", "--all", "--", "--check"]))
    })?;
    // Every target built through clippy: after `cargo xtask test` only the
    // examples are left to build, and the tests' warnings are replayed.
    step(2, "clippy (every target, warnings fail)", "fix the warnings above", || clippy::check(cargo()))?;
    step(
        3,
        "cargo-deny (licenses, bans, sources)",
        "replace the dependency, or (after review) allow its license in deny.toml",
        || {
            ensure_cargo_deny()?;
            // `cargo metadata` (used by cargo-deny) wants the sources of crates for every
            // platform, also those a Linux build never downloads; fetch them (a no-op
            // once cached) so the check itself can run offline.
            process::run(cargo().args(["fetch", "--locked"]))?;
            process::run(cargo().args(["deny", "--locked", "--offline", "check", "licenses", "bans", "sources"]))
        },
    )?;
    step(4, "boundary check", "remove the dependencies named above", boundary::run)?;
    println!("lint: all 4 steps passed");
    Ok(())
}

const STEPS: usize = 4;

fn step(n: usize, name: &str, next: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("==> lint [{n}/{STEPS}] {name}");
    f().map_err(|e| format!("lint step {n}/{STEPS} ({name}) failed: {e}\nNext: {next}"))
}

/// Installs cargo-deny when `cargo deny --version` fails.
fn ensure_cargo_deny() -> Result<()> {
    if process::succeeds(process::cargo_command().args(["deny", "--version"])) {
        return Ok(());
    }
    println!("cargo-deny is missing; installing it (takes about 10 minutes, once)");
    process::run(process::cargo_command().args(["install", "--locked", "cargo-deny"]))
}
