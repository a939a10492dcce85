//! Running commands and managing the background processes xtask starts (by pid only).

use std::ffi::OsString;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Context, Result};
use crate::interrupt;

/// The cargo that runs us (`$CARGO`), or `cargo` from `PATH`.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// A `cargo` command without the variables `cargo run` set for xtask itself
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, ...). Build scripts such as
/// ring's track them, so passing them on would make every `cargo xtask`
/// build differ from a plain `cargo build` and rebuild half the tree each
/// time one follows the other.
pub fn cargo_command() -> Command {
    let mut cmd = Command::new(cargo());
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "OUT_DIR"
            )
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A command line as a person would type it, for progress messages.
pub fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains(' ') {
            line.push_str(&format!(" '{arg}'"));
        } else {
            line.push(' ');
            line.push_str(&arg);
        }
    }
    line
}

/// Runs a command with inherited stdio and returns its exit status.
pub fn status(cmd: &mut Command) -> Result<ExitStatus> {
    println!("$ {}", describe(cmd));
    cmd.status().context(|| format!("cannot run `{}`", describe(cmd)))
}

/// Runs a command with inherited stdio and fails unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = status(cmd)?;
    interrupt::check()?;
    if status.success() { Ok(()) } else { Err(format!("`{}` failed ({status})", describe(cmd))) }
}

/// Runs a command quietly and returns its stdout; on failure the error holds its output.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().context(|| format!("cannot run `{}`", describe(cmd)))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}):\n{}{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Whether a command can be started and exits successfully (for `--version` probes).
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Whether we run as root (`id -u` prints 0).
pub fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// Whether a process with this pid exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state letter follows the command name, which is wrapped in parentheses.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x") | None)
}

/// Whether the live process `pid` has `needle` in its command line (guards against a
/// pid file that names a pid the system has since given to another program).
pub fn is_alive_running(pid: u32, needle: &str) -> bool {
    is_alive(pid)
        && fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle))
}

/// Reads a pid from the first line of a file; `None` when absent or unreadable.
pub fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.lines().next()?.trim().parse().ok()
}

/// Sends a signal (`TERM`, `INT`, `KILL`) to one pid with the `kill` command.
pub fn signal(pid: u32, signal: &str) -> Result<()> {
    output(Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string())).map(|_| ())
}

/// Stops one process: sends `first` (TERM or INT), waits up to `grace` for it to exit,
/// then sends KILL. Succeeds when the process is gone.
pub fn stop_pid(pid: u32, first: &str, grace: Duration) -> Result<()> {
    if !is_alive(pid) {
        return Ok(());
    }
    // The process may exit between the check and the signal; that is success too.
    if let Err(e) = signal(pid, first)
        && is_alive(pid)
    {
        return Err(e);
    }
    if wait_for(grace, || !is_alive(pid)) {
        return Ok(());
    }
    eprintln!("process {pid} did not exit {} s after SIG{first}; sending SIGKILL", grace.as_secs());
    if let Err(e) = signal(pid, "KILL")
        && is_alive(pid)
    {
        return Err(e);
    }
    if wait_for(Duration::from_secs(10), || !is_alive(pid)) {
        Ok(())
    } else {
        Err(format!("process {pid} is still alive after SIGKILL; check it with `ps -p {pid}`"))
    }
}

/// Polls `done` (every 100 ms) until it is true or `limit` passed; true when done.
/// Not interruptible: use it for short shutdown waits.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What an interruptible poll step found.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    /// The condition holds.
    Ready,
    /// Not yet; poll again.
    Pending,
}

/// Polls `step` every `every` until it is ready, fails, Ctrl-C is pressed (error
/// "interrupted") or `limit` passes (error "timed out").
pub fn poll_until(limit: Duration, every: Duration, mut step: impl FnMut() -> Result<Poll>) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        interrupt::check()?;
        if step()? == Poll::Ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {} s", limit.as_secs()));
        }
        std::thread::sleep(every);
    }
}

/// Whether something accepts TCP connections at `addr` (`host:port`, IP literal).
pub fn port_open(addr: &str) -> bool {
    addr.parse::<SocketAddr>().is_ok_and(|sa| TcpStream::connect_timeout(&sa, Duration::from_millis(500)).is_ok())
}

/// The last `n` lines of a text file (empty when unreadable).
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_alive_and_a_bogus_pid_is_not() {
        assert!(is_alive(std::process::id()));
        assert!(!is_alive(u32::MAX));
    }

    #[test]
    fn stop_pid_stops_a_child() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let pid = child.id();
        // Reap the child on another thread so it does not linger as a zombie.
        let reaper = std::thread::spawn(move || child.wait());
        stop_pid(pid, "TERM", Duration::from_secs(5)).expect("stop sleep");
        assert!(!is_alive(pid));
        reaper.join().expect("join").expect("wait");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let path = std::env::temp_dir().join(format!("xtask-tail-{}", std::process::id()));
        fs::write(&path, "a\nb\nc\n").expect("write");
        assert_eq!(tail(&path, 2), "b\nc");
        assert_eq!(tail(&path, 10), "a\nb\nc");
        fs::remove_file(&path).expect("remove");
    }

    #[test]
    fn describe_quotes_arguments_with_spaces() {
        let mut cmd = Command::new("pg_ctl");
        cmd.args(["-o", "-p 5433", "start"]);
        assert_eq!(describe(&cmd), "pg_ctl -o '-p 5433' start");
    }
}
