//! Rebuilds without downtime for a read model kept as numbered generations,
//! whatever the context and the storage.
//!
//! [`Serving`] answers from the generation that serves. A rebuild
//! ([`crate::ProjectionRunner::rebuild`]) asks for a fresh copy, the next
//! generation, which is fed from position 1 beside the serving one; at the
//! switch-over the copy is made durable, recorded as the one that serves,
//! and swapped in under one pointer write, so a query answers either from
//! the old, whole model or from the new, whole model. The old generation's
//! storage is dropped after. A rebuild cut short (a crash, a poison event)
//! leaves a generation that never served; opening or the next rebuild
//! removes it.
//!
//! Each adapter keeps its generations where its rows live, behind
//! [`Generations`]; [`GenerationFiles`] is the file-per-generation layout
//! the embedded adapters share.

use std::fmt::{self, Debug};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use async_trait::async_trait;

/// Where a read model keeps its generations: the one that serves and,
/// during a rebuild, the next one beside it. Numbers only grow.
#[async_trait]
pub trait Generations: Send + Sync + Debug {
    /// The read model a generation is (usually `dyn SomeReadModel`).
    type Model: ?Sized + Send + Sync;
    /// The owning context's error.
    type Error: Send;

    /// The generation that serves (0 before the first rebuild).
    async fn active(&self) -> Result<u64, Self::Error>;

    /// Opens generation `generation`, creating it empty if missing. A
    /// `fresh` one is being built by a rebuild and may commit without
    /// syncing until it is switched to: nothing reads it before then, and
    /// a crash before then only loses a copy that never served.
    async fn open(&self, generation: u64, fresh: bool) -> Result<Arc<Self::Model>, Self::Error>;

    /// Durably records `generation` as the one that serves.
    async fn activate(&self, generation: u64) -> Result<(), Self::Error>;

    /// Drops the storage of `generation` (nothing if there is none).
    async fn remove(&self, generation: u64) -> Result<(), Self::Error>;
}

/// The generations of read models of type `M` whose adapters fail with `E`.
pub type DynGenerations<M, E> = dyn Generations<Model = M, Error = E>;

/// A read model answered from its serving generation, with a copy beside
/// it while a rebuild runs. The owning context wraps it in its read-model
/// trait, delegating each query to [`Serving::current`].
pub struct Serving<M: ?Sized, E> {
    generations: Arc<DynGenerations<M, E>>,
    serving: RwLock<Generation<M>>,
    pending: Mutex<Option<Generation<M>>>,
}

struct Generation<M: ?Sized> {
    number: u64,
    model: Arc<M>,
}

impl<M: ?Sized> Clone for Generation<M> {
    fn clone(&self) -> Self {
        Self { number: self.number, model: Arc::clone(&self.model) }
    }
}

impl<M: ?Sized, E> Debug for Serving<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serving")
            .field("generations", &self.generations)
            .field("serving", &self.current_generation().number)
            .field("pending", &self.pending().as_ref().map(|g| g.number))
            .finish()
    }
}

impl<M: ?Sized + Send + Sync, E: Send + fmt::Display> Serving<M, E> {
    /// Opens the generation that serves and removes what is left of the
    /// generations around it (a rebuild that never switched over, an old
    /// copy whose removal failed).
    pub async fn open(generations: Arc<DynGenerations<M, E>>) -> Result<Self, E> {
        let active = generations.active().await?;
        generations.remove(active + 1).await?;
        if let Some(previous) = active.checked_sub(1) {
            generations.remove(previous).await?;
        }
        let model = generations.open(active, false).await?;
        Ok(Self::with_serving(generations, active, model))
    }

    /// Serves `model`, generation `number` of `generations` (opened and
    /// tidied by the caller).
    pub fn with_serving(generations: Arc<DynGenerations<M, E>>, number: u64, model: Arc<M>) -> Self {
        Self { generations, serving: RwLock::new(Generation { number, model }), pending: Mutex::new(None) }
    }

    /// The number of the generation that serves.
    pub fn generation(&self) -> u64 {
        self.current_generation().number
    }

    /// The model that serves now: a query takes it once and answers from it.
    pub fn current(&self) -> Arc<M> {
        self.current_generation().model
    }

    /// A fresh, empty copy: the next generation, opened `fresh`, with the
    /// leftovers of an earlier attempt dropped first.
    pub async fn fresh_copy(&self) -> Result<Arc<M>, E> {
        let number = self.generation() + 1;
        self.pending().take();
        self.generations.remove(number).await?;
        let model = self.generations.open(number, true).await?;
        *self.pending() = Some(Generation { number, model: Arc::clone(&model) });
        Ok(model)
    }

    /// Makes the copy of the last [`Serving::fresh_copy`] durable (`sync`),
    /// records it as the one that serves and swaps it in, then drops the
    /// old generation. `false` when there is no copy to switch to.
    pub async fn switch_to_copy<F, Fut>(&self, sync: F) -> Result<bool, E>
    where
        F: FnOnce(Arc<M>) -> Fut + Send,
        Fut: Future<Output = Result<(), E>> + Send,
    {
        let Some(copy) = self.pending().take() else { return Ok(false) };
        sync(Arc::clone(&copy.model)).await?;
        self.generations.activate(copy.number).await?;
        let old = std::mem::replace(&mut *self.serving.write().unwrap_or_else(PoisonError::into_inner), copy);
        let number = old.number;
        drop(old);
        // The switch is done; an old copy that cannot be removed now is
        // only disk space, and the next open removes it.
        if let Err(error) = self.generations.remove(number).await {
            tracing::warn!(generation = number, %error, "the old read-model generation was not removed");
        }
        Ok(true)
    }
}

impl<M: ?Sized, E> Serving<M, E> {
    fn current_generation(&self) -> Generation<M> {
        self.serving.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn pending(&self) -> MutexGuard<'_, Option<Generation<M>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What [`GenerationFiles`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} does not name a generation (it holds `{text}`)")]
    Pointer { path: String, text: String },
}

/// Generations as files in one directory: generation 0 is `STEM.EXT`, a
/// later one `STEM.g<N>.EXT`, and `STEM.generation` names the one that
/// serves (written to a temporary file, synced, renamed over, directory
/// synced). Synchronous: callers run it where they run their file I/O.
#[derive(Debug, Clone)]
pub struct GenerationFiles {
    dir: PathBuf,
    stem: &'static str,
    ext: &'static str,
}

impl GenerationFiles {
    /// The layout in `dir`, which is created if missing.
    pub fn new(dir: impl AsRef<Path>, stem: &'static str, ext: &'static str) -> Result<Self, FileError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Self { dir, stem, ext })
    }

    /// The file of `generation`.
    pub fn file(&self, generation: u64) -> PathBuf {
        let (stem, ext) = (self.stem, self.ext);
        match generation {
            0 => self.dir.join(format!("{stem}.{ext}")),
            n => self.dir.join(format!("{stem}.g{n}.{ext}")),
        }
    }

    /// The file naming the generation that serves.
    pub fn pointer(&self) -> PathBuf {
        self.dir.join(format!("{}.generation", self.stem))
    }

    /// The generation that serves (0 without a pointer file).
    pub fn active(&self) -> Result<u64, FileError> {
        let path = self.pointer();
        match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| FileError::Pointer { path: path.display().to_string(), text: text.trim().to_owned() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The generation that serves, with the files around it (a copy that
    /// never switched over, an old one whose removal failed) removed.
    pub fn tidy(&self) -> Result<u64, FileError> {
        let active = self.active()?;
        self.remove(active + 1)?;
        if let Some(previous) = active.checked_sub(1) {
            self.remove(previous)?;
        }
        Ok(active)
    }

    /// Durably records `generation` as the one that serves.
    pub fn activate(&self, generation: u64) -> Result<(), FileError> {
        let path = self.pointer();
        let tmp = path.with_extension("generation.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(format!("{generation}\n").as_bytes()).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))
    }

    /// Removes the file of `generation` (nothing if there is none).
    pub fn remove(&self, generation: u64) -> Result<(), FileError> {
        let path = self.file(generation);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io { path: path.display().to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_name_generations_and_the_pointer_survives_a_reopen() {
        let dir = std::env::temp_dir().join(format!("generation-files-{}", uuid::Uuid::now_v7().simple()));
        let files = GenerationFiles::new(&dir, "things", "redb").expect("dir");
        assert_eq!(files.file(0), dir.join("things.redb"));
        assert_eq!(files.file(3), dir.join("things.g3.redb"));
        assert_eq!(files.active().expect("active"), 0, "no pointer: generation 0");
        for n in [0, 1, 2] {
            std::fs::write(files.file(n), b"x").expect("write");
        }
        files.activate(1).expect("activate");
        let again = GenerationFiles::new(&dir, "things", "redb").expect("dir");
        assert_eq!(again.tidy().expect("tidy"), 1);
        assert!(again.file(1).exists() && !again.file(0).exists() && !again.file(2).exists());
        again.remove(7).expect("removing a missing generation is not an error");
        std::fs::write(again.pointer(), b"one\n").expect("write");
        let err = again.active().expect_err("a pointer that names nothing");
        assert!(matches!(&err, FileError::Pointer { text, .. } if text == "one"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
