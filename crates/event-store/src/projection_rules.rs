//! The rule every projection's storage applies to a batch: which part of
//! it is new. Pure, so each adapter (memory, redb, PostgreSQL, of any
//! context) decides the same way inside its own transaction.

use crate::RecordedEvent;

/// A batch that does not continue from the checkpoint (or is not
/// contiguous): applying it would skip events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("log gap: the projection expects position {expected}, the batch has {got}")]
pub struct Gap {
    pub expected: u64,
    pub got: u64,
}

/// The events of `batch` the checkpoint does not cover yet, after checking
/// that the batch is contiguous, reaches back to `checkpoint` and ends
/// right before `next_position`. Empty when everything was applied before,
/// so a replayed batch or a second projector racing over the same log
/// cannot apply an event twice.
pub fn unapplied<D>(
    checkpoint: u64,
    batch: &[RecordedEvent<D>],
    next_position: u64,
) -> Result<&[RecordedEvent<D>], Gap> {
    for pair in batch.windows(2) {
        if pair[1].position != pair[0].position + 1 {
            return Err(Gap { expected: pair[0].position + 1, got: pair[1].position });
        }
    }
    let Some(first) = batch.first() else {
        return if next_position <= checkpoint {
            Ok(&[])
        } else {
            Err(Gap { expected: checkpoint, got: next_position })
        };
    };
    if first.position > checkpoint {
        return Err(Gap { expected: checkpoint, got: first.position });
    }
    let last = first.position + batch.len() as u64 - 1;
    if next_position != last + 1 {
        return Err(Gap { expected: last + 1, got: next_position });
    }
    let covered = usize::try_from(checkpoint - first.position).unwrap_or(usize::MAX).min(batch.len());
    Ok(&batch[covered..])
}

#[cfg(test)]
mod tests {
    use domain_core::{Envelope, EventType};

    use super::*;
    use crate::StreamId;

    fn log(positions: std::ops::RangeInclusive<u64>) -> Vec<RecordedEvent> {
        let ty: EventType = "test.Happened.v1".parse().expect("type");
        positions
            .map(|position| {
                let envelope = Envelope::raw("test", ty.clone(), "a", position, serde_json::json!({}));
                let stream = StreamId::new("T-a").expect("stream");
                RecordedEvent { stream, version: position, position, recorded_at: envelope.time, envelope }
            })
            .collect()
    }

    #[test]
    fn only_what_the_checkpoint_does_not_cover_is_new() {
        let batch = log(3..=6);
        assert_eq!(unapplied(3, &batch, 7).expect("new").len(), 4);
        assert_eq!(unapplied(5, &batch, 7).expect("new")[0].position, 5);
        assert!(unapplied(7, &batch, 7).expect("all covered").is_empty());
        assert!(unapplied(9, &batch, 7).expect("covered by a later checkpoint").is_empty());
        assert!(unapplied::<serde_json::Value>(4, &[], 4).expect("an empty batch at the checkpoint").is_empty());
    }

    #[test]
    fn a_batch_that_would_skip_events_is_a_gap() {
        let batch = log(3..=6);
        assert_eq!(unapplied(2, &batch, 7), Err(Gap { expected: 2, got: 3 }));
        assert_eq!(unapplied(3, &batch, 8), Err(Gap { expected: 7, got: 8 }));
        assert_eq!(unapplied::<serde_json::Value>(3, &[], 5), Err(Gap { expected: 3, got: 5 }));
        let mut holed = log(3..=6);
        holed.remove(1);
        assert_eq!(unapplied(3, &holed, 7), Err(Gap { expected: 4, got: 5 }));
    }
}
