//! The lake's interoperability tools from PyPI, in a venv under the cache:
//! the Python `deltalake` package and DuckDB (other engines must read our
//! Delta tables and get the same numbers), and moto's S3 server (the S3
//! path of the lake is tested against it, not only the local directory).
//!
//! Tests find the interpreter through `LAKE_PYTHON` and the S3 endpoint
//! through `LAKE_S3_ENDPOINT`.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Context, Result};
use crate::{paths, process};

/// Packages, pinned.
pub const PACKAGES: [&str; 4] = ["deltalake==1.6.6", "duckdb==2.0.0", "pyarrow==26.0.1", "moto[server]==5.2.5"];
/// The tests read the interpreter from here.
pub const PYTHON_ENV: &str = "LAKE_PYTHON";
/// The tests read the S3 endpoint from here.
pub const S3_ENV: &str = "LAKE_S3_ENDPOINT";
/// Where our S3 server listens.
pub const S3_ADDR: &str = "127.0.0.1:5055";
/// Identifies our server in `/proc/<pid>/cmdline`.
const PROGRAM: &str = "moto_server";

/// `<cache>/pylake`: the venv.
pub fn venv_dir() -> PathBuf {
    paths::cache_root().join("pylake")
}

fn pid_file() -> PathBuf {
    paths::cache_root().join("moto.pid")
}

/// The venv's interpreter, the packages installed (or repaired) first.
pub fn ensure() -> Result<PathBuf> {
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    let probe = "import deltalake, duckdb, pyarrow, moto; \
                 assert deltalake.__version__ == '1.6.6' and duckdb.__version__ == '2.0.0', 'versions'";
    if process::succeeds(Command::new(&python).args(["-c", probe])) {
        return Ok(python);
    }
    crate::venv::install(&venv, "the lake's interoperability and S3 tests", &PACKAGES)?;
    if !process::succeeds(Command::new(&python).args(["-c", probe])) {
        return Err(format!("installed {} into {}, but they do not import", PACKAGES.join(" "), venv.display()));
    }
    Ok(python)
}

/// Starts moto's S3 server unless ours already runs; `true` when started here.
pub fn s3_up() -> Result<bool> {
    if let Some(pid) = process::read_pid(&pid_file())
        && process::is_alive_running(pid, PROGRAM)
        && process::port_open(S3_ADDR)
    {
        return Ok(false);
    }
    if process::port_open(S3_ADDR) {
        return Err(format!("{S3_ADDR} is taken by another program; stop it so the lake's S3 tests can run"));
    }
    ensure()?;
    let bin = venv_dir().join("bin").join(PROGRAM);
    let log = paths::cache_root().join("moto.log");
    let out = fs::File::create(&log).context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone().context(|| "cloning the log handle".to_string())?;
    let (host, port) = S3_ADDR.split_once(':').unwrap_or(("127.0.0.1", "5055"));
    let child = Command::new(&bin)
        .args(["-H", host, "-p", port])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .context(|| format!("starting {}", bin.display()))?;
    fs::write(pid_file(), child.id().to_string()).context(|| "writing the moto pid file".to_string())?;
    if !process::wait_for(Duration::from_secs(30), || process::port_open(S3_ADDR)) {
        let _ = s3_down();
        return Err(format!("moto's S3 server did not listen on {S3_ADDR} within 30 s:\n{}", process::tail(&log, 20)));
    }
    println!("started moto's S3 server on {S3_ADDR} (pid {})", child.id());
    Ok(true)
}

/// Stops our S3 server, if it runs.
pub fn s3_down() -> Result<()> {
    let file = pid_file();
    if let Some(pid) = process::read_pid(&file)
        && process::is_alive_running(pid, PROGRAM)
    {
        process::stop_pid(pid, "TERM", Duration::from_secs(10))?;
    }
    let _ = fs::remove_file(&file);
    Ok(())
}
