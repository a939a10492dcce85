//! A private single-node Kafka broker for fault tests that stop and restart
//! it on purpose (the shared broker of the test run is never touched).
//! Uses the jars `cargo xtask test` points at with `KAFKA_LIBS`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::wait_until;

/// A broker process on loopback ports of its own, with its data directory.
#[derive(Debug)]
pub struct PrivateBroker {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn classpath() -> String {
    let libs = std::env::var("KAFKA_LIBS")
        .unwrap_or_else(|_| panic!("KAFKA_LIBS is not set: run `cargo xtask test`, which provides the broker jars"));
    format!("{libs}/*")
}

impl PrivateBroker {
    /// Formats storage and starts the broker; returns once it accepts connections.
    pub fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("broker dir");
        let (port, controller) = (free_port(), free_port());
        let props = format!(
            "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:{controller}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\ncontroller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\nlistener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
             log.dirs={}\nnum.partitions=3\noffsets.topic.replication.factor=1\n\
             transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\nshare.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\nauto.create.topics.enable=false\nnum.network.threads=2\nnum.io.threads=2\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("server.properties"), props).expect("server.properties");
        let id = Command::new("java")
            .args(["-cp", &classpath(), "kafka.tools.StorageTool", "random-uuid"])
            .stderr(Stdio::null())
            .output()
            .expect("java runs");
        let id = String::from_utf8_lossy(&id.stdout).lines().last().unwrap_or_default().trim().to_owned();
        let formatted = Command::new("java")
            .args(["-cp", &classpath(), "kafka.tools.StorageTool", "format", "-t", &id, "-c"])
            .arg(dir.join("server.properties"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("format runs");
        assert!(formatted.success(), "formatting broker storage failed");
        let mut broker = Self { dir, port, child: None };
        broker.resume();
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker process on the existing data directory.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.join("broker.log")).expect("log file");
        let child = Command::new("java")
            .args(["-Xms256m", "-Xmx512m", "-cp", &classpath(), "kafka.Kafka"])
            .arg(self.dir.join("server.properties"))
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start broker");
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(120), || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "private broker did not start; see {}",
            self.dir.join("broker.log").display()
        );
    }

    /// Stops the broker gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            if !wait_until(Duration::from_secs(60), || child.try_wait().ok().flatten().is_some()) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
