//! Where things live: the workspace root and the cache root shared by all checkouts.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of the `xtask` crate).
///
/// `cargo run` tells the process where its manifest is; that wins over the
/// path compiled in, because a target dir shared between checkouts can hand
/// one checkout an xtask binary built in another (cargo does not rebuild it
/// when only the checkout's path changed).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.join("Cargo.toml").is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.parent().map_or_else(|| manifest_dir.clone(), Path::to_path_buf)
}

/// The cache root: `$EDP_CACHE`, or else `$HOME/.cache/edp`.
///
/// It lives outside the checkout so a fresh clone does not download Kafka again.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("EDP_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty()).map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("edp")
}

/// Turns a path given on the command line into an absolute one (relative to the current
/// directory), so it still means the same after a child process changes directory.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| path.to_path_buf(), |cwd| cwd.join(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("xtask").is_dir());
    }
}
