//! Clippy as the compiler of the workspace's own crates, so the tests' build
//! is also the lint.
//!
//! `cargo clippy` type-checks in check mode, and cargo keeps check and build
//! artifacts apart: after `cargo test` had built every dependency, clippy
//! type-checked all of them again (about 5 minutes of a cold CI run on two
//! cores, for DataFusion and deltalake alone). Instead `cargo xtask test`
//! builds with `clippy-driver` as `RUSTC_WORKSPACE_WRAPPER` (the same
//! driver `cargo clippy` uses; it runs clippy's lints and then compiles as
//! rustc does), which touches only workspace members. `cargo xtask lint`
//! then runs the same build with every target: what the tests built is
//! fresh, cargo replays its diagnostics, and the lint fails on any warning.
//! Both use the same `CLIPPY_ARGS`, as a change of them rebuilds every
//! member.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::{Context, Result};
use crate::process;

/// The variable cargo runs workspace members' compiler through.
const WRAPPER_ENV: &str = "RUSTC_WORKSPACE_WRAPPER";
/// How `cargo clippy` hands its arguments to the driver; empty: the lint
/// levels are those of `[workspace.lints]`, warnings fail `lint`, not the
/// tests' build.
const ARGS_ENV: &str = "CLIPPY_ARGS";

/// The toolchain's `clippy-driver`, next to its `rustc` (looked up once:
/// `test` builds in two phases).
pub fn driver() -> Option<PathBuf> {
    static DRIVER: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    DRIVER
        .get_or_init(|| {
            let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
            let sysroot = process::output(Command::new(rustc).args(["--print", "sysroot"])).ok()?;
            let path = PathBuf::from(sysroot.trim()).join("bin").join("clippy-driver");
            path.is_file().then_some(path)
        })
        .clone()
}

/// Makes `cmd` (a cargo build) compile workspace members with clippy, when
/// the toolchain has it; says so when it does not.
pub fn apply(cmd: &mut Command) -> bool {
    match driver() {
        Some(path) => {
            cmd.env(WRAPPER_ENV, path).env(ARGS_ENV, "");
            true
        }
        None => {
            println!("note: no clippy-driver in this toolchain (`rustup component add clippy`); building with rustc");
            false
        }
    }
}

/// Builds every target of every member through clippy and fails if any
/// member has a warning or an error; prints each once.
pub fn check(mut cargo: Command) -> Result<()> {
    if !apply(&mut cargo) {
        return Err("clippy is required for the lint: run `rustup component add clippy`".into());
    }
    cargo
        .args(["test", "--workspace", "--all-targets", "--no-run", "--locked"])
        .args(["--message-format", "json-diagnostic-rendered-ansi"])
        .stdout(Stdio::piped());
    let described = process::describe(&cargo);
    println!("$ {described}");
    let mut child = cargo.spawn().context(|| format!("starting {described}"))?;
    let stdout = child.stdout.take().ok_or("cargo's stdout was not captured")?;
    let mut seen = BTreeSet::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context(|| "reading cargo's messages".to_string())?;
        if let Some(rendered) = member_diagnostic(&line)
            && seen.insert(rendered.clone())
        {
            print!("{rendered}");
        }
    }
    let status = child.wait().context(|| format!("waiting for {described}"))?;
    match (status.success(), seen.len()) {
        (true, 0) => Ok(()),
        (true, n) => Err(format!("{n} warning(s) in the workspace's crates")),
        (false, n) => Err(format!("the build failed ({status}; {n} diagnostic(s) above)")),
    }
}

/// The rendered text of a warning or error in a workspace member, from one
/// line of cargo's JSON messages; `None` for anything else.
fn member_diagnostic(line: &str) -> Option<String> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg["reason"] != "compiler-message" || !msg["package_id"].as_str()?.starts_with("path+file://") {
        return None;
    }
    let diagnostic = &msg["message"];
    matches!(diagnostic["level"].as_str()?, "warning" | "error")
        .then(|| diagnostic["rendered"].as_str().map(str::to_owned))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(package: &str, level: &str) -> String {
        serde_json::json!({
            "reason": "compiler-message",
            "package_id": package,
            "message": { "level": level, "message": "m", "rendered": format!("{level}: m\n") },
        })
        .to_string()
    }

    #[test]
    fn only_members_warnings_and_errors_count() {
        let member = "path+file:///work/main/crates/lake#0.1.0";
        let dependency = "registry+https://github.com/rust-lang/crates.io-index#serde@1.0.0";
        assert_eq!(member_diagnostic(&message(member, "warning")).as_deref(), Some("warning: m\n"));
        assert_eq!(member_diagnostic(&message(member, "error")).as_deref(), Some("error: m\n"));
        assert_eq!(member_diagnostic(&message(member, "note")), None);
        assert_eq!(member_diagnostic(&message(dependency, "warning")), None);
        assert_eq!(member_diagnostic(r#"{"reason":"compiler-artifact","package_id":"path+file:///x#0.1.0"}"#), None);
        assert_eq!(member_diagnostic("Compiling x"), None);
    }

    #[test]
    fn the_toolchain_has_a_driver() {
        // CI installs clippy with the toolchain; without it the lint cannot run.
        let path = driver().expect("clippy-driver next to rustc");
        assert!(path.ends_with("bin/clippy-driver"), "{}", path.display());
    }
}
