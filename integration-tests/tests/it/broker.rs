//! A private single-node Kafka broker for fault tests that stop and restart
//! it on purpose (the shared broker of the test run is never touched), and
//! for the SASL_SSL listener test (a certificate made with Java's keytool,
//! SCRAM users stored at format time). Uses the jars `cargo xtask test`
//! points at with `KAFKA_LIBS`.

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

/// A SCRAM-SHA-256 user of a [`PrivateBroker::start_sasl_ssl`] broker.
#[derive(Debug, Clone)]
pub struct ScramUser {
    pub name: String,
    pub password: String,
}

/// What a client needs to reach the SASL_SSL listener.
#[derive(Debug, Clone)]
pub struct SecureListener {
    pub bootstrap: String,
    /// PEM of the broker's self-signed certificate (its own CA).
    pub ca_pem: PathBuf,
}

const STORE_PASSWORD: &str = "broker-store-secret";

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
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
        let listeners = format!(
            "listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
        );
        Self::format_and_start(dir, port, controller, &listeners, &[])
    }

    /// A broker whose clients must come over SASL_SSL with SCRAM-SHA-256:
    /// a self-signed certificate for 127.0.0.1 made with keytool, `users`
    /// stored in the cluster metadata when the storage is formatted. The
    /// broker talks to itself over a PLAINTEXT listener clients are not
    /// told about.
    pub fn start_sasl_ssl(name: &str, users: &[ScramUser]) -> (Self, SecureListener) {
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("broker dir");
        let keystore = dir.join("broker.p12");
        let ca_pem = dir.join("ca.pem");
        run(
            Command::new("keytool")
                .args(["-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048", "-validity", "2"])
                .args(["-dname", "CN=127.0.0.1", "-ext", "SAN=IP:127.0.0.1,DNS:localhost", "-storetype", "PKCS12"])
                .args(["-storepass", STORE_PASSWORD, "-keypass", STORE_PASSWORD, "-keystore"])
                .arg(&keystore),
            "keytool -genkeypair",
        );
        run(
            Command::new("keytool")
                .args(["-exportcert", "-rfc", "-alias", "broker", "-storepass", STORE_PASSWORD, "-keystore"])
                .arg(&keystore)
                .arg("-file")
                .arg(&ca_pem),
            "keytool -exportcert",
        );
        let (port, internal, controller) = (free_port(), free_port(), free_port());
        let listeners = format!(
            "listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL\n\
             sasl.enabled.mechanisms=SCRAM-SHA-256\n\
             listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
             ssl.keystore.type=PKCS12\nssl.keystore.location={}\nssl.keystore.password={STORE_PASSWORD}\nssl.key.password={STORE_PASSWORD}\n",
            keystore.display()
        );
        let scram: Vec<String> =
            users.iter().map(|u| format!("SCRAM-SHA-256=[name={},password={}]", u.name, u.password)).collect();
        let broker = Self::format_and_start(dir, port, controller, &listeners, &scram);
        let listener = SecureListener { bootstrap: broker.bootstrap(), ca_pem };
        (broker, listener)
    }

    fn format_and_start(dir: PathBuf, port: u16, controller: u16, listeners: &str, scram: &[String]) -> Self {
        let inter = if listeners.contains("INTERNAL://") { "INTERNAL" } else { "PLAINTEXT" };
        let props = format!(
            "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:{controller}\n\
             {listeners}controller.listener.names=CONTROLLER\ninter.broker.listener.name={inter}\n\
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
        let mut format = Command::new("java");
        format
            .args(["-cp", &classpath(), "kafka.tools.StorageTool", "format", "-t", &id, "-c"])
            .arg(dir.join("server.properties"));
        for s in scram {
            format.args(["--add-scram", s]);
        }
        run(&mut format, "formatting broker storage");
        let mut broker = Self { dir, port, child: None };
        broker.resume();
        broker
    }

    /// The broker's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("broker.log")
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
