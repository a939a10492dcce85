//! CRC-framed records for append-only logs (the embedded event log, the
//! time-series write-ahead log and partitions).
//!
//! Each frame is `[len u32][crc32 u32][kind u8][body]`, little-endian, with
//! the CRC over kind and body. A frame is written with one `write` and made
//! durable with one `fdatasync` per group of frames, so after a crash the
//! file holds whole frames followed by at most one torn frame at the tail.

use crate::{Error, Result};

/// Bytes of a frame's header (length and CRC).
pub const HEADER: usize = 8;

/// Frames larger than this are refused on write and treated as damage on read.
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

/// Builds frames into one buffer for a single write.
#[derive(Debug, Default)]
pub struct FrameWriter {
    pub buf: Vec<u8>,
}

impl FrameWriter {
    /// Starts a frame; returns its start so `finish` can fill the header.
    pub fn begin(&mut self, kind: u8) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; HEADER]);
        self.buf.push(kind);
        start
    }

    /// Fills the header of the frame begun at `start`.
    pub fn finish(&mut self, start: usize) -> Result<()> {
        let len = self.buf.len() - start - HEADER;
        if len > MAX_FRAME {
            return Err(Error::FrameTooLarge { len, max: MAX_FRAME });
        }
        let crc = crc32fast::hash(&self.buf[start + HEADER..]);
        self.buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub fn uvarint(&mut self, v: u64) {
        crate::varint::put_uvarint(&mut self.buf, v);
    }
    /// A string behind a `u16` length ([`crate::ByteReader::str16`]).
    pub fn str(&mut self, s: &str) -> Result<()> {
        let len = u16::try_from(s.len()).map_err(|_| Error::FieldTooLong { what: "string", len: s.len(), bits: 16 })?;
        self.u16(len);
        self.raw(s.as_bytes());
        Ok(())
    }
    /// Bytes behind a `u32` length ([`crate::ByteReader::bytes32`]).
    pub fn bytes(&mut self, b: &[u8]) -> Result<()> {
        let len =
            u32::try_from(b.len()).map_err(|_| Error::FieldTooLong { what: "byte string", len: b.len(), bits: 32 })?;
        self.u32(len);
        self.raw(b);
        Ok(())
    }
}

/// What a scan found at the reader's position.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// A whole, checked frame; its kind and body are in the caller's buffer
    /// (`buf[0]` is the kind). `size` counts header and payload.
    Frame { size: u64 },
    /// Clean end of file.
    End,
    /// A frame that was being written when the process died: everything
    /// from here on is to be cut off.
    TornTail { reason: String },
}

/// Reads the next frame from `r`, which has `rest` bytes left before EOF.
/// Damage that is not a torn tail (a bad frame with data after it) is an
/// error, never skipped.
pub fn scan_next<R: std::io::Read>(r: &mut R, rest: u64, buf: &mut Vec<u8>) -> Result<Scan> {
    if rest == 0 {
        return Ok(Scan::End);
    }
    let torn = |reason: String| Ok(Scan::TornTail { reason });
    if rest < (HEADER + 1) as u64 {
        return torn(format!("{rest} trailing bytes, shorter than a frame header"));
    }
    let mut header = [0u8; HEADER];
    r.read_exact(&mut header)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_FRAME {
        if header.iter().all(|b| *b == 0) && all_zero(r, rest - HEADER as u64)? {
            return torn("zero-filled tail".into());
        }
        return Err(Error::Damaged { reason: "impossible frame length", len });
    }
    let size = (HEADER + len) as u64;
    if size > rest {
        return torn(format!("frame of {len} bytes cut short at {} bytes", rest - HEADER as u64));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf)?;
    if crc32fast::hash(buf) != crc {
        if size == rest {
            return torn("last frame fails its checksum".into());
        }
        return Err(Error::Damaged { reason: "a frame fails its checksum and more data follows", len });
    }
    Ok(Scan::Frame { size })
}

fn all_zero<R: std::io::Read>(r: &mut R, mut n: u64) -> std::io::Result<bool> {
    let mut chunk = [0u8; 8192];
    while n > 0 {
        let k = n.min(chunk.len() as u64) as usize;
        r.read_exact(&mut chunk[..k])?;
        if chunk[..k].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        n -= k as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_frame(body: &[u8]) -> Vec<u8> {
        let mut w = FrameWriter::default();
        let s = w.begin(1);
        w.raw(body);
        w.finish(s).expect("finish");
        w.buf
    }

    fn scan_at(data: &[u8], offset: usize) -> Result<Scan> {
        let mut buf = Vec::new();
        scan_next(&mut &data[offset..], (data.len() - offset) as u64, &mut buf)
    }

    #[test]
    fn whole_frames_scan_and_torn_tails_are_recognised() {
        let mut data = one_frame(b"hello");
        let first_len = data.len();
        data.extend(one_frame(b"world"));
        let mut buf = Vec::new();
        let got = scan_next(&mut data.as_slice(), data.len() as u64, &mut buf).expect("scan");
        assert_eq!(got, Scan::Frame { size: first_len as u64 });
        assert_eq!((buf[0], &buf[1..]), (1, &b"hello"[..]));
        for cut in 1..(data.len() - first_len) {
            let torn = &data[..(data.len() - cut)];
            assert!(matches!(scan_at(torn, first_len), Ok(Scan::TornTail { .. })), "cut {cut}");
        }
        let mut zeros = data.clone();
        zeros.extend([0u8; 64]);
        assert!(matches!(scan_at(&zeros, data.len()), Ok(Scan::TornTail { .. })));
        assert!(matches!(scan_at(&data, data.len()), Ok(Scan::End)));
    }

    #[test]
    fn damage_in_the_middle_is_an_error_not_a_skip() {
        let mut data = one_frame(b"hello");
        data.extend(one_frame(b"world"));
        data[HEADER + 2] ^= 0xff;
        assert!(matches!(scan_at(&data, 0), Err(Error::Damaged { .. })));
        let mut last_bad = one_frame(b"hello");
        let n = last_bad.len();
        last_bad[n - 1] ^= 0xff;
        assert!(matches!(scan_at(&last_bad, 0), Ok(Scan::TornTail { .. })));
        let mut garbage_len = one_frame(b"hello");
        garbage_len.extend([0xff; 16]);
        assert!(matches!(scan_at(&garbage_len, garbage_len.len() - 16), Err(Error::Damaged { .. })));
    }

    #[test]
    fn fields_too_long_for_their_length_are_refused() {
        let mut w = FrameWriter::default();
        assert!(matches!(w.str(&"x".repeat(70_000)), Err(Error::FieldTooLong { bits: 16, .. })));
        assert!(w.str("张三").is_ok());
        let mut r = crate::ByteReader::new(&w.buf, "test");
        assert_eq!(r.str16().expect("str"), "张三");
    }
}
