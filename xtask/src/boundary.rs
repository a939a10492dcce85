//! The boundary check: no bounded context depends on another (any kind of dependency).
//!
//! Contexts learn about each other only through events on the bus; see the "one hard
//! rule" in the design brief.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Context, Result};
use crate::{paths, process};

/// The bounded contexts.
pub const CONTEXTS: &[&str] = &["orders", "accounts", "mesh-registry", "lake", "timeseries"];

/// One forbidden dependency edge, e.g. `orders -> accounts (dev)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The depending context.
    pub from: String,
    /// The context it depends on.
    pub to: String,
    /// `normal`, `dev` or `build`.
    pub kind: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} ({})", self.from, self.to, self.kind)
    }
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
}

#[derive(Deserialize)]
struct Package {
    id: String,
    name: String,
    dependencies: Vec<Dependency>,
}

#[derive(Deserialize)]
struct Dependency {
    /// The package name (also when renamed in the manifest).
    name: String,
    /// `null` for normal dependencies, else `"dev"` or `"build"`.
    kind: Option<String>,
}

/// Finds the forbidden edges in `cargo metadata --format-version 1` output.
pub fn violations(metadata_json: &str) -> Result<Vec<Violation>> {
    let metadata: Metadata =
        serde_json::from_str(metadata_json).context(|| "cannot parse `cargo metadata` output".to_string())?;
    let mut found: Vec<Violation> = metadata
        .packages
        .iter()
        .filter(|p| metadata.workspace_members.contains(&p.id))
        .filter(|p| CONTEXTS.contains(&p.name.as_str()))
        .flat_map(|p| {
            p.dependencies.iter().filter(|d| d.name != p.name && CONTEXTS.contains(&d.name.as_str())).map(|d| {
                Violation {
                    from: p.name.clone(),
                    to: d.name.clone(),
                    kind: d.kind.clone().unwrap_or_else(|| "normal".to_string()),
                }
            })
        })
        .collect();
    found.sort_by(|a, b| (&a.from, &a.to, &a.kind).cmp(&(&b.from, &b.to, &b.kind)));
    found.dedup();
    Ok(found)
}

/// Runs `cargo metadata` on the workspace of `manifest` and fails on any violation,
/// naming each edge and what to do instead.
pub fn check_manifest(manifest: &Path) -> Result<()> {
    let json = process::output(
        process::cargo_command()
            .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
            .arg(manifest),
    )?;
    let found = violations(&json)?;
    if found.is_empty() {
        return Ok(());
    }
    let edges: Vec<String> = found.iter().map(|v| format!("  {v}")).collect();
    Err(format!(
        "bounded contexts depend on each other:\n{}\nRemove these dependencies. Contexts \
         talk through events on the bus: publish an event from one context and consume it \
         in the other with its own tolerant types (or generic JSON). Shared building blocks \
         belong in domain-core or event-store.",
        edges.join("\n")
    ))
}

/// `cargo xtask boundary`: the check on this workspace.
pub fn run() -> Result<()> {
    check_manifest(&paths::workspace_root().join("Cargo.toml"))?;
    println!("boundary check passed: no dependencies between {}", CONTEXTS.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use super::*;

    fn metadata(packages: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(packages).expect("test json");
        let ids: Vec<serde_json::Value> = value.as_array().expect("array").iter().map(|p| p["id"].clone()).collect();
        serde_json::json!({ "packages": value, "workspace_members": ids }).to_string()
    }

    #[test]
    fn edges_of_every_kind_are_found_and_others_ignored() {
        let json = metadata(
            r#"[
              {"id": "o", "name": "orders", "dependencies": [
                {"name": "accounts", "kind": null},
                {"name": "domain-core", "kind": null},
                {"name": "lake", "kind": "build"}]},
              {"id": "a", "name": "accounts", "dependencies": [
                {"name": "timeseries", "kind": "dev"},
                {"name": "serde", "kind": null}]},
              {"id": "p", "name": "platform", "dependencies": [
                {"name": "orders", "kind": null}]}
            ]"#,
        );
        let found: Vec<String> = violations(&json).expect("parse").iter().map(ToString::to_string).collect();
        assert_eq!(found, ["accounts -> timeseries (dev)", "orders -> accounts (normal)", "orders -> lake (build)"]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(violations("not json").is_err());
    }

    #[test]
    fn the_real_workspace_passes() {
        check_manifest(&paths::workspace_root().join("Cargo.toml")).expect("boundary check");
    }

    /// A throw-away workspace on disk, removed on drop.
    struct TempWorkspace(PathBuf);

    impl Drop for TempWorkspace {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn write(path: PathBuf, text: &str) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    #[test]
    fn a_dev_dependency_between_contexts_fails_the_real_check() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
        let root = std::env::temp_dir().join(format!("xtask-boundary-{}-{nanos}", std::process::id()));
        let ws = TempWorkspace(root.clone());
        write(root.join("Cargo.toml"), "[workspace]\nresolver = \"3\"\nmembers = [\"orders\", \"accounts\"]\n");
        for name in ["orders", "accounts"] {
            write(root.join(name).join("src/lib.rs"), "//! test crate\n");
        }
        write(
            root.join("accounts/Cargo.toml"),
            "[package]\nname = \"accounts\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
        );
        write(
            root.join("orders/Cargo.toml"),
            "[package]\nname = \"orders\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dev-dependencies]\naccounts = { path = \"../accounts\" }\n",
        );
        let err = check_manifest(&ws.0.join("Cargo.toml")).expect_err("must fail");
        assert!(err.contains("orders -> accounts (dev)"), "{err}");
        assert!(err.contains("events on the bus"), "{err}");
    }
}
