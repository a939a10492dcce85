//! A watch on the global log's head, so readers wait instead of polling.

use std::time::Duration;

use tokio::sync::watch;

/// Publishes the durable head position to waiting readers.
#[derive(Debug)]
pub(crate) struct HeadWatch {
    tx: watch::Sender<u64>,
}

impl HeadWatch {
    pub fn new(head: u64) -> Self {
        Self { tx: watch::Sender::new(head) }
    }

    pub fn advance(&self, head: u64) {
        self.tx.send_if_modified(|h| {
            let moved = head > *h;
            *h = (*h).max(head);
            moved
        });
    }

    /// The head once it reaches `position`, or the current head after `timeout`.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> u64 {
        let mut rx = self.tx.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|h| *h >= position)).await;
        match reached {
            Ok(Ok(h)) => *h,
            _ => *self.tx.borrow(),
        }
    }
}
