//! Private Python venvs under the cache root for the tools tests run from
//! PyPI (datacontract-cli; deltalake, duckdb and moto for the lake), created
//! once, so a fresh clone does not install them again.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::error::{Context, Result};
use crate::process;

/// Creates the venv (unless a working one is there) and pip-installs `specs`.
pub fn install(venv: &Path, purpose: &str, specs: &[&str]) -> Result<()> {
    let python = venv.join("bin").join("python");
    if !process::succeeds(Command::new(&python).arg("--version")) {
        if !process::succeeds(Command::new("python3").args(["-c", "import ensurepip, venv"])) {
            return Err(format!(
                "python3 with venv support is missing: install it (apt-get install python3 python3-venv); \
                 {purpose} run tools from PyPI in a venv"
            ));
        }
        if venv.exists() {
            fs::remove_dir_all(venv).context(|| format!("removing the broken venv {}", venv.display()))?;
        }
        if let Some(parent) = venv.parent() {
            fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
        }
        process::run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    }
    println!("installing {} from PyPI into {} (once, about a minute)", specs.join(" "), venv.display());
    process::run(
        Command::new(&python).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(specs),
    )
    .map_err(|e| format!("{e}\nCheck that PyPI is reachable, then run `cargo xtask test` again"))
}
