//! A local PostgreSQL server for tests (port 5433, loopback only, trust auth).
//!
//! Uses the newest `/usr/lib/postgresql/<version>/bin` (Debian's layout). Data, socket
//! and log live under `<cache>/pg`. PostgreSQL refuses to run as root, so as root the
//! directory is owned by the `postgres` user and the tools run through
//! `runuser -u postgres --`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{Context, Result};
use crate::paths;
use crate::process;

/// Set this to use an existing database instead of starting one.
pub const URL_ENV: &str = "DATABASE_URL";
/// How clients reach our server.
pub const URL: &str = "postgres://postgres@127.0.0.1:5433/postgres";
const PORT: u16 = 5433;
const ADDR: &str = "127.0.0.1:5433";
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Identifies the postmaster in `/proc/<pid>/cmdline`.
const PROGRAM: &str = "postgres";

/// The directories of our server.
#[derive(Debug)]
struct Layout {
    root: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    log: PathBuf,
    /// Run the tools as the `postgres` user (we are root).
    as_postgres: bool,
}

impl Layout {
    fn new() -> Self {
        let as_postgres = process::is_root();
        let cached = paths::cache_root().join("pg");
        // As root, the `postgres` user must be able to reach its directory. Home
        // directories such as /root are usually mode 700, so fall back to /var/tmp.
        let root =
            if as_postgres && !traversable_by_others(&cached) { PathBuf::from("/var/tmp/edp-pg") } else { cached };
        Layout { data: root.join("data"), sock: root.join("sock"), log: root.join("pg.log"), root, as_postgres }
    }

    fn pid_file(&self) -> PathBuf {
        self.data.join("postmaster.pid")
    }

    /// A command for a PostgreSQL tool, as the `postgres` user when we are root.
    fn tool(&self, program: &Path) -> Command {
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        // The tools must be able to enter their working directory.
        cmd.current_dir(&self.root);
        cmd
    }
}

/// Whether every existing ancestor of `path` lets other users pass through (o+x).
fn traversable_by_others(path: &Path) -> bool {
    path.ancestors().filter_map(|dir| fs::metadata(dir).ok()).all(|meta| meta.permissions().mode() & 0o001 != 0)
}

/// The newest installed `/usr/lib/postgresql/<version>/bin` with the server tools.
fn find_bin_dir() -> Result<PathBuf> {
    let base = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(base)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| {
                    let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                    let bin = entry.path().join("bin");
                    ["initdb", "pg_ctl", "postgres"]
                        .iter()
                        .all(|tool| bin.join(tool).is_file())
                        .then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("install PostgreSQL: apt-get install postgresql (or set {URL_ENV})"))
}

/// The pid of our running postmaster, if any.
fn running_pid(layout: &Layout) -> Option<u32> {
    process::read_pid(&layout.pid_file()).filter(|pid| process::is_alive_running(*pid, PROGRAM))
}

/// `cargo xtask pg up`.
pub fn up() -> Result<()> {
    let (url, started) = ensure_up()?;
    if started {
        println!("PostgreSQL is up: DATABASE_URL={url}");
    }
    Ok(())
}

/// `cargo xtask pg status`.
pub fn status() -> Result<()> {
    if std::env::var_os(URL_ENV).is_some_and(|url| !url.is_empty()) {
        println!("{URL_ENV} is set: commands use that database; the local server is:");
    }
    let layout = Layout::new();
    match running_pid(&layout) {
        Some(pid) if process::port_open(ADDR) => {
            println!("running (pid {pid}), DATABASE_URL={URL}");
        }
        Some(pid) => println!("starting or unhealthy (pid {pid}): {ADDR} does not answer"),
        None => println!("not running (start it with `cargo xtask pg up`)"),
    }
    Ok(())
}

/// Starts our server unless it is already running; returns its URL and whether this call
/// started it. With `$DATABASE_URL` set, starts nothing and returns that URL.
pub fn ensure_up() -> Result<(String, bool)> {
    if let Ok(url) = std::env::var(URL_ENV)
        && !url.trim().is_empty()
    {
        println!("{URL_ENV} is set: using that database, starting no server");
        return Ok((url, false));
    }
    let layout = Layout::new();
    if let Some(pid) = running_pid(&layout) {
        if process::port_open(ADDR) {
            println!("PostgreSQL already running (pid {pid}), DATABASE_URL={URL}");
            return Ok((URL.to_string(), false));
        }
        return Err(format!(
            "PostgreSQL (pid {pid}) is running but {ADDR} does not answer; see {} or run \
             `cargo xtask pg down` and try again",
            layout.log.display()
        ));
    }
    if process::port_open(ADDR) {
        return Err(format!(
            "{ADDR} is in use by a process that xtask did not start. Stop it, or use that \
             server by setting {URL_ENV}=postgres://user@host:port/db"
        ));
    }
    let bin = find_bin_dir()?;
    prepare_dirs(&layout)?;
    init_once(&layout, &bin)?;
    start(&layout, &bin)?;
    Ok((URL.to_string(), true))
}

/// `cargo xtask pg down`: fast shutdown (SIGINT) of our postmaster, SIGKILL after 30 s.
pub fn down() -> Result<()> {
    let layout = Layout::new();
    let Some(pid) = running_pid(&layout) else {
        println!("PostgreSQL is not running");
        return Ok(());
    };
    println!("stopping PostgreSQL (pid {pid})");
    process::stop_pid(pid, "INT", STOP_TIMEOUT)?;
    println!("PostgreSQL stopped");
    Ok(())
}

fn prepare_dirs(layout: &Layout) -> Result<()> {
    for dir in [&layout.root, &layout.sock] {
        fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    if layout.as_postgres {
        process::output(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&layout.root))
            .map_err(|e| format!("PostgreSQL cannot run as root and needs a `postgres` user: {e}"))?;
    }
    Ok(())
}

/// Creates the cluster once. `initdb` writes into a temporary directory that is renamed
/// into place, so an interrupted run never leaves a half-made cluster.
fn init_once(layout: &Layout, bin: &Path) -> Result<()> {
    if layout.data.join("PG_VERSION").is_file() {
        return Ok(());
    }
    let tmp = layout.root.join("data.init");
    for dir in [&tmp, &layout.data] {
        if dir.exists() {
            fs::remove_dir_all(dir).context(|| format!("removing {}", dir.display()))?;
        }
    }
    println!("creating a PostgreSQL cluster in {}", layout.data.display());
    process::output(layout.tool(&bin.join("initdb")).arg("-D").arg(&tmp).args([
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-instructions",
    ]))
    .map_err(|e| format!("initdb failed: {e}"))?;
    fs::rename(&tmp, &layout.data).context(|| format!("renaming {}", tmp.display()))
}

fn start(layout: &Layout, bin: &Path) -> Result<()> {
    // A postmaster.pid naming a dead process (after a crash or reboot) is stale.
    let pid_file = layout.pid_file();
    if let Some(pid) = process::read_pid(&pid_file) {
        // After a crash the old postmaster may linger briefly as a zombie, which
        // PostgreSQL's own lock-file check still counts as alive.
        let gone = || !Path::new(&format!("/proc/{pid}")).exists();
        if !process::wait_for(Duration::from_secs(10), gone) {
            return Err(format!(
                "process {pid} named in {} is still there; wait for it to exit or \
                 remove the file if it is not PostgreSQL",
                pid_file.display()
            ));
        }
    }
    if pid_file.exists() {
        fs::remove_file(&pid_file).context(|| format!("removing stale {}", pid_file.display()))?;
    }
    let options = format!("-p {PORT} -k {} -c listen_addresses=127.0.0.1 -c fsync=on", layout.sock.display());
    println!("starting PostgreSQL (log: {})", layout.log.display());
    let started = process::output(
        layout
            .tool(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&layout.data)
            .arg("-l")
            .arg(&layout.log)
            .arg("-o")
            .arg(options)
            .args(["-w", "-t", "60", "start"]),
    );
    if let Err(e) = started {
        // pg_ctl may give up while the server still starts: stop whatever it left.
        if let Some(pid) = running_pid(layout) {
            let _ = process::stop_pid(pid, "INT", STOP_TIMEOUT);
        }
        return Err(format!(
            "PostgreSQL did not start: {e}\n--- last 30 lines of {} ---\n{}",
            layout.log.display(),
            process::tail(&layout.log, 30)
        ));
    }
    match running_pid(layout) {
        Some(pid) if process::port_open(ADDR) => {
            println!("PostgreSQL ready (pid {pid})");
            Ok(())
        }
        _ => Err(format!("pg_ctl reported success but {ADDR} does not answer; see {}", layout.log.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filesystem_root_is_traversable() {
        assert!(traversable_by_others(Path::new("/")));
    }

    #[test]
    fn the_url_uses_our_port_on_loopback() {
        assert!(URL.contains(&format!("127.0.0.1:{PORT}")));
        assert_eq!(ADDR, format!("127.0.0.1:{PORT}"));
    }
}
