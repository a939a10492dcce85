//! Follows the global log's head for `wait_for`: a dedicated connection
//! LISTENs on the schema's channel (every append NOTIFYs its last position
//! when it commits) and, as a fallback, polls the head periodically, so a
//! missed notification (reconnect, overflow) only delays a waiter.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use super::db;
use super::sql::Names;
use crate::Result;
use crate::head::HeadWatch;

/// Aborts the task when dropped, so background work ends with its owner.
#[derive(Debug)]
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the listener task; it runs, reconnecting, until the guard drops.
/// `listening` is true while LISTEN is in effect.
pub fn spawn(
    url: String,
    names: Arc<Names>,
    head: Arc<HeadWatch>,
    poll: Duration,
    listening: watch::Sender<bool>,
) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let first = Duration::from_millis(100);
        let mut backoff = first;
        loop {
            let started = tokio::time::Instant::now();
            let result = run(&url, &names, &head, poll, &listening).await;
            listening.send_replace(false);
            if let Err(e) = result {
                tracing::warn!(error = %e, schema = %names.schema, "event store head listener failed; reconnecting");
            }
            // A connection that lived a while earns a quick reconnect.
            if started.elapsed() > Duration::from_secs(30) {
                backoff = first;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }))
}

/// One connection's life: LISTEN, then poll until the connection fails.
async fn run(
    url: &str,
    names: &Names,
    head: &Arc<HeadWatch>,
    poll: Duration,
    listening: &watch::Sender<bool>,
) -> Result<()> {
    let (client, mut connection) =
        tokio_postgres::connect(url, NoTls).await.map_err(|e| db("connecting the head listener", &e))?;
    // tokio-postgres hands notifications out of the connection itself, so
    // this task drives it instead of the usual `tokio::spawn(connection)`.
    let driver = {
        let head = Arc::clone(head);
        AbortOnDrop(tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => match n.payload().parse::<u64>() {
                        Ok(position) => head.advance(position),
                        Err(_) => tracing::warn!(payload = n.payload(), "ignoring a malformed head notification"),
                    },
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "head listener connection failed");
                        return;
                    }
                }
            }
        }))
    };
    client
        .batch_execute(&format!(r#"LISTEN "{}""#, names.channel))
        .await
        .map_err(|e| db("subscribing to head notifications", &e))?;
    listening.send_replace(true);
    let query = format!(r#"SELECT coalesce(max(position), 0)::bigint FROM "{}".events"#, names.schema);
    let statement = client.prepare(&query).await.map_err(|e| db("preparing the head poll", &e))?;
    // Anything committed before LISTEN took effect is caught by the first poll.
    loop {
        let row = client.query_one(&statement, &[]).await.map_err(|e| db("polling the head", &e))?;
        head.advance(super::to_u64(row.try_get(0).map_err(|e| db("reading the head", &e))?, "head")?);
        tokio::time::sleep(poll).await;
        if driver.0.is_finished() {
            return Err(crate::Error::Database("head listener connection closed".to_owned()));
        }
    }
}
