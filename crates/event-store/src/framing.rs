//! CRC-framed records for append-only logs (the embedded event log here,
//! and any other crate's write-ahead log).
//!
//! Each frame is `[len u32][crc32 u32][kind u8][body]`, little-endian, with
//! the CRC over kind and body. A frame is written with one `write` and made
//! durable with one `fdatasync` per group of frames, so after a crash the
//! file holds whole frames followed by at most one torn frame at the tail.

use uuid::Uuid;

use crate::{Error, Result};

pub const HEADER: usize = 8;

/// What [`lock_dir`] reports.
#[derive(Debug)]
pub enum DirLock {
    /// This process now holds the directory; keep the file open.
    Held(std::fs::File),
    /// Another process (or handle) holds it.
    Busy,
}

/// Creates `dir` and takes an exclusive lock on its `LOCK` file, so a
/// second process opening the same log fails fast instead of corrupting it.
pub fn lock_dir(dir: &std::path::Path) -> std::io::Result<DirLock> {
    std::fs::create_dir_all(dir)?;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("LOCK"))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock::Held(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(DirLock::Busy),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
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

    pub fn finish(&mut self, start: usize) -> Result<()> {
        let len = self.buf.len() - start - HEADER;
        if len > MAX_FRAME {
            return Err(Error::Codec(format!("frame of {len} bytes exceeds {MAX_FRAME}")));
        }
        let crc = crc32fast::hash(&self.buf[start + HEADER..]);
        self.buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        Ok(())
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
    pub fn str(&mut self, s: &str) {
        self.u16(s.len() as u16);
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
    }
    pub fn uuid(&mut self, id: Uuid) {
        self.buf.extend_from_slice(id.as_bytes());
    }
}

/// Reads the fields of one frame body; every read is bounds-checked.
#[derive(Debug)]
pub struct FrameReader<'a> {
    body: &'a [u8],
    pos: usize,
    /// File offset of `body[0]`, to locate event bytes.
    base: u64,
}

impl<'a> FrameReader<'a> {
    pub fn new(body: &'a [u8], base: u64) -> Self {
        Self { body, pos: 0, base }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.body.len());
        let Some(end) = end else {
            return Err(Error::Codec(format!("frame field of {n} bytes runs past the frame end")));
        };
        let s = &self.body[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub fn str(&mut self) -> Result<&'a str> {
        let n = self.u16()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|e| Error::Codec(e.to_string()))
    }
    /// A length-prefixed byte string and its file offset.
    pub fn bytes(&mut self) -> Result<(u64, &'a [u8])> {
        let n = self.u32()? as usize;
        let offset = self.base + self.pos as u64;
        Ok((offset, self.take(n)?))
    }
    pub fn uuid(&mut self) -> Result<Uuid> {
        Ok(Uuid::from_bytes(self.array()?))
    }
    pub fn rest(&mut self) -> (u64, &'a [u8]) {
        let offset = self.base + self.pos as u64;
        let r = &self.body[self.pos..];
        self.pos = self.body.len();
        (offset, r)
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
pub fn scan_next<R: std::io::Read>(r: &mut R, rest: u64, buf: &mut Vec<u8>) -> std::result::Result<Scan, String> {
    let io = |e: std::io::Error| e.to_string();
    if rest == 0 {
        return Ok(Scan::End);
    }
    let torn = |reason: String| Ok(Scan::TornTail { reason });
    if rest < (HEADER + 1) as u64 {
        return torn(format!("{rest} trailing bytes, shorter than a frame header"));
    }
    let mut header = [0u8; HEADER];
    r.read_exact(&mut header).map_err(io)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_FRAME {
        if header.iter().all(|b| *b == 0) && all_zero(r, rest - HEADER as u64).map_err(io)? {
            return torn("zero-filled tail".into());
        }
        return Err(format!("impossible frame length {len}"));
    }
    let size = (HEADER + len) as u64;
    if size > rest {
        return torn(format!("frame of {len} bytes cut short at {} bytes", rest - HEADER as u64));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf).map_err(io)?;
    if crc32fast::hash(buf) != crc {
        if size == rest {
            return torn("last frame fails its checksum".into());
        }
        return Err("frame fails its checksum and more data follows: damage inside the log".into());
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
        w.buf.extend_from_slice(body);
        w.finish(s).expect("finish");
        w.buf
    }

    fn scan_at(data: &[u8], offset: usize) -> std::result::Result<Scan, String> {
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
        assert_eq!(scan_at(&data, data.len()), Ok(Scan::End));
    }

    #[test]
    fn damage_in_the_middle_is_an_error_not_a_skip() {
        let mut data = one_frame(b"hello");
        data.extend(one_frame(b"world"));
        data[HEADER + 2] ^= 0xff;
        assert!(scan_at(&data, 0).is_err());
        let mut last_bad = one_frame(b"hello");
        let n = last_bad.len();
        last_bad[n - 1] ^= 0xff;
        assert!(matches!(scan_at(&last_bad, 0), Ok(Scan::TornTail { .. })));
        let mut garbage_len = one_frame(b"hello");
        garbage_len.extend([0xff; 16]);
        assert!(scan_at(&garbage_len, garbage_len.len() - 16).is_err());
    }

    #[test]
    fn readers_refuse_fields_past_the_end() {
        let mut r = FrameReader::new(&[1, 0, 0], 0);
        assert!(r.u16().is_ok());
        assert!(r.u32().is_err());
    }
}
