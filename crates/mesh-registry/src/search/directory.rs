//! The index's storage: tantivy's RAM directory, except for how a blocking
//! lock waits.
//!
//! Reloading the reader after a commit takes the directory's meta lock,
//! which the writer's file collection (after commits and merges) also
//! takes for a moment. Tantivy's default waits for a busy blocking lock by
//! sleeping 100 ms between attempts, so a search that happened to commit
//! next to a merge stalled for 100 ms. Here a busy lock is retried every
//! 50 µs instead (for at most ten seconds, as tantivy's hundred tries of
//! 100 ms).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    Directory, DirectoryLock, FileHandle, Lock, RamDirectory, WatchCallback, WatchHandle, WritePtr,
};

const RETRY_EVERY: Duration = Duration::from_micros(50);
const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
pub(super) struct RamDir(RamDirectory, Arc<AtomicU64>);

impl RamDir {
    /// How often a blocking lock found the lock busy and tried again.
    #[cfg(test)]
    fn busy_retries(&self) -> u64 {
        self.1.load(Ordering::Relaxed)
    }
}

impl Directory for RamDir {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        self.0.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.0.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.0.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        self.0.open_write(path)
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.0.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.0.atomic_write(path, data)
    }

    fn sync_directory(&self) -> io::Result<()> {
        self.0.sync_directory()
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        let once = Lock { filepath: lock.filepath.clone(), is_blocking: false };
        let started = Instant::now();
        loop {
            match self.0.acquire_lock(&once) {
                Err(LockError::LockBusy) if lock.is_blocking && started.elapsed() < GIVE_UP_AFTER => {
                    self.1.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(RETRY_EVERY);
                }
                other => return other,
            }
        }
    }

    fn watch(&self, watch_callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.0.watch(watch_callback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocking_lock_waits_for_its_release_and_a_non_blocking_one_does_not() {
        let dir = RamDir::default();
        let lock = |is_blocking| Lock { filepath: ".test.lock".into(), is_blocking };
        let held = dir.acquire_lock(&lock(false)).expect("first");
        assert!(matches!(dir.acquire_lock(&lock(false)), Err(LockError::LockBusy)));
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waiter = {
            let (dir, released) = (dir.clone(), released.clone());
            std::thread::spawn(move || {
                let got = dir.acquire_lock(&lock(true));
                (got.is_ok(), released.load(Ordering::SeqCst))
            })
        };
        // Release only once the waiter has found the lock busy at least once.
        let deadline = Instant::now() + Duration::from_secs(10);
        while dir.busy_retries() == 0 {
            assert!(Instant::now() < deadline, "the waiter never tried the busy lock");
            std::thread::yield_now();
        }
        released.store(true, Ordering::SeqCst);
        drop(held);
        let (acquired, after_release) = waiter.join().expect("thread");
        assert!(acquired, "the blocking lock is acquired once released");
        assert!(after_release, "and not before");
    }
}
