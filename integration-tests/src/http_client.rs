//! The service tests' and the service benches' HTTP client: the platform's
//! own (`platform::http_client`, one connection per request) with bearer
//! tokens and answers that fail the test when they are not what is asked
//! for, and the platform's strict reader of the Prometheus text format.

use serde_json::Value;

/// One answer: the platform's, with readers that fail the test instead of
/// returning an error (fields and the other readers through `Deref`).
#[derive(Debug, Clone)]
pub struct Reply(pub platform::http_client::Reply);

impl std::ops::Deref for Reply {
    type Target = platform::http_client::Reply;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Reply {
    pub fn json(&self) -> Value {
        self.0.json().unwrap_or_else(|e| panic!("status {} body is not JSON ({e}): {}", self.status, self.text()))
    }

    /// The `error.code` of a JSON error answer, checking its shape.
    pub fn error_code(&self) -> String {
        let j = self.json();
        let e = &j["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "error without a message: {j}");
        e["code"].as_str().unwrap_or_else(|| panic!("error without a code: {j}")).to_owned()
    }
}

/// A request to the service at `addr`.
#[derive(Debug, Clone)]
pub struct Client {
    pub addr: String,
    pub token: Option<String>,
}

impl Client {
    pub fn new(addr: &str) -> Self {
        Self { addr: addr.to_owned(), token: None }
    }

    pub fn with_token(&self, token: &str) -> Self {
        Self { token: Some(token.to_owned()), ..self.clone() }
    }

    /// Polls `/readyz` until it answers 200; false if `limit` passed first.
    pub async fn ready_within(&self, limit: std::time::Duration) -> bool {
        crate::wait::wait_until_async(limit, || async {
            self.send("GET", "/readyz", &[], &[]).await.is_ok_and(|r| r.status == 200)
        })
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], &[]).await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, "application/json", body.to_string().as_bytes()).await
    }

    pub async fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        self.send("POST", path, &[("Content-Type", content_type)], body)
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Sends one request; an I/O error (service gone) is returned.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(a) = &auth {
            all.push(("Authorization", a));
        }
        platform::http_client::send(&self.addr, method, path, &all, body).await.map(Reply)
    }
}

pub use platform::serve::exposition::{parse as parse_prometheus, sum};

/// A free port on the loopback (the service binds it right after).
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    drop(l);
    addr
}
