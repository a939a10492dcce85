//! The exclusive lock on a data directory: a second process opening the
//! same directory fails fast instead of corrupting what the first writes.

/// What [`lock_dir`] reports.
#[derive(Debug)]
pub enum DirLock {
    /// This process now holds the directory; keep the file open.
    Held(std::fs::File),
    /// Another process (or handle) holds it.
    Busy,
}

/// Creates `dir` and takes an exclusive lock on its `LOCK` file.
pub fn lock_dir(dir: &std::path::Path) -> std::io::Result<DirLock> {
    std::fs::create_dir_all(dir)?;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("LOCK"))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock::Held(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(DirLock::Busy),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_of_a_held_directory_is_busy_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("disk-format-lock-{}", std::process::id()));
        let first = lock_dir(&dir).expect("lock");
        assert!(matches!(first, DirLock::Held(_)));
        assert!(matches!(lock_dir(&dir).expect("lock"), DirLock::Busy));
        drop(first);
        assert!(matches!(lock_dir(&dir).expect("lock"), DirLock::Held(_)));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
