//! Streaming parser over [`BufRead`] for big files, stdin and request bodies.

use std::io::{self, BufRead, Read as _};

use super::parser::{CapacityHint, parse_line_hinted};
use super::{BatchMode, BatchOutcome, ParseError, ParseErrorKind, ParsedLine, Precision};

/// Default longest accepted line, in bytes (excluding the `\n`): 4 MiB.
pub const DEFAULT_MAX_LINE_LEN: usize = 4 << 20;

/// Failure while streaming: either the reader failed (fatal) or one line is bad (the reader can
/// continue with the next line).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading failed; the stream ends here.
    #[error("I/O error while reading line {line}: {source}")]
    Io {
        /// 1-based number of the line being read.
        line: usize,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A line could not be parsed.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// Parses line protocol from a [`BufRead`] one line at a time, with a bounded line buffer.
///
/// Line numbers count every physical line (blank lines and comments included) from 1 over the whole
/// stream. Bytes that are not UTF-8 reject that line ([`ParseErrorKind::InvalidUtf8`]); a line
/// longer than the limit is skipped and rejected ([`ParseErrorKind::LineTooLong`]) without being
/// buffered whole.
///
/// As an [`Iterator`] it yields `Ok(line)` for each point and `Err` for each bad line, continuing
/// after parse errors (the caller decides strict or lenient) and ending after an I/O error.
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    precision: Precision,
    line_no: usize,
    max_line_len: usize,
    buf: Vec<u8>,
    hint: CapacityHint,
    failed: bool,
}

impl<R: BufRead> LineReader<R> {
    /// A reader with timestamps in `precision` and the [`DEFAULT_MAX_LINE_LEN`] limit.
    pub fn new(reader: R, precision: Precision) -> Self {
        Self {
            reader,
            precision,
            line_no: 0,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            buf: Vec::new(),
            hint: CapacityHint::default(),
            failed: false,
        }
    }

    /// Sets the longest accepted line in bytes, excluding the `\n` (at least 1).
    pub fn with_max_line_len(mut self, max_line_len: usize) -> Self {
        self.max_line_len = max_line_len.max(1);
        self
    }

    /// Number of physical lines read so far (the number of the last line read).
    pub fn line_no(&self) -> usize {
        self.line_no
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.reader
    }

    /// The next point, skipping blank and comment lines; `Ok(None)` at the end of input.
    pub fn next_line(&mut self) -> Result<Option<ParsedLine>, StreamError> {
        if self.failed {
            return Ok(None);
        }
        loop {
            match self.read_raw() {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(e) => {
                    if matches!(e, StreamError::Io { .. }) {
                        self.failed = true;
                    }
                    return Err(e);
                }
            }
            let line_no = self.line_no;
            let parsed = match std::str::from_utf8(&self.buf) {
                Ok(text) => parse_line_hinted(text, line_no, self.precision, &mut self.hint)?,
                Err(e) => {
                    if is_comment_or_blank(&self.buf) {
                        continue;
                    }
                    let column = char_count(self.buf.get(..e.valid_up_to()).unwrap_or_default()) + 1;
                    return Err(ParseError { line: line_no, column, kind: ParseErrorKind::InvalidUtf8 }.into());
                }
            };
            if let Some(line) = parsed {
                return Ok(Some(line));
            }
        }
    }

    /// Reads up to `max_lines` non-blank lines (at least 1) as one batch; `Ok(None)` once the input
    /// is exhausted. In [`BatchMode::Strict`] the first bad line is returned as an error (points
    /// read earlier in this chunk are dropped; earlier chunks were already handed out). In
    /// [`BatchMode::Lenient`] bad lines count towards `max_lines` and are listed in the outcome.
    pub fn read_chunk(&mut self, max_lines: usize, mode: BatchMode) -> Result<Option<BatchOutcome>, StreamError> {
        let max_lines = max_lines.max(1);
        let mut outcome = BatchOutcome::default();
        while outcome.lines.len() + outcome.rejected.len() < max_lines {
            match self.next_line() {
                Ok(Some(line)) => outcome.lines.push(line),
                Ok(None) => break,
                Err(StreamError::Parse(e)) if mode == BatchMode::Lenient => outcome.rejected.push(e),
                Err(e) => return Err(e),
            }
        }
        if outcome.lines.is_empty() && outcome.rejected.is_empty() { Ok(None) } else { Ok(Some(outcome)) }
    }

    /// Reads the next physical line into `buf` (with its `\n`, if any). `Ok(false)` at EOF.
    fn read_raw(&mut self) -> Result<bool, StreamError> {
        self.buf.clear();
        let limit = u64::try_from(self.max_line_len).unwrap_or(u64::MAX).saturating_add(1);
        let line = self.line_no + 1;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| StreamError::Io { line, source })?;
        if n == 0 {
            return Ok(false);
        }
        self.line_no = line;
        if self.buf.len() > self.max_line_len && self.buf.last() != Some(&b'\n') {
            let column = char_count(self.buf.get(..self.max_line_len).unwrap_or_default()) + 1;
            let limit = self.max_line_len;
            self.buf.clear();
            self.reader.skip_until(b'\n').map_err(|source| StreamError::Io { line, source })?;
            return Err(ParseError { line, column, kind: ParseErrorKind::LineTooLong { limit } }.into());
        }
        Ok(true)
    }
}

impl<R: BufRead> Iterator for LineReader<R> {
    type Item = Result<ParsedLine, StreamError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_line().transpose()
    }
}

/// Characters in a (possibly truncated) UTF-8 byte string.
fn char_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count()
}

/// Whether a raw line is blank or a `#` comment (checked on bytes, for non-UTF-8 lines).
fn is_comment_or_blank(bytes: &[u8]) -> bool {
    match bytes.iter().find(|&&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
        None => true,
        Some(&b) => b == b'#',
    }
}
