//! The bus over a broker whose only client listener is SASL_SSL with
//! SCRAM-SHA-256 (certificate made by keytool in the test): the right
//! credentials publish and consume, wrong ones, an unknown user, a client
//! that does not trust the certificate and a plaintext client are refused;
//! `platform serve` takes the same settings from the environment.

use std::time::Duration;

use domain_core::bus::{EventBus, TopicSpec, contract::collect};
use kafka_bus::{KafkaBus, KafkaConfig};

use super::broker::{PrivateBroker, ScramUser, SecureListener};
use super::http::Served;
use super::support::{counted, unique};

fn secure(listener: &SecureListener, user: &str, password: &str, trust: bool) -> KafkaConfig {
    let mut c = KafkaConfig::new(listener.bootstrap.as_str())
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-256")
        .set("sasl.username", user)
        .set("sasl.password", password);
    if trust {
        c = c.set("ssl.ca.location", &listener.ca_pem.display().to_string());
    }
    c
}

async fn refused(config: KafkaConfig, what: &str) -> String {
    let bus = KafkaBus::connect(config).expect("a client is created lazily");
    let err = bus.ping().await.expect_err(what);
    err.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sasl_ssl_listener_takes_the_right_credentials_and_refuses_wrong_ones() {
    let _heavy = super::support::heavy().await;
    let alice = ScramUser { name: "alice".into(), password: "alice-secret".into() };
    let (broker, listener) = PrivateBroker::start_sasl_ssl(&unique("sasl-broker"), std::slice::from_ref(&alice));

    // The right credentials: a topic, a record published and read back.
    let bus = KafkaBus::connect(secure(&listener, &alice.name, &alice.password, true)).expect("connect");
    // The port accepts before the broker serves: wait until alice gets in.
    let shared = &bus;
    let reached =
        super::support::wait_until_async(Duration::from_secs(90), || async move { shared.ping().await.is_ok() }).await;
    assert!(reached, "alice reaches the broker: {:?}; see {}", bus.ping().await.err(), broker.log_path().display());
    let topic = unique("secure");
    bus.create_topics(&[TopicSpec::new(&topic, 1)]).await.expect("create topic over SASL_SSL");
    bus.publish(&topic, &[counted("acct-1", 1, 7)]).await.expect("publish over SASL_SSL");
    let mut sub = bus.subscribe(&unique("g"), &[&topic]).await.expect("subscribe");
    let got = collect(sub.as_mut(), 1).await;
    assert_eq!(got.len(), 1, "the record came back");
    assert_eq!(got[0].envelope(bus.max_record_bytes()).expect("decodes").data["n"], 7);
    sub.close().await.expect("close");

    // Wrong ones are refused.
    // librdkafka tells the reason (authentication failed, certificate not
    // trusted) to its log; the request itself fails as a transport failure.
    for (config, what) in [
        (secure(&listener, &alice.name, "guess", true), "a wrong password"),
        (secure(&listener, "mallory", "alice-secret", true), "an unknown user"),
        (secure(&listener, &alice.name, &alice.password, false), "a certificate the client does not trust"),
        (KafkaConfig::new(listener.bootstrap.as_str()), "plaintext to a TLS listener"),
    ] {
        let why = refused(config, what).await;
        assert!(why.contains("metadata"), "{what}: {why}");
    }

    // `platform serve` over the same listener, configured by environment.
    let data = std::env::temp_dir().join(unique("sasl-serve"));
    let ca = listener.ca_pem.display().to_string();
    let env = |password: &'static str| {
        vec![
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL".to_owned()),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256".to_owned()),
            ("KAFKA_SASL_USERNAME", "alice".to_owned()),
            ("KAFKA_SASL_PASSWORD", password.to_owned()),
            ("KAFKA_SSL_CA_LOCATION", ca.clone()),
        ]
    };
    let right = env("alice-secret");
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut served = Served::spawn(&listener.bootstrap, &["orders"], &data.join("ok"), "s.", &right);
    served.wait_ready().await;
    let r = served.client().get("/readyz").await;
    assert_eq!(r.json()["checks"]["bus"]["ok"], serde_json::json!(true), "{}", r.text());
    assert_eq!(served.terminate(Duration::from_secs(60)).code(), Some(0));
    let wrong = env("guess");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut refused_service = Served::spawn(&listener.bootstrap, &["orders"], &data.join("wrong"), "s.", &wrong);
    let status = refused_service.wait_exit(Duration::from_secs(120));
    assert!(!status.success(), "wrong credentials stop the service");
    assert!(refused_service.log().contains("error:"), "it says why:\n{}", refused_service.log());
    drop(broker);
    std::fs::remove_dir_all(&data).ok();
}
