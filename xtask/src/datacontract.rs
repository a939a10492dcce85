//! datacontract-cli (from PyPI) for the registry's interoperability tests: a private
//! Python venv under the cache root, created once, so a fresh clone does not install
//! it again.
//!
//! The tests find the program through `DATACONTRACT_CLI`; set it to use another
//! installation.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Result;
use crate::{paths, process};

/// The version the tests are written against.
pub const VERSION: &str = "1.2.8";
/// The tests read the program's path from here.
pub const BIN_ENV: &str = "DATACONTRACT_CLI";

/// `<cache>/dcli`: the venv.
pub fn venv_dir() -> PathBuf {
    paths::cache_root().join("dcli")
}

/// The `datacontract` program to test with: `$DATACONTRACT_CLI` when set, else the
/// venv's, installed (or repaired) first when it is missing or another version.
pub fn ensure() -> Result<PathBuf> {
    if let Some(given) = std::env::var_os(BIN_ENV).filter(|v| !v.is_empty()) {
        let given = PathBuf::from(given);
        return match version_of(&given) {
            Some(v) if v == VERSION => Ok(given),
            Some(v) => {
                println!("note: {BIN_ENV}={} is datacontract-cli {v}; the tests expect {VERSION}", given.display());
                Ok(given)
            }
            None => Err(format!("{BIN_ENV}={} does not run (`{} --version` failed)", given.display(), given.display())),
        };
    }
    let venv = venv_dir();
    let bin = venv.join("bin").join("datacontract");
    if version_of(&bin).as_deref() == Some(VERSION) {
        return Ok(bin);
    }
    install(&venv)?;
    match version_of(&bin) {
        Some(v) if v == VERSION => Ok(bin),
        other => Err(format!(
            "installed datacontract-cli {VERSION} into {}, but `{} --version` says {other:?}",
            venv.display(),
            bin.display()
        )),
    }
}

/// What `<bin> --version` prints, trimmed; `None` when it does not run.
fn version_of(bin: &Path) -> Option<String> {
    if !bin.is_file() {
        return None;
    }
    process::output(Command::new(bin).arg("--version")).ok().map(|out| out.trim().to_string())
}

/// Creates the venv (unless a working one is there) and pip-installs the pinned version.
fn install(venv: &Path) -> Result<()> {
    crate::venv::install(venv, "the registry's interoperability tests", &[&format!("datacontract-cli=={VERSION}")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_venv_lives_in_the_cache() {
        assert!(venv_dir().starts_with(paths::cache_root()));
        assert!(venv_dir().ends_with("dcli"));
    }

    #[test]
    fn a_missing_program_has_no_version() {
        assert_eq!(version_of(Path::new("/nonexistent/datacontract")), None);
    }
}
