//! A read model's redb file (feature `redb`): what the embedded read models
//! of every context share, so each adapter only says which tables a batch
//! touches. One write transaction per batch; a copy being rebuilt commits
//! without syncing until [`RedbFile::sync`], one durable commit that redb
//! makes cover every commit before it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, Durability, WriteTransaction};

use crate::RecordedText;

/// An open redb read model. Cloning shares the open database.
#[derive(Debug, Clone)]
pub struct RedbFile {
    db: Arc<Database>,
    path: PathBuf,
    /// Commit without syncing (a copy being rebuilt) until [`RedbFile::sync`].
    relaxed: Arc<AtomicBool>,
}

impl RedbFile {
    /// Opens (or creates) `path` and lets `init` create its tables in a
    /// first transaction. A second open of the same file while one is open
    /// fails (`DatabaseAlreadyOpen`).
    pub fn open<E: From<redb::Error>>(
        path: PathBuf,
        relaxed: bool,
        init: impl FnOnce(&WriteTransaction) -> Result<(), E>,
    ) -> Result<Self, E> {
        let db = Database::create(&path).map_err(redb::Error::from)?;
        let txn = db.begin_write().map_err(redb::Error::from)?;
        init(&txn)?;
        txn.commit().map_err(redb::Error::from)?;
        Ok(Self { db: Arc::new(db), path, relaxed: Arc::new(AtomicBool::new(relaxed)) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open database, for work that outlives a call (a writer thread).
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// Runs `f` on tokio's blocking pool (redb is synchronous).
    pub async fn blocking<T, E>(&self, f: impl FnOnce(&Database) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<tokio::task::JoinError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db)).await?
    }

    /// Writes `batch` with `write` in one transaction: committed when it
    /// returns `true`, aborted when it returns `false` (nothing new) or
    /// fails (see [`RedbFile::in_place`] for where it runs).
    pub async fn apply<E>(
        &self,
        batch: &[RecordedText],
        write: impl FnOnce(&WriteTransaction, &[RecordedText]) -> Result<bool, E> + Send + 'static,
    ) -> Result<(), E>
    where
        E: From<redb::Error> + From<tokio::task::JoinError> + std::fmt::Display + Send + 'static,
    {
        let relaxed = self.is_relaxed();
        self.in_place(batch, move |db, batch| write_once(db, relaxed, |txn| write(txn, batch))).await
    }

    /// Runs `f` on the database with `batch`. On a multi-threaded runtime
    /// it runs in place (the worker's other tasks move to another thread
    /// meanwhile), so the batch is not copied; a current-thread runtime
    /// cannot block in place, so there it runs on the blocking pool with a
    /// copy.
    pub async fn in_place<T, E>(
        &self,
        batch: &[RecordedText],
        f: impl FnOnce(&Database, &[RecordedText]) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<tokio::task::JoinError> + Send + 'static,
    {
        if tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            return tokio::task::block_in_place(|| f(&self.db, batch));
        }
        let batch = batch.to_vec();
        self.blocking(move |db| f(db, &batch)).await
    }

    /// Whether commits skip the sync: a copy being rebuilt, until [`RedbFile::sync`].
    pub fn is_relaxed(&self) -> bool {
        self.relaxed.load(Ordering::Acquire)
    }

    /// Makes every relaxed commit so far durable with one durable commit
    /// that also writes what `finish` writes (what a copy held back while
    /// it was fed), and commits durably from now on; nothing to do for a
    /// file that was never relaxed.
    pub async fn sync<E>(
        &self,
        finish: impl FnOnce(&WriteTransaction) -> Result<(), E> + Send + 'static,
    ) -> Result<(), E>
    where
        E: From<redb::Error> + From<tokio::task::JoinError> + Send + 'static,
    {
        if !self.is_relaxed() {
            return Ok(());
        }
        self.blocking(|db| {
            let mut txn = db.begin_write().map_err(redb::Error::from)?;
            txn.set_durability(Durability::Immediate).map_err(redb::Error::from)?;
            finish(&txn)?;
            txn.commit().map_err(redb::Error::from)?;
            Ok::<_, E>(())
        })
        .await?;
        self.relaxed.store(false, Ordering::Release);
        Ok(())
    }
}

/// One write transaction of `write` (committed when it returns `true`,
/// aborted when `false` or on failure), durable unless `relaxed`.
pub fn write_once<E: From<redb::Error> + std::fmt::Display>(
    db: &Database,
    relaxed: bool,
    write: impl FnOnce(&WriteTransaction) -> Result<bool, E>,
) -> Result<(), E> {
    let mut txn = db.begin_write().map_err(redb::Error::from)?;
    if relaxed {
        txn.set_durability(Durability::None).map_err(redb::Error::from)?;
    }
    match write(&txn) {
        Ok(true) => Ok(txn.commit().map_err(redb::Error::from)?),
        Ok(false) => Ok(txn.abort().map_err(redb::Error::from)?),
        Err(e) => {
            if let Err(abort) = txn.abort() {
                tracing::warn!(error = %abort, failure = %e, "aborting a failed read-model batch failed too");
            }
            Err(e)
        }
    }
}
