//! The in-memory head of one series: its points not yet sealed, kept as
//! Gorilla-compressed chunks (about 1.2 bytes a point for 10-second gauges,
//! against 16 raw) so a million active series fit in a few gigabytes.
//!
//! In-order points (later than the newest) append to the open chunk; a chunk
//! closes at [`CHUNK_POINTS`] points or where a time partition begins, so
//! sealing a partition drops whole chunks. Points at or before the newest
//! (late, or a second value at the same time) wait in a small sorted buffer
//! that reads merge in; past [`LATE_POINTS`] they are folded into the chunks
//! by re-encoding them.

use disk_format::ByteReader;
use disk_format::varint::put_uvarint;

use crate::codec::{CodecError, GorillaDecoder, GorillaEncoder};

/// Most points in one chunk: larger chunks spread the per-chunk cost (first
/// point raw, bookkeeping) over more points; a late point's duplicate check
/// decodes one chunk.
pub const CHUNK_POINTS: u32 = 720;

/// Late points kept aside before they are folded into the chunks.
const LATE_POINTS: usize = 64;

/// A closed chunk: its time range and its Gorilla stream.
#[derive(Debug, Clone)]
struct Chunk {
    first: i64,
    last: i64,
    bytes: Box<[u8]>,
}

impl Chunk {
    fn decode_into(&self, from: i64, to: i64, out: &mut Vec<(i64, f64)>) -> Result<(), CodecError> {
        for p in GorillaDecoder::new(&self.bytes) {
            let (t, v) = p?;
            if t >= to {
                break;
            }
            if t >= from {
                out.push((t, v));
            }
        }
        Ok(())
    }
}

/// The points of one series in memory, in time order (equal times in
/// arrival order).
#[derive(Debug, Default)]
pub(crate) struct HeadPoints {
    closed: Vec<Chunk>,
    open: GorillaEncoder,
    open_first: i64,
    late: Vec<(i64, f64)>,
}

impl HeadPoints {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.closed_len() + self.open.len() + self.late.len()
    }

    fn closed_len(&self) -> usize {
        // Chunk counts are in their headers; summing decodes nothing.
        self.closed.iter().map(|c| header_count(&c.bytes)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.closed.is_empty() && self.late.is_empty()
    }

    /// The time of the oldest point.
    pub fn first_time(&self) -> Option<i64> {
        let chunk = self.closed.first().map(|c| c.first).or_else(|| (!self.open.is_empty()).then_some(self.open_first));
        match (chunk, self.late.first()) {
            (Some(c), Some((l, _))) => Some(c.min(*l)),
            (c, l) => c.or(l.map(|(t, _)| *t)),
        }
    }

    /// The newest point (for equal times, the last to arrive).
    pub fn last(&self) -> Option<(i64, f64)> {
        let chunk = self.open.last().or_else(|| self.closed.last().and_then(|c| self.chunk_last(c)));
        match (chunk, self.late.last().copied()) {
            (Some(c), Some(l)) => Some(if l.0 >= c.0 { l } else { c }),
            (c, l) => c.or(l),
        }
    }

    fn chunk_last(&self, c: &Chunk) -> Option<(i64, f64)> {
        GorillaDecoder::new(&c.bytes).filter_map(Result::ok).last()
    }

    /// Adds a point; an exact duplicate (same time, same value bits) of a
    /// point already here is ignored. Returns whether it was added.
    /// `partition` maps a time to the start of its partition: chunks never
    /// straddle one.
    pub fn insert(&mut self, ts: i64, v: f64, partition: impl Fn(i64) -> i64) -> Result<bool, CodecError> {
        let newest = self.open.last().map(|(t, _)| t).or_else(|| self.closed.last().map(|c| c.last));
        if newest.is_none_or(|n| ts > n) {
            self.append(ts, v, &partition);
            return Ok(true);
        }
        if self.contains(ts, v)? {
            return Ok(false);
        }
        let at = self.late.partition_point(|(t, _)| *t <= ts);
        self.late.insert(at, (ts, v));
        if self.late.len() > LATE_POINTS {
            self.fold_late(&partition)?;
        }
        Ok(true)
    }

    fn close_open(&mut self) {
        let last = self.open.last().map_or(self.open_first, |(t, _)| t);
        // The next chunk likely compresses like this one: room for that
        // plus a little, instead of a doubling buffer's slack.
        let room = self.open.bytes_used() + self.open.bytes_used() / 8 + 8;
        let open = std::mem::replace(&mut self.open, GorillaEncoder::with_capacity(room));
        // A head holds a handful of chunks: no doubling slack.
        self.closed.reserve_exact(1);
        self.closed.push(Chunk { first: self.open_first, last, bytes: open.finish().into_boxed_slice() });
    }

    /// Whether a point with exactly this time and value bits is here.
    fn contains(&self, ts: i64, v: f64) -> Result<bool, CodecError> {
        let same = |p: &(i64, f64)| p.0 == ts && p.1.to_bits() == v.to_bits();
        let lo = self.late.partition_point(|(t, _)| *t < ts);
        if self.late[lo..].iter().take_while(|(t, _)| *t == ts).any(same) {
            return Ok(true);
        }
        let mut found = Vec::new();
        for c in self.closed.iter().filter(|c| c.first <= ts && ts <= c.last) {
            c.decode_into(ts, ts.saturating_add(1), &mut found)?;
        }
        if self.open.last().is_some_and(|(last, _)| self.open_first <= ts && ts <= last) {
            for p in self.open.iter() {
                let p = p?;
                if p.0 == ts {
                    found.push(p);
                }
            }
        }
        Ok(found.iter().any(same))
    }

    /// Re-encodes every point into chunks, the late ones in their place.
    fn fold_late(&mut self, partition: &impl Fn(i64) -> i64) -> Result<(), CodecError> {
        let all = self.range(i64::MIN, i64::MAX)?;
        self.rebuild(all, partition);
        Ok(())
    }

    /// Replaces the head by `points` (in order, equal times included).
    fn rebuild(&mut self, points: Vec<(i64, f64)>, partition: &impl Fn(i64) -> i64) {
        *self = Self::default();
        for (t, v) in points {
            self.append(t, v, partition);
        }
    }

    /// Appends to the open chunk (closing it when full or when `t` starts a
    /// new partition); `t` is at or after every point in the chunks.
    fn append(&mut self, t: i64, v: f64, partition: &impl Fn(i64) -> i64) {
        if !self.open.is_empty()
            && (self.open.len() as u32 >= CHUNK_POINTS || partition(t) != partition(self.open_first))
        {
            self.close_open();
        }
        if self.open.is_empty() {
            self.open_first = t;
        }
        self.open.push(t, v);
    }

    /// The points in `[from, to)`, in order.
    pub fn range(&self, from: i64, to: i64) -> Result<Vec<(i64, f64)>, CodecError> {
        let mut out = Vec::new();
        for c in self.closed.iter().filter(|c| c.last >= from && c.first < to) {
            c.decode_into(from, to, &mut out)?;
        }
        if self.open.last().is_some_and(|(last, _)| last >= from && self.open_first < to) {
            for p in self.open.iter() {
                let (t, v) = p?;
                if t >= to {
                    break;
                }
                if t >= from {
                    out.push((t, v));
                }
            }
        }
        let lo = self.late.partition_point(|(t, _)| *t < from);
        let hi = self.late.partition_point(|(t, _)| *t < to);
        if lo < hi {
            out = merge(&out, &self.late[lo..hi]);
        }
        Ok(out)
    }

    /// Drops the points before `until`; returns how many.
    pub fn drop_before(&mut self, until: i64, partition: impl Fn(i64) -> i64) -> Result<usize, CodecError> {
        let before = self.len();
        let whole = self.closed.partition_point(|c| c.last < until);
        self.closed.drain(..whole);
        let straddles = self.closed.first().is_some_and(|c| c.first < until)
            || (self.closed.is_empty() && !self.open.is_empty() && self.open_first < until);
        self.late.retain(|(t, _)| *t >= until);
        if straddles {
            // A cut inside a chunk (retention, not sealing): re-encode what stays.
            let kept = self.range(until, i64::MAX)?;
            self.rebuild(kept, &partition);
        }
        Ok(before - self.len())
    }

    /// Drops the points in `[from, to)`; returns how many.
    pub fn drop_range(&mut self, from: i64, to: i64, partition: impl Fn(i64) -> i64) -> Result<usize, CodecError> {
        if self.first_time().is_none_or(|first| first >= from) {
            return self.drop_before(to, partition);
        }
        let before = self.len();
        let mut kept = self.range(i64::MIN, from)?;
        kept.extend(self.range(to, i64::MAX)?);
        self.rebuild(kept, &partition);
        Ok(before - self.len())
    }

    /// Heap bytes held (chunks, the open stream, the late buffer).
    pub fn heap_bytes(&self) -> usize {
        self.closed.capacity() * std::mem::size_of::<Chunk>()
            + self.closed.iter().map(|c| c.bytes.len()).sum::<usize>()
            + self.open.capacity_bytes()
            + self.late.capacity() * 16
    }
}

impl HeadPoints {
    /// The head as log-checkpoint bytes: closed chunks as they are (a
    /// checkpoint then costs a copy, not a compression of every point), the
    /// open chunk's stream and the late points.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        put_uvarint(out, self.closed.len() as u64);
        for c in &self.closed {
            put_uvarint(out, c.bytes.len() as u64);
            out.extend_from_slice(&c.bytes);
        }
        let open = self.open.to_bytes();
        put_uvarint(out, open.len() as u64);
        out.extend_from_slice(&open);
        put_uvarint(out, self.late.len() as u64);
        for (t, v) in &self.late {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
    }

    /// Reads what [`write_to`](Self::write_to) wrote, checking every chunk
    /// decodes and the times are in the order the head keeps them.
    pub fn read_from(r: &mut ByteReader<'_>) -> crate::Result<Self> {
        let bad = |what: &str| crate::Error::Codec(format!("head checkpoint: {what}"));
        let mut head = Self::default();
        let mut newest = None::<i64>;
        let closed = r.uvarint32()? as usize;
        head.closed.reserve_exact(closed.min(1 << 16));
        for _ in 0..closed {
            let len = r.uvarint32()? as usize;
            let bytes = r.take(len)?;
            let (ts, _) = GorillaDecoder::decode_all(bytes)?;
            let (Some(&first), Some(&last)) = (ts.first(), ts.last()) else { return Err(bad("an empty chunk")) };
            if newest.is_some_and(|n| first <= n) || ts.windows(2).any(|w| w[0] >= w[1]) {
                return Err(bad("chunk times out of order"));
            }
            newest = Some(last);
            head.closed.push(Chunk { first, last, bytes: bytes.into() });
        }
        let len = r.uvarint32()? as usize;
        for p in GorillaDecoder::new(r.take(len)?) {
            let (t, v) = p?;
            if newest.is_some_and(|n| t <= n) {
                return Err(bad("open chunk times out of order"));
            }
            if head.open.is_empty() {
                head.open_first = t;
            }
            head.open.push(t, v);
            newest = Some(t);
        }
        for _ in 0..r.uvarint32()? {
            let (t, v) = (r.i64()?, f64::from_bits(r.u64()?));
            if newest.is_none_or(|n| t > n) || head.late.last().is_some_and(|(l, _)| *l > t) {
                return Err(bad("late points out of order"));
            }
            head.late.push((t, v));
        }
        Ok(head)
    }
}

/// The point count in a Gorilla stream's header (0 if it does not read).
fn header_count(bytes: &[u8]) -> usize {
    bytes
        .get(1..)
        .and_then(|rest| disk_format::ByteReader::new(rest, "gorilla point count").uvarint().ok())
        .map_or(0, |n| n as usize)
}

/// Two sorted runs merged; on equal times `a`'s points come first.
fn merge(a: &[(i64, f64)], b: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if b[j].0 < a[i].0 {
            out.push(b[j]);
            j += 1;
        } else {
            out.push(a[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PART: i64 = 1000;
    fn part(t: i64) -> i64 {
        t.div_euclid(PART) * PART
    }

    /// What the head must equal: a sorted list with the same insert rule.
    fn naive_insert(list: &mut Vec<(i64, f64)>, t: i64, v: f64) -> bool {
        if list.iter().any(|(a, b)| *a == t && b.to_bits() == v.to_bits()) {
            return false;
        }
        let at = list.partition_point(|(a, _)| *a <= t);
        list.insert(at, (t, v));
        true
    }

    fn bits(points: &[(i64, f64)]) -> Vec<(i64, u64)> {
        points.iter().map(|(t, v)| (*t, v.to_bits())).collect()
    }

    #[test]
    fn in_order_points_fill_chunks_that_close_at_their_size_and_at_partitions() {
        let mut h = HeadPoints::default();
        for i in 0..1000 {
            assert!(h.insert(i * 3, (i % 7) as f64, part).expect("insert"));
        }
        assert_eq!(h.len(), 1000);
        assert!(h.closed.iter().all(|c| part(c.first) == part(c.last)), "no chunk straddles a partition");
        assert!(h.closed.iter().all(|c| header_count(&c.bytes) <= CHUNK_POINTS as usize));
        assert_eq!(h.last(), Some((999 * 3, (999 % 7) as f64)));
        assert_eq!(h.range(30, 36).expect("range"), vec![(30, 3.0), (33, 4.0)]);
        assert_eq!(h.drop_before(1000, part).expect("drop"), 334, "times 0..=999 are 334 points");
        assert_eq!(h.range(i64::MIN, 1003).expect("range"), vec![(1002, (334 % 7) as f64)]);
        // Compressed: far below the 16 bytes a raw point takes.
        assert!(h.heap_bytes() < 666 * 4, "{} bytes", h.heap_bytes());
    }

    #[test]
    fn a_head_round_trips_through_its_checkpoint_bytes_and_damage_is_refused() {
        let mut h = HeadPoints::default();
        for i in 0..700 {
            h.insert(i * 5, (i % 9) as f64, part).expect("insert");
        }
        h.insert(10, 42.0, part).expect("late");
        let mut bytes = Vec::new();
        h.write_to(&mut bytes);
        let back = HeadPoints::read_from(&mut ByteReader::new(&bytes, "head")).expect("read");
        assert_eq!(bits(&back.range(i64::MIN, i64::MAX).expect("r")), bits(&h.range(i64::MIN, i64::MAX).expect("r")));
        assert_eq!(back.len(), 701);
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(HeadPoints::read_from(&mut ByteReader::new(&bytes[..cut], "head")).is_err(), "cut at {cut}");
        }
        // Two chunks swapped: times out of order.
        let mut a = HeadPoints::default();
        a.insert(2000, 1.0, part).expect("insert");
        a.close_open();
        a.insert(1000, 1.0, part).expect("late");
        a.late.clear();
        a.closed.push(Chunk { first: 1000, last: 1000, bytes: a.closed[0].bytes.clone() });
        let mut bytes = Vec::new();
        a.write_to(&mut bytes);
        assert!(HeadPoints::read_from(&mut ByteReader::new(&bytes, "head")).is_err());
    }

    proptest! {
        #[test]
        fn any_insert_order_reads_back_as_a_sorted_list(
            points in proptest::collection::vec((0i64..3000, 0u8..4), 0..600),
            cut in 0i64..3200,
        ) {
            let (mut h, mut naive) = (HeadPoints::default(), Vec::new());
            for (t, v) in points {
                let v = f64::from(v);
                prop_assert_eq!(h.insert(t, v, part).expect("insert"), naive_insert(&mut naive, t, v));
            }
            prop_assert_eq!(bits(&h.range(i64::MIN, i64::MAX).expect("range")), bits(&naive));
            prop_assert_eq!(h.len(), naive.len());
            prop_assert_eq!(h.last().map(|(t, v)| (t, v.to_bits())), naive.last().map(|(t, v)| (*t, v.to_bits())));
            prop_assert_eq!(bits(&h.range(500, 1500).expect("range")),
                bits(&naive.iter().copied().filter(|(t, _)| (500..1500).contains(t)).collect::<Vec<_>>()));
            let mut h2 = HeadPoints::default();
            for (t, v) in &naive {
                h2.insert(*t, *v, part).expect("insert");
            }
            let dropped = h2.drop_range(cut / 2, cut, part).expect("drop range");
            let outside: Vec<_> = naive.iter().copied().filter(|(t, _)| *t < cut / 2 || *t >= cut).collect();
            prop_assert_eq!(dropped, naive.len() - outside.len());
            prop_assert_eq!(bits(&h2.range(i64::MIN, i64::MAX).expect("range")), bits(&outside));
            let dropped = h.drop_before(cut, part).expect("drop");
            let kept: Vec<_> = naive.iter().copied().filter(|(t, _)| *t >= cut).collect();
            prop_assert_eq!(dropped, naive.len() - kept.len());
            prop_assert_eq!(bits(&h.range(i64::MIN, i64::MAX).expect("range")), bits(&kept));
        }
    }
}
