//! A local single-node Apache Kafka broker (KRaft mode) for tests, demos and benches.
//!
//! The broker is a plain `java` process using jars fetched once from Maven Central
//! (`xtask/kafka/pom.xml`) into `<cache>/kafka-4.1.1/libs`. Its config, data, pid file
//! and log live in `<cache>/kafka-run`. Only the process named in our pid file is ever
//! stopped.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::{Context, Result};
use crate::paths;
use crate::process::{self, Poll};

/// The Kafka release we run.
pub const VERSION: &str = "4.1.1";
/// Where clients reach our broker.
pub const BOOTSTRAP: &str = "127.0.0.1:9092";
/// The KRaft controller listener.
const CONTROLLER: &str = "127.0.0.1:9093";
/// Set this to use an existing broker instead of starting one.
pub const BOOTSTRAP_ENV: &str = "KAFKA_BOOTSTRAP";

/// Jars whose presence marks a complete fetch (the broker and its logging backend,
/// which must match the `slf4j-api` 1.x that Kafka 4.1 uses, or the log stays empty).
const MARKER_JARS: &[&str] = &["kafka_2.13-4.1.1.jar", "slf4j-simple-1.7.36.jar"];
/// Tells tests where the broker jars are, for private brokers of their own.
pub const LIBS_ENV: &str = "KAFKA_LIBS";

/// The log line that says the broker is ready.
const READY_LINE: &str = "Kafka Server started";
const START_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Identifies our broker in `/proc/<pid>/cmdline`.
const MAIN_CLASS: &str = "kafka.Kafka";

/// Whether `ensure_up` started the broker (true) or found it running (false).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started(pub bool);

pub fn libs_dir() -> PathBuf {
    paths::cache_root().join(format!("kafka-{VERSION}")).join("libs")
}

fn run_dir() -> PathBuf {
    paths::cache_root().join("kafka-run")
}

fn pid_file() -> PathBuf {
    run_dir().join("kafka.pid")
}

fn log_file() -> PathBuf {
    run_dir().join("broker.log")
}

fn classpath() -> String {
    format!("{}/*", libs_dir().display())
}

/// The pid of our running broker, if any (a stale pid file is removed).
pub fn running_pid() -> Option<u32> {
    let pid = process::read_pid(&pid_file())?;
    if process::is_alive_running(pid, MAIN_CLASS) {
        Some(pid)
    } else {
        // The broker died or the machine rebooted: forget it.
        let _ = fs::remove_file(pid_file());
        None
    }
}

/// `cargo xtask kafka up`: keeps the topics of earlier runs.
pub fn up() -> Result<()> {
    if ensure_up(Storage::Keep)? == Started(true) {
        println!("Kafka {VERSION} is up: bootstrap {BOOTSTRAP}");
    }
    Ok(())
}

/// `cargo xtask kafka status`.
pub fn status() -> Result<()> {
    match running_pid() {
        Some(pid) if process::port_open(BOOTSTRAP) => {
            println!("running (pid {pid}), bootstrap {BOOTSTRAP}");
        }
        Some(pid) => println!("starting or unhealthy (pid {pid}): {BOOTSTRAP} does not answer"),
        None => println!("not running (start it with `cargo xtask kafka up`)"),
    }
    Ok(())
}

/// What a broker this starts finds in its data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// The topics of earlier runs (`kafka up`, for a developer's services).
    Keep,
    /// Nothing: tests, benches and demos name their topics uniquely, and a
    /// broker carrying the tens of thousands of partitions earlier runs
    /// left behind answered admin requests so slowly that creating a topic
    /// timed out.
    Fresh,
}

/// Starts the broker unless ours is already running. Fails with a clear message when
/// the ports are taken by something else, Java is missing, or the broker does not start.
pub fn ensure_up(storage: Storage) -> Result<Started> {
    if let Some(pid) = running_pid() {
        if !process::port_open(BOOTSTRAP) {
            println!("Kafka (pid {pid}) is starting; waiting for {BOOTSTRAP}");
            wait_ready(pid, None)?;
        }
        println!("Kafka already running (pid {pid}), bootstrap {BOOTSTRAP}");
        return Ok(Started(false));
    }
    for addr in [BOOTSTRAP, CONTROLLER] {
        if process::port_open(addr) {
            return Err(format!(
                "{addr} is in use by a process that xtask did not start. Stop it, or use that \
                 broker by setting {BOOTSTRAP_ENV}=host:port"
            ));
        }
    }
    if !process::succeeds(Command::new("java").arg("-version")) {
        return Err("`java` is missing: install Java 17+ \
                    (apt-get install openjdk-17-jre-headless)"
            .to_string());
    }
    ensure_jars()?;
    if storage == Storage::Fresh {
        remove_dir_if_present(&run_dir().join("data"))?;
    }
    prepare_run_dir()?;
    let mut child = spawn_broker()?;
    let pid = child.id();
    if let Err(e) = wait_ready(pid, Some(&mut child)) {
        // Never leave a half-started broker behind.
        let _ = process::stop_pid(pid, "TERM", Duration::from_secs(10));
        let _ = child.try_wait();
        let _ = fs::remove_file(pid_file());
        if crate::interrupt::requested() {
            return Err(e);
        }
        return Err(format!(
            "Kafka did not start: {e}\n--- last 30 lines of {} ---\n{}",
            log_file().display(),
            process::tail(&log_file(), 30)
        ));
    }
    Ok(Started(true))
}

/// `cargo xtask kafka down`: stops our broker (SIGTERM, then SIGKILL after 30 s).
pub fn down() -> Result<()> {
    let Some(pid) = running_pid() else {
        println!("Kafka is not running");
        return Ok(());
    };
    println!("stopping Kafka (pid {pid})");
    process::stop_pid(pid, "TERM", STOP_TIMEOUT)?;
    fs::remove_file(pid_file())
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        })
        .context(|| format!("removing {}", pid_file().display()))?;
    println!("Kafka stopped");
    Ok(())
}

/// Whether `libs` holds a complete fetch.
fn jars_complete(libs: &Path) -> bool {
    MARKER_JARS.iter().all(|jar| libs.join(jar).is_file())
}

/// Fetches the broker jars with Maven unless a complete copy is cached. Maven writes into
/// a temporary directory that is renamed into place, so a half-fetch never looks complete.
pub fn ensure_jars() -> Result<()> {
    let libs = libs_dir();
    if jars_complete(&libs) {
        return Ok(());
    }
    if !process::succeeds(Command::new("mvn").arg("--version")) {
        return Err("`mvn` is missing: install Maven (apt-get install maven); it fetches \
                    the Kafka jars from Maven Central once"
            .to_string());
    }
    let parent = libs.parent().map_or_else(paths::cache_root, Path::to_path_buf);
    fs::create_dir_all(&parent).context(|| format!("creating {}", parent.display()))?;
    let tmp = parent.join(format!("libs.tmp-{}", std::process::id()));
    remove_dir_if_present(&tmp)?;
    let pom = paths::workspace_root().join("xtask/kafka/pom.xml");
    println!("fetching Kafka {VERSION} jars from Maven Central into {} (once, about a minute)", libs.display());
    let fetched = process::run(
        Command::new("mvn")
            .args(["-q", "-B"])
            .arg("-f")
            .arg(&pom)
            .arg("dependency:copy-dependencies")
            .arg(format!("-DoutputDirectory={}", tmp.display()))
            .arg("-DincludeScope=runtime"),
    );
    if let Err(e) = fetched.and_then(|()| {
        if jars_complete(&tmp) {
            Ok(())
        } else {
            Err(format!("Maven finished but {MARKER_JARS:?} are missing; check {}", pom.display()))
        }
    }) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(format!(
            "fetching the Kafka jars failed: {e}\nCheck that Maven Central is reachable, \
             then run `cargo xtask kafka up` again"
        ));
    }
    // Swap in the complete copy; an incomplete old one is moved aside first.
    let old = parent.join(format!("libs.old-{}", std::process::id()));
    if libs.exists() {
        fs::rename(&libs, &old).context(|| format!("moving aside {}", libs.display()))?;
    }
    fs::rename(&tmp, &libs).context(|| format!("renaming {} into place", tmp.display()))?;
    remove_dir_if_present(&old)
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// The single-node KRaft configuration (see docs in `KAFKA.md`).
fn server_properties(data_dir: &Path) -> String {
    format!(
        "# Written by `cargo xtask kafka up`; rewritten on every start.\n\
         process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.voters=1@{CONTROLLER}\n\
         listeners=PLAINTEXT://{BOOTSTRAP},CONTROLLER://{CONTROLLER}\n\
         advertised.listeners=PLAINTEXT://{BOOTSTRAP}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=PLAINTEXT\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
         log.dirs={}\n\
         num.partitions=3\n\
         offsets.topic.replication.factor=1\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         share.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\n\
         group.initial.rebalance.delay.ms=0\n\
         auto.create.topics.enable=false\n\
         num.network.threads=2\n\
         num.io.threads=2\n",
        data_dir.display()
    )
}

/// Writes `server.properties` and formats the storage once.
fn prepare_run_dir() -> Result<()> {
    let run = run_dir();
    let data = run.join("data");
    fs::create_dir_all(&run).context(|| format!("creating {}", run.display()))?;
    let props = run.join("server.properties");
    fs::write(&props, server_properties(&data)).context(|| format!("writing {}", props.display()))?;
    if data.join("meta.properties").is_file() {
        return Ok(());
    }
    println!("formatting Kafka storage in {}", data.display());
    let uuid_out = process::output(
        Command::new("java").arg("-cp").arg(classpath()).args(["kafka.tools.StorageTool", "random-uuid"]),
    )?;
    let cluster_id = uuid_out
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .ok_or("kafka.tools.StorageTool random-uuid printed no cluster id")?
        .to_string();
    process::output(
        Command::new("java")
            .arg("-cp")
            .arg(classpath())
            .args(["kafka.tools.StorageTool", "format", "-t", &cluster_id, "-c"])
            .arg(&props),
    )
    .map(|_| ())
    .map_err(|e| format!("formatting Kafka storage failed: {e}"))
}

/// Starts the broker detached in its own process group (so Ctrl-C in the terminal does
/// not hit it) with its output in `broker.log`, and writes the pid file.
fn spawn_broker() -> Result<Child> {
    let log_path = log_file();
    let log = fs::File::create(&log_path).context(|| format!("creating {}", log_path.display()))?;
    let log_err = log.try_clone().context(|| format!("opening {}", log_path.display()))?;
    let mut cmd = Command::new("java");
    cmd.args(["-Xms512m", "-Xmx512m", "-cp"])
        .arg(classpath())
        .arg(MAIN_CLASS)
        .arg(run_dir().join("server.properties"))
        .current_dir(run_dir())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    println!("starting Kafka {VERSION} (log: {})", log_path.display());
    let child = cmd.spawn().context(|| format!("cannot start `{}`", process::describe(&cmd)))?;
    fs::write(pid_file(), format!("{}\n", child.id())).context(|| format!("writing {}", pid_file().display()))?;
    Ok(child)
}

/// Waits until the log says the broker started and the port answers. With the child
/// handle, a broker that exits early is detected at once.
fn wait_ready(pid: u32, mut child: Option<&mut Child>) -> Result<()> {
    let started = std::time::Instant::now();
    process::poll_until(START_TIMEOUT, Duration::from_millis(250), || {
        let exited = match child.as_mut() {
            Some(child) => {
                child.try_wait().context(|| "checking the broker process".to_string())?.map(|status| status.to_string())
            }
            None => (!process::is_alive(pid)).then(|| "exited".to_string()),
        };
        if let Some(status) = exited {
            return Err(format!("the broker process {pid} exited early ({status})"));
        }
        let log = fs::read(log_file()).unwrap_or_default();
        let logged = String::from_utf8_lossy(&log).contains(READY_LINE);
        Ok(if logged && process::port_open(BOOTSTRAP) { Poll::Ready } else { Poll::Pending })
    })?;
    println!("Kafka ready in {:.1} s (pid {pid})", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_properties_are_single_node_kraft_on_loopback() {
        let props = server_properties(Path::new("/tmp/k/data"));
        assert!(props.contains("controller.quorum.voters=1@127.0.0.1:9093\n"));
        assert!(props.contains("advertised.listeners=PLAINTEXT://127.0.0.1:9092\n"));
        assert!(props.contains("log.dirs=/tmp/k/data\n"));
        assert!(props.contains("num.partitions=3\n"));
        assert!(props.contains("auto.create.topics.enable=false\n"));
        assert!(!props.contains("localhost"));
    }

    #[test]
    fn an_empty_libs_dir_is_incomplete() {
        assert!(!jars_complete(Path::new("/nonexistent/libs")));
    }
}
