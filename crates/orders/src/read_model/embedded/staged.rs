//! A redb copy being rebuilt: fed in memory, written in the background.
//!
//! A redb insert costs a microsecond or more and the copy serves no query
//! until it is synced, so the copy is fed like the memory read model (a
//! batch evolves the staged rows, all or nothing). When [`STAGED_MAX`] rows
//! are staged the stage is handed to a writer thread, which writes it in
//! one relaxed transaction (rows and index entries sorted, with the
//! checkpoint of what it holds) while the next stage is fed: feeding keeps
//! one core busy and the writer the other. One stage is in flight at a
//! time; the rest is written in the durable commit of the sync. The file's
//! checkpoint always matches the file's rows; a crash loses only an
//! unfinished copy, which a rebuild drops and starts again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use event_store::RecordedText;
use event_store::projection_rules::unapplied;
use redb::{Database, ReadableDatabase, WriteTransaction};

use super::{BY_CUSTOMER, CHECKPOINT, META, ROWS, index_key, insert_sorted, stored_row, write_days};
use crate::read_model::OrderSummary;
use crate::read_model::projection::{Days, decode_batch};
use crate::{Error, Result};

/// Rows a stage holds before it is handed to the writer (a few hundred
/// bytes each). Smaller stages overlap more of the writing with feeding
/// but insert into a fuller file; 16k, 32k and 64k rows measured alike.
pub(super) const STAGED_MAX: usize = 1 << 15;

/// What a copy being rebuilt holds outside its file. Cloning shares it.
#[derive(Debug, Clone)]
pub(super) struct Stager {
    stages: Arc<Mutex<Stages>>,
    /// Rows staged at most ([`STAGED_MAX`]; less in tests).
    limit: usize,
}

#[derive(Debug, Default)]
struct Stages {
    /// The stage being fed.
    feeding: Staged,
    /// The stage the writer thread is writing.
    in_flight: Option<InFlight>,
    /// The next position of the last stage handed to the writer; 0 when none
    /// was since the file was opened or synced.
    handed: u64,
    /// Whether rows went to the file: before, a row that is not staged does
    /// not exist.
    wrote: bool,
    /// A stage's write failed: the copy misses it for good.
    broken: bool,
}

#[derive(Debug)]
struct InFlight {
    stage: Arc<Staged>,
    writer: JoinHandle<Result<()>>,
}

/// Rows changed by a stage's batches, by order id, and whether each is new.
#[derive(Debug, Default)]
struct Staged {
    rows: HashMap<String, (OrderSummary, bool)>,
    days: Days,
    /// The next position of what is staged; 0 when nothing was staged yet.
    next_position: u64,
}

impl Stager {
    pub(super) fn new(limit: usize) -> Self {
        Self { stages: Arc::default(), limit }
    }

    fn lock(&self) -> MutexGuard<'_, Stages> {
        // A batch is staged only after it evolved without error, and a
        // failed write marks the copy broken: a poisoned lock still guards
        // a consistent state.
        self.stages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stages the batch; a full stage goes to the writer thread.
    pub(super) fn apply(&self, db: &Arc<Database>, batch: &[RecordedText], next_position: u64) -> Result<()> {
        let mut stages = self.lock();
        stages.usable()?;
        if stages.stage(db, batch, next_position)? >= self.limit {
            stages.hand_off(db, self.limit)?;
        }
        Ok(())
    }

    /// Waits for the stage in flight (blocking).
    pub(super) fn finish_in_flight(&self) -> Result<()> {
        let mut stages = self.lock();
        stages.usable()?;
        stages.finish_in_flight()
    }

    /// Writes the stage being fed into `txn` (the sync's durable commit),
    /// after [`Stager::finish_in_flight`]; [`Stager::synced`] once it committed.
    pub(super) fn write_rest(&self, txn: &WriteTransaction) -> Result<()> {
        let stages = self.lock();
        stages.usable()?;
        stages.feeding.write(txn)
    }

    /// The file holds everything now and commits durably from here on.
    pub(super) fn synced(&self) {
        let mut stages = self.lock();
        stages.feeding = Staged::default();
        stages.handed = 0;
        stages.wrote = true;
    }

    /// The next position of what the copy holds, when it is not the file's
    /// checkpoint.
    pub(super) fn checkpoint(&self) -> Result<Option<u64>> {
        let stages = self.lock();
        stages.usable()?;
        Ok([stages.feeding.next_position, stages.handed].into_iter().find(|&p| p > 0))
    }

    /// Hands the stage being fed to the writer and waits for it, as a full
    /// stage is written.
    #[cfg(test)]
    pub(super) fn write_now(&self, db: &Arc<Database>) -> Result<()> {
        let mut stages = self.lock();
        stages.usable()?;
        if stages.feeding.next_position > 0 {
            stages.hand_off(db, self.limit)?;
        }
        stages.finish_in_flight()
    }
}

impl Drop for Stages {
    /// The last handle of a copy waits for its writer, so the file is
    /// closed (and may be opened again or removed) once the copy is gone.
    fn drop(&mut self) {
        if let Some(InFlight { writer, .. }) = self.in_flight.take()
            && let Ok(Err(e)) = writer.join()
        {
            tracing::warn!(error = %e, "a stage of a dropped read-model copy failed to write");
        }
    }
}

impl Stages {
    fn usable(&self) -> Result<()> {
        if self.broken { Err(Error::CopyBroken) } else { Ok(()) }
    }

    /// Stages the batch; returns how many rows are staged.
    fn stage(&mut self, db: &Database, batch: &[RecordedText], next_position: u64) -> Result<usize> {
        let checkpoint = match [self.feeding.next_position, self.handed].into_iter().find(|&p| p > 0) {
            Some(position) => position,
            None => db.begin_read()?.open_table(META)?.get(CHECKPOINT)?.map_or(1, |v| v.value()),
        };
        let new = unapplied(checkpoint, batch, next_position)?;
        if new.is_empty() {
            return Ok(self.feeding.rows.len());
        }
        let in_flight = self.in_flight.as_ref().map(|f| &f.stage.rows);
        let reader = if self.wrote { Some(db.begin_read()?) } else { None };
        let stored = reader.as_ref().map(|txn| txn.open_table(ROWS)).transpose()?;
        let mut changed: HashMap<&str, (OrderSummary, bool)> = HashMap::new();
        let mut days = Days::default();
        for change in decode_batch(new)? {
            let id = change.order_id;
            let earlier = changed.remove(id).or_else(|| self.feeding.rows.get(id).cloned());
            // The stage in flight writes the index entry of a row it created.
            let written = || in_flight.and_then(|rows| rows.get(id)).map(|(row, _)| (row.clone(), false));
            let (current, created) = match earlier.or_else(written) {
                Some((row, created)) => (Some(row), created),
                // A stream's first event has no row before it: only a later
                // one looks in the file.
                None => match &stored {
                    Some(rows) if change.event.version > 1 => stored_row(rows, id).map(|row| (row, false))?,
                    _ => (None, false),
                },
            };
            let created = created || current.is_none();
            changed.insert(id, (days.evolve(current, change)?, created));
        }
        self.feeding.days.absorb(days, next_position)?;
        for (id, row) in changed {
            self.feeding.rows.insert(id.to_owned(), row);
        }
        self.feeding.next_position = next_position;
        Ok(self.feeding.rows.len())
    }

    /// Hands the stage being fed to a writer thread, after the one in flight.
    fn hand_off(&mut self, db: &Arc<Database>, limit: usize) -> Result<()> {
        self.finish_in_flight()?;
        let next = Staged { rows: HashMap::with_capacity(limit.min(STAGED_MAX)), ..Staged::default() };
        let stage = Arc::new(std::mem::replace(&mut self.feeding, next));
        self.handed = stage.next_position;
        self.wrote = true;
        let (file, written) = (Arc::clone(db), Arc::clone(&stage));
        let spawned = std::thread::Builder::new()
            .name("orders-stage-writer".into())
            .spawn(move || event_store::redb_file::write_once(&file, true, |txn| written.write(txn).map(|()| true)));
        match spawned {
            Ok(writer) => self.in_flight = Some(InFlight { stage, writer }),
            // No thread to spare: write it here.
            Err(_) => {
                let written = event_store::redb_file::write_once(db, true, |txn| stage.write(txn).map(|()| true));
                self.finished(written)?;
            }
        }
        Ok(())
    }

    /// Waits for the stage in flight: its rows are in the file after.
    fn finish_in_flight(&mut self) -> Result<()> {
        let Some(InFlight { writer, .. }) = self.in_flight.take() else { return Ok(()) };
        self.finished(writer.join().unwrap_or(Err(Error::CopyBroken)))
    }

    fn finished(&mut self, written: Result<()>) -> Result<()> {
        if written.is_err() {
            self.broken = true;
        }
        written
    }
}

impl Staged {
    /// Writes the stage into `txn`: rows and index entries sorted.
    fn write(&self, txn: &WriteTransaction) -> Result<()> {
        if self.next_position == 0 {
            return Ok(());
        }
        let mut rows: Vec<(&String, &(OrderSummary, bool))> = self.rows.iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        // Encoding is independent per row: on every core, the inserts after.
        let encoded = event_store::parallel::map_each(&rows, |(_, (row, _))| serde_json::to_vec(row));
        let mut table = txn.open_table(ROWS)?;
        let mut created = Vec::new();
        for ((id, (row, new_row)), bytes) in rows.iter().zip(encoded) {
            table.insert(id.as_str(), bytes?.as_slice())?;
            if *new_row {
                created.push(index_key(&row.customer_id, id));
            }
        }
        insert_sorted(&mut txn.open_table(BY_CUSTOMER)?, &mut created)?;
        write_days(txn, self.days.clone(), self.next_position)?;
        txn.open_table(META)?.insert(CHECKPOINT, self.next_position)?;
        Ok(())
    }
}
