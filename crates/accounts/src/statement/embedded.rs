//! The embedded statements: `statements.redb` in the accounts data
//! directory.
//!
//! One redb write transaction per batch holds the new lines, the changed
//! headers and the checkpoint, so they commit (durably: redb syncs on
//! commit) or vanish together. Lines are keyed by (account, version), so
//! a page of a statement is one range scan. redb is synchronous; its calls
//! run on tokio's blocking pool.
//!
//! Generations ([`RedbStatementGenerations`]): generation 0 is
//! `statements.redb`, a later one `statements.g<N>.redb`, and
//! `statements.generation` names the one that serves. A copy being rebuilt
//! commits without syncing; its [`StatementReadModel::sync`] is one durable
//! commit, which redb makes cover every commit before it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use event_store::RecordedText;
use event_store::generations::{GenerationFiles, Generations};
use event_store::projection_rules::unapplied;
use event_store::redb_file::RedbFile;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::fold::{account_id, evolve};
use super::{LinePage, ServingStatements, Statement, StatementHeader, StatementReadModel};
use crate::{Error, Result};

/// Account id → `StatementHeader` as JSON.
const HEADERS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("statement_headers");
/// (account id, version) → `StatementLine` as JSON.
const LINES: TableDefinition<'static, (&'static str, u64), &'static [u8]> = TableDefinition::new("statement_lines");
/// The projection's own bookkeeping.
const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("projection");
const CHECKPOINT: &str = "next_position";

/// The statements in a redb file. Cloning shares the open database.
#[derive(Debug, Clone)]
pub struct RedbStatements {
    file: RedbFile,
}

impl RedbStatements {
    pub const FILE_NAME: &'static str = "statements.redb";

    /// Opens (or creates) `dir/statements.redb`. A second open of the same
    /// file while one is open fails (`DatabaseAlreadyOpen`).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        Self::open_file(dir.join(Self::FILE_NAME), false)
    }

    /// Opens (or creates) the statements in `path`; `relaxed` commits
    /// without syncing until [`StatementReadModel::sync`].
    pub fn open_file(path: PathBuf, relaxed: bool) -> Result<Self> {
        let file = RedbFile::open(path, relaxed, |txn| {
            txn.open_table(HEADERS)?;
            txn.open_table(LINES)?;
            txn.open_table(META)?;
            Ok::<_, Error>(())
        })?;
        Ok(Self { file })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Database) -> Result<T> + Send + 'static) -> Result<T> {
        self.file.blocking(f).await
    }
}

/// Writes the batch into `txn`; `false` when the checkpoint already covers it.
fn write_batch(txn: &WriteTransaction, batch: &[RecordedText], next_position: u64) -> Result<bool> {
    let mut meta = txn.open_table(META)?;
    let checkpoint = meta.get(CHECKPOINT)?.map_or(1, |v| v.value());
    let new = unapplied(checkpoint, batch, next_position)?;
    if new.is_empty() {
        return Ok(false);
    }
    let mut headers = txn.open_table(HEADERS)?;
    let mut lines = txn.open_table(LINES)?;
    // Each touched header is read once, evolved through the batch, written once.
    let mut touched: HashMap<&str, StatementHeader> = HashMap::new();
    for event in new {
        let Some(id) = account_id(event) else { continue };
        let current = match touched.remove(id) {
            Some(h) => Some(h),
            None => match headers.get(id)? {
                Some(bytes) => Some(serde_json::from_slice(bytes.value())?),
                None => None,
            },
        };
        let (header, line) = evolve(current, id, event)?;
        lines.insert((id, line.version), serde_json::to_vec(&line)?.as_slice())?;
        touched.insert(id, header);
    }
    for (id, header) in touched {
        headers.insert(id, serde_json::to_vec(&header)?.as_slice())?;
    }
    meta.insert(CHECKPOINT, next_position)?;
    Ok(true)
}

#[async_trait]
impl StatementReadModel for RedbStatements {
    async fn apply(&self, batch: &[RecordedText], next_position: u64) -> Result<()> {
        self.file.apply(batch, move |txn, batch| write_batch(txn, batch, next_position)).await
    }

    async fn sync(&self) -> Result<()> {
        self.file.sync(|_| Ok::<_, Error>(())).await
    }

    async fn checkpoint(&self) -> Result<u64> {
        self.blocking(|db| {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            Ok(meta.get(CHECKPOINT)?.map_or(1, |v| v.value()))
        })
        .await
    }

    async fn statement(&self, account_id: &str, page: LinePage) -> Result<Option<Statement>> {
        let account_id = account_id.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let headers = txn.open_table(HEADERS)?;
            let Some(bytes) = headers.get(account_id.as_str())? else { return Ok(None) };
            let header: StatementHeader = serde_json::from_slice(bytes.value())?;
            let table = txn.open_table(LINES)?;
            let mut lines = Vec::new();
            for entry in table.range((account_id.as_str(), page.from)..(account_id.as_str(), page.end()))? {
                let (_, bytes) = entry?;
                lines.push(serde_json::from_slice(bytes.value())?);
            }
            Ok(Some(Statement { header, lines }))
        })
        .await
    }
}

/// Generations of the redb statements in one directory: see the module doc.
#[derive(Debug, Clone)]
pub struct RedbStatementGenerations {
    files: GenerationFiles,
}

impl RedbStatementGenerations {
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        Ok(Self { files: GenerationFiles::new(dir, "statements", "redb")? })
    }

    /// The serving statements of `dir`, opened without a runtime (what
    /// [`ServingStatements::open`] does, synchronously).
    pub fn open_serving(dir: impl AsRef<Path>) -> Result<ServingStatements> {
        let generations = Self::new(dir)?;
        let active = generations.files.tidy()?;
        let model = Arc::new(RedbStatements::open_file(generations.file(active), false)?);
        Ok(ServingStatements::serving(Arc::new(generations), active, model))
    }

    /// The file of `generation`.
    pub fn file(&self, generation: u64) -> PathBuf {
        self.files.file(generation)
    }
}

#[async_trait]
impl Generations for RedbStatementGenerations {
    type Model = dyn StatementReadModel;
    type Error = Error;

    async fn active(&self) -> Result<u64> {
        Ok(self.files.active()?)
    }

    async fn open(&self, generation: u64, fresh: bool) -> Result<Arc<dyn StatementReadModel>> {
        let path = self.file(generation);
        let model = tokio::task::spawn_blocking(move || RedbStatements::open_file(path, fresh)).await??;
        Ok(Arc::new(model))
    }

    async fn activate(&self, generation: u64) -> Result<()> {
        let files = self.files.clone();
        Ok(tokio::task::spawn_blocking(move || files.activate(generation)).await??)
    }

    async fn remove(&self, generation: u64) -> Result<()> {
        Ok(self.files.remove(generation)?)
    }
}

#[cfg(test)]
mod tests {
    use super::RedbStatements;
    use crate::statement::StatementReadModel;
    use crate::statement::contract::{self, TempDir};

    fn fresh() -> (TempDir, RedbStatements) {
        let dir = TempDir::new("accounts-statements");
        let model = RedbStatements::open(&dir.0).expect("open");
        (dir, model)
    }

    crate::statement::contract::statement_contract_tests!(fresh());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rebuild_moves_to_the_next_file_and_removes_the_old_one() {
        use super::RedbStatementGenerations;
        let dir = TempDir::new("accounts-statements-rebuild");
        let serving = std::sync::Arc::new(RedbStatementGenerations::open_serving(&dir.0).expect("open"));
        contract::a_rebuild_under_appends_switches_to_an_equal_copy(std::sync::Arc::clone(&serving)).await;
        let files = RedbStatementGenerations::new(&dir.0).expect("files");
        assert!(files.file(1).exists() && !files.file(0).exists(), "generation 1 serves, 0 is gone");
        drop(serving);
        // A copy a crash left behind is removed on open.
        std::fs::write(files.file(2), b"half-built").expect("write");
        let again = RedbStatementGenerations::open_serving(&dir.0).expect("reopen");
        assert_eq!(again.generation(), 1);
        assert!(!files.file(2).exists(), "the unfinished copy was removed");
        let page = crate::statement::LinePage::first();
        assert!(again.statement("account_001", page).await.expect("query").is_some());
    }

    const CRASH_DIR: &str = "ACCOUNTS_STATEMENTS_CRASH_DIR";

    /// A child process applies batches until SIGKILLed; each reopen must
    /// hold exactly what the checkpoint covers, three rounds running.
    #[test]
    fn a_kill_9_neither_loses_nor_double_applies() {
        if let Ok(dir) = std::env::var(CRASH_DIR) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let model = RedbStatements::open(&dir).expect("open");
            rt.block_on(contract::apply_until_killed(&model));
            return;
        }
        let dir = TempDir::new("accounts-statements-crash");
        let path = dir.0.display().to_string();
        let mut last = 0;
        for round in 0..3 {
            contract::kill_mid_run(
                "statement::embedded::tests::a_kill_9_neither_loses_nor_double_applies",
                (CRASH_DIR, &path),
                100 + 50 * round,
            );
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let model = RedbStatements::open(&dir.0).expect("reopen after kill -9");
            let checkpoint = rt.block_on(model.checkpoint()).expect("checkpoint");
            assert!(checkpoint > last, "round {round}: the child went on from the checkpoint");
            last = checkpoint;
            rt.block_on(contract::assert_equals_a_rebuild_from_scratch(&model));
        }
    }
}
