//! A small connection pool: a fixed number of slots, each a lazily opened
//! connection (with its prepared statements) behind a tokio mutex, handed
//! out first-free. A connection found closed is reopened on its next lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use tokio_postgres::{Client, NoTls};

use super::db;
use super::sql::{Names, Statements};
use crate::Result;

/// One open connection and its prepared statements.
#[derive(Debug)]
pub struct Conn {
    pub client: Client,
    pub st: Statements,
}

/// A leased connection; back in the pool when dropped.
pub type Lease<'a> = MappedMutexGuard<'a, Conn>;

#[derive(Debug)]
pub struct Pool {
    url: String,
    names: Arc<Names>,
    slots: Vec<Mutex<Option<Conn>>>,
    /// Where the next waiter queues when every slot is busy.
    next_wait: AtomicUsize,
}

impl Pool {
    /// A pool of `size` slots (at least one); `first` fills the first slot.
    pub fn new(url: &str, names: Arc<Names>, size: usize, first: Conn) -> Self {
        let mut slots: Vec<_> = (1..size.max(1)).map(|_| Mutex::new(None)).collect();
        slots.insert(0, Mutex::new(Some(first)));
        Self { url: url.to_owned(), names, slots, next_wait: AtomicUsize::new(0) }
    }

    /// The first free slot (so a lone caller keeps reusing one connection),
    /// or queues on the slots in turn when all are taken.
    pub async fn get(&self) -> Result<Lease<'_>> {
        let free = self.slots.iter().find_map(|s| s.try_lock().ok());
        let mut guard = match free {
            Some(g) => g,
            None => {
                let i = self.next_wait.fetch_add(1, Ordering::Relaxed) % self.slots.len();
                self.slots[i].lock().await
            }
        };
        if guard.as_ref().is_none_or(|c| c.client.is_closed()) {
            *guard = None;
            let client = open(&self.url).await?;
            let st = Statements::prepare(&client, &self.names).await?;
            *guard = Some(Conn { client, st });
        }
        MutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| crate::Error::Database("pool slot unexpectedly empty".to_owned()))
    }
}

/// Opens a connection and drives it on its own task until the client drops.
pub async fn open(url: &str) -> Result<Client> {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls).await.map_err(|e| db("connecting to PostgreSQL", &e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}
