//! Byte-scanning parser: [`parse_line`] and [`parse_batch`].
//!
//! The parser walks the bytes of a line once. Every delimiter it acts on is ASCII, and ASCII bytes
//! never occur inside a multi-byte UTF-8 sequence, so every offset it slices the `&str` at is a
//! character boundary. Only the output `String`s are allocated; elements without a backslash are
//! copied directly (no unescape pass).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use super::{
    BatchError, BatchMode, BatchOutcome, FieldValue, NumberKind, ParseError, ParseErrorKind, ParsedLine, Precision,
};

/// Longest key/value text copied into an error kind, in characters.
const SNIPPET_CHARS: usize = 64;

/// Up to this many entries, duplicate keys are found by a linear scan; beyond, with a hash set.
const LINEAR_DUP_LIMIT: usize = 32;

/// Parses one line.
///
/// `line` may end with `\n` or `\r\n`. Returns `Ok(None)` for blank lines and `#` comments.
/// `line_no` (1-based) is only used for the error position. Timestamps are read in `precision`
/// and returned in nanoseconds.
pub fn parse_line(line: &str, line_no: usize, precision: Precision) -> Result<Option<ParsedLine>, ParseError> {
    parse_line_hinted(line, line_no, precision, &mut CapacityHint::default())
}

/// Expected tag and field counts, so that the output vectors are allocated once at the right size.
/// Batches and streams pass the previous line's counts (consecutive lines usually share a shape).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct CapacityHint {
    tags: usize,
    fields: usize,
}

impl CapacityHint {
    /// Remembers the shape of `line` for the next one.
    fn update(&mut self, line: &ParsedLine) {
        self.tags = line.tags.len();
        self.fields = line.fields.len();
    }
}

/// [`parse_line`] with allocation sizes taken from (and updated in) `hint`.
pub(super) fn parse_line_hinted(
    line: &str,
    line_no: usize,
    precision: Precision,
    hint: &mut CapacityHint,
) -> Result<Option<ParsedLine>, ParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let bytes = line.as_bytes();
    if let Some(nl) = line.find('\n') {
        return Err(error_at(line, line_no, nl, ParseErrorKind::EmbeddedNewline));
    }
    let mut start = 0;
    while matches!(bytes.get(start), Some(b' ' | b'\t')) {
        start += 1;
    }
    match bytes.get(start) {
        None | Some(b'#') => return Ok(None),
        Some(_) => {}
    }
    let mut end = bytes.len();
    while end > start && matches!(bytes.get(end - 1), Some(b' ' | b'\t')) {
        end -= 1;
    }
    let parser = LineParser { line, bytes: &bytes[..end], line_no, precision };
    let parsed = parser.parse(start, *hint)?;
    hint.update(&parsed);
    Ok(Some(parsed))
}

/// Parses a whole body of newline-separated lines (line numbers start at 1).
///
/// In [`BatchMode::Strict`] the first bad line rejects the batch; in [`BatchMode::Lenient`] the
/// outcome holds every good line and one error per bad line.
pub fn parse_batch(input: &str, precision: Precision, mode: BatchMode) -> Result<BatchOutcome, BatchError> {
    // One cheap (vectorised) pass to size the output once; an upper bound (counts blank lines).
    let line_count = input.as_bytes().iter().filter(|&&b| b == b'\n').count() + 1;
    let mut outcome = BatchOutcome { lines: Vec::with_capacity(line_count), rejected: Vec::new() };
    let mut hint = CapacityHint::default();
    for (idx, line) in input.split('\n').enumerate() {
        match parse_line_hinted(line, idx + 1, precision, &mut hint) {
            Ok(Some(parsed)) => outcome.lines.push(parsed),
            Ok(None) => {}
            Err(e) => match mode {
                BatchMode::Strict => return Err(BatchError::Rejected(e)),
                BatchMode::Lenient => outcome.rejected.push(e),
            },
        }
    }
    Ok(outcome)
}

/// The element being scanned; decides which bytes end it and which may be escaped.
#[derive(Debug, Clone, Copy)]
enum Element {
    Measurement,
    TagKey,
    TagValue,
    FieldKey,
}

impl Element {
    /// Unescaped bytes that end the element.
    #[inline]
    fn is_stop(self, b: u8) -> bool {
        match self {
            Self::Measurement => b == b',' || b == b' ',
            Self::TagKey | Self::TagValue | Self::FieldKey => b == b',' || b == b' ' || b == b'=',
        }
    }

    /// Bytes that a backslash escapes in this element.
    #[inline]
    fn is_escapable(self, b: u8) -> bool {
        b == b'\\' || self.is_stop(b)
    }
}

/// 1-based character column of byte offset `at` in `line`.
fn column_of(line: &str, at: usize) -> usize {
    // Count bytes that start a character; works for any offset, boundary or not.
    line.as_bytes().iter().take(at).filter(|&&b| (b & 0xC0) != 0x80).count() + 1
}

#[cold]
fn error_at(line: &str, line_no: usize, at: usize, kind: ParseErrorKind) -> ParseError {
    ParseError { line: line_no, column: column_of(line, at), kind }
}

/// At most [`SNIPPET_CHARS`] characters of `s`, for error messages.
#[cold]
fn snippet(s: &str) -> String {
    match s.char_indices().nth(SNIPPET_CHARS) {
        None => s.to_owned(),
        Some((cut, _)) => {
            let mut out = String::with_capacity(cut + 3);
            out.push_str(&s[..cut]);
            out.push('…');
            out
        }
    }
}

struct LineParser<'a> {
    /// The whole line (without its newline); columns are computed against it.
    line: &'a str,
    /// The bytes being parsed: `line` without trailing blanks.
    bytes: &'a [u8],
    line_no: usize,
    precision: Precision,
}

impl<'a> LineParser<'a> {
    #[cold]
    fn err(&self, at: usize, kind: ParseErrorKind) -> ParseError {
        error_at(self.line, self.line_no, at, kind)
    }

    #[inline]
    fn at(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    /// `line[from..to]`; both offsets are on ASCII delimiters or the ends (see module docs).
    #[inline]
    fn text(&self, from: usize, to: usize) -> &'a str {
        &self.line[from..to]
    }

    fn parse(&self, start: usize, hint: CapacityHint) -> Result<ParsedLine, ParseError> {
        // Measurement.
        let (m_end, m_esc) = self.scan(start, Element::Measurement)?;
        if m_end == start {
            return Err(self.err(start, ParseErrorKind::EmptyMeasurement));
        }
        let measurement = self.unescape(start, m_end, m_esc, Element::Measurement);
        let mut i = m_end;

        // Tag set.
        let mut tags: Vec<(String, String)> = Vec::with_capacity(hint.tags);
        let mut tag_hashes = None;
        while self.at(i) == Some(b',') {
            let k_start = i + 1;
            let (k_end, k_esc) = self.scan(k_start, Element::TagKey)?;
            if k_end == k_start {
                return Err(self.err(k_start, ParseErrorKind::EmptyTagKey));
            }
            if self.at(k_end) != Some(b'=') {
                let key = snippet(&self.unescape(k_start, k_end, k_esc, Element::TagKey));
                return Err(self.err(k_end, ParseErrorKind::MissingTagEquals { key }));
            }
            let key = self.unescape(k_start, k_end, k_esc, Element::TagKey);
            let v_start = k_end + 1;
            let (v_end, v_esc) = self.scan(v_start, Element::TagValue)?;
            if v_end == v_start {
                return Err(self.err(v_start, ParseErrorKind::EmptyTagValue { key: snippet(&key) }));
            }
            if self.at(v_end) == Some(b'=') {
                return Err(self.err(v_end, ParseErrorKind::UnescapedEqualsInTagValue { key: snippet(&key) }));
            }
            if is_duplicate(&tags, &key, &mut tag_hashes) {
                return Err(self.err(k_start, ParseErrorKind::DuplicateTagKey { key: snippet(&key) }));
            }
            let value = self.unescape(v_start, v_end, v_esc, Element::TagValue);
            tags.push((key, value));
            i = v_end;
        }

        // Here `i` is at the end or on a space (the only other stop bytes were handled above).
        i = self.skip_spaces(i);
        if i >= self.bytes.len() {
            return Err(self.err(i, ParseErrorKind::MissingFields));
        }

        // Field set.
        let mut fields: Vec<(String, FieldValue)> = Vec::with_capacity(hint.fields.max(1));
        let mut field_hashes = None;
        loop {
            let k_start = i;
            let (k_end, k_esc) = self.scan(k_start, Element::FieldKey)?;
            if k_end == k_start {
                return Err(self.err(k_start, ParseErrorKind::EmptyFieldKey));
            }
            let key = self.unescape(k_start, k_end, k_esc, Element::FieldKey);
            if self.at(k_end) != Some(b'=') {
                return Err(self.err(k_end, ParseErrorKind::MissingFieldEquals { key: snippet(&key) }));
            }
            if is_duplicate(&fields, &key, &mut field_hashes) {
                return Err(self.err(k_start, ParseErrorKind::DuplicateFieldKey { key: snippet(&key) }));
            }
            let (value, v_end) = self.field_value(k_end + 1, &key)?;
            fields.push((key, value));
            match self.at(v_end) {
                Some(b',') => i = v_end + 1,
                // End of line or a space: the field set is complete.
                _ => {
                    i = v_end;
                    break;
                }
            }
        }

        // Optional timestamp.
        i = self.skip_spaces(i);
        let timestamp = if i < self.bytes.len() { Some(self.timestamp(i)?) } else { None };

        Ok(ParsedLine { measurement, tags, fields, timestamp })
    }

    #[inline]
    fn skip_spaces(&self, mut i: usize) -> usize {
        while self.at(i) == Some(b' ') {
            i += 1;
        }
        i
    }

    /// Scans an unquoted element from `start` to its first unescaped stop byte (or the end).
    /// Returns the end offset and whether the element contains an escape sequence.
    #[inline]
    fn scan(&self, start: usize, element: Element) -> Result<(usize, bool), ParseError> {
        let mut i = start;
        let mut escaped = false;
        while let Some(b) = self.at(i) {
            if b == b'\\' {
                match self.at(i + 1) {
                    None => return Err(self.err(i, ParseErrorKind::InvalidEscape)),
                    Some(next) if element.is_escapable(next) => {
                        escaped = true;
                        i += 2;
                    }
                    // A backslash before any other character is literal.
                    Some(_) => i += 1,
                }
            } else if element.is_stop(b) {
                break;
            } else {
                i += 1;
            }
        }
        Ok((i, escaped))
    }

    /// The unescaped text of `line[from..to]`.
    fn unescape(&self, from: usize, to: usize, escaped: bool, element: Element) -> String {
        let raw = self.text(from, to);
        if escaped { unescape_with(raw, |b| element.is_escapable(b)) } else { raw.to_owned() }
    }

    /// Parses the field value starting at `start`; returns it and the offset just after it, which
    /// is the end of the line, a `,` or a space.
    fn field_value(&self, start: usize, key: &str) -> Result<(FieldValue, usize), ParseError> {
        match self.at(start) {
            None | Some(b',' | b' ') => Err(self.err(start, ParseErrorKind::MissingFieldValue { key: snippet(key) })),
            Some(b'"') => self.string_value(start, key),
            Some(_) => {
                let mut end = start;
                while let Some(b) = self.at(end) {
                    if b == b',' || b == b' ' {
                        break;
                    }
                    end += 1;
                }
                let token = self.text(start, end);
                match classify(token) {
                    Ok(v) => Ok((v, end)),
                    Err(e) => Err(self.err(start, e.into_kind(key, token))),
                }
            }
        }
    }

    /// A double-quoted string starting at `quote`.
    fn string_value(&self, quote: usize, key: &str) -> Result<(FieldValue, usize), ParseError> {
        let from = quote + 1;
        let mut i = from;
        let mut escaped = false;
        loop {
            match self.at(i) {
                None => return Err(self.err(quote, ParseErrorKind::UnterminatedString { key: snippet(key) })),
                Some(b'\\') => match self.at(i + 1) {
                    Some(b'"' | b'\\') => {
                        escaped = true;
                        i += 2;
                    }
                    _ => i += 1,
                },
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        let raw = self.text(from, i);
        let value = if escaped { unescape_with(raw, |b| b == b'"' || b == b'\\') } else { raw.to_owned() };
        let end = i + 1;
        match self.at(end) {
            None | Some(b',' | b' ') => Ok((FieldValue::Str(value), end)),
            Some(_) => {
                let found = self.line[end..].chars().next().unwrap_or('"');
                Err(self.err(end, ParseErrorKind::UnexpectedAfterString { key: snippet(key), found }))
            }
        }
    }

    /// The timestamp token starting at `start` (non-blank); anything after it is an error.
    fn timestamp(&self, start: usize) -> Result<i64, ParseError> {
        let mut end = start;
        while let Some(b) = self.at(end) {
            if b == b' ' {
                break;
            }
            end += 1;
        }
        let token = self.text(start, end);
        let value = match parse_i64(token.as_bytes()) {
            Ok(v) => v,
            Err(NumError::Malformed) => {
                return Err(self.err(start, ParseErrorKind::InvalidTimestamp { value: snippet(token) }));
            }
            Err(NumError::Overflow) => {
                return Err(self.err(
                    start,
                    ParseErrorKind::TimestampOverflow { value: snippet(token), precision: self.precision },
                ));
            }
        };
        let Some(nanos) = self.precision.to_nanos(value) else {
            return Err(
                self.err(start, ParseErrorKind::TimestampOverflow { value: snippet(token), precision: self.precision })
            );
        };
        let rest = self.skip_spaces(end);
        if rest < self.bytes.len() {
            let found = snippet(self.text(rest, self.bytes.len()));
            return Err(self.err(rest, ParseErrorKind::TrailingGarbage { found }));
        }
        Ok(nanos)
    }
}

/// Copies `raw`, replacing `\x` by `x` for every `x` with `escapable(x)`; other backslashes stay.
fn unescape_with(raw: &str, escapable: impl Fn(u8) -> bool) -> String {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(&next) = bytes.get(i + 1)
            && escapable(next)
        {
            out.push_str(&raw[copied..i]);
            out.push(char::from(next));
            i += 2;
            copied = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&raw[copied..]);
    out
}

/// Whether `key` is already a key of `entries`. Linear for short lines; past
/// [`LINEAR_DUP_LIMIT`] entries a set of key hashes keeps the check O(1) so that a line with many
/// thousands of keys cannot make parsing quadratic.
fn is_duplicate<T>(entries: &[(String, T)], key: &str, hashes: &mut Option<(RandomState, HashSet<u64>)>) -> bool {
    if entries.len() < LINEAR_DUP_LIMIT {
        return entries.iter().any(|(k, _)| k == key);
    }
    let (state, set) = hashes.get_or_insert_with(|| {
        let state = RandomState::new();
        let set = entries.iter().map(|(k, _)| state.hash_one(k.as_str())).collect();
        (state, set)
    });
    if set.insert(state.hash_one(key)) {
        false
    } else {
        // Same hash: confirm (a collision is not a duplicate).
        entries.iter().any(|(k, _)| k == key)
    }
}

/// Why a numeric literal failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumError {
    Malformed,
    Overflow,
}

/// `-?[0-9]+` into `i64`, checked.
fn parse_i64(s: &[u8]) -> Result<i64, NumError> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(NumError::Malformed);
    }
    let mut acc: i64 = 0;
    let mut overflow = false;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(NumError::Malformed);
        }
        if !overflow {
            let d = i64::from(c - b'0');
            let next = acc.checked_mul(10).and_then(|a| if negative { a.checked_sub(d) } else { a.checked_add(d) });
            match next {
                Some(a) => acc = a,
                None => overflow = true,
            }
        }
    }
    if overflow { Err(NumError::Overflow) } else { Ok(acc) }
}

/// `[0-9]+` into `u64`, checked.
fn parse_u64(digits: &[u8]) -> Result<u64, NumError> {
    if digits.is_empty() {
        return Err(NumError::Malformed);
    }
    let mut acc: u64 = 0;
    let mut overflow = false;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(NumError::Malformed);
        }
        if !overflow {
            match acc.checked_mul(10).and_then(|a| a.checked_add(u64::from(c - b'0'))) {
                Some(a) => acc = a,
                None => overflow = true,
            }
        }
    }
    if overflow { Err(NumError::Overflow) } else { Ok(acc) }
}

/// `-?(digits[.digits*] | .digits)([eE][+-]?digits)?`
fn is_float_syntax(t: &[u8]) -> bool {
    let mut i = usize::from(t.first() == Some(&b'-'));
    let int_start = i;
    while t.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut digits = i - int_start;
    if t.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while t.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while t.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == t.len()
}

/// Spellings of infinity / NaN that Rust or other tools would print, optionally signed.
fn is_non_finite_literal(token: &str) -> bool {
    let unsigned = token.strip_prefix(['-', '+']).unwrap_or(token);
    ["inf", "infinity", "nan"].iter().any(|w| unsigned.eq_ignore_ascii_case(w))
}

/// A field-value failure before its position and key are attached.
#[derive(Debug, Clone, Copy)]
enum ValueError {
    Invalid,
    NonFinite,
    Malformed(NumberKind),
    OutOfRange(NumberKind),
}

impl ValueError {
    #[cold]
    fn into_kind(self, key: &str, token: &str) -> ParseErrorKind {
        let key = snippet(key);
        let value = snippet(token);
        match self {
            Self::Invalid => ParseErrorKind::InvalidFieldValue { key, value },
            Self::NonFinite => ParseErrorKind::NonFiniteFloat { key, value },
            Self::Malformed(expected) => ParseErrorKind::InvalidNumber { key, value, expected },
            Self::OutOfRange(kind) => ParseErrorKind::NumberOutOfRange { key, value, kind },
        }
    }
}

/// An unquoted field value (non-empty, contains no `,` or space).
fn classify(token: &str) -> Result<FieldValue, ValueError> {
    let t = token.as_bytes();
    match t.first() {
        Some(b't' | b'T' | b'f' | b'F') => match token {
            "t" | "T" | "true" | "True" | "TRUE" => Ok(FieldValue::Bool(true)),
            "f" | "F" | "false" | "False" | "FALSE" => Ok(FieldValue::Bool(false)),
            _ => Err(ValueError::Invalid),
        },
        Some(b'-' | b'.' | b'0'..=b'9') => classify_number(token),
        _ if is_non_finite_literal(token) => Err(ValueError::NonFinite),
        _ => Err(ValueError::Invalid),
    }
}

fn classify_number(token: &str) -> Result<FieldValue, ValueError> {
    let t = token.as_bytes();
    match t.split_last() {
        Some((b'i', body)) => match parse_i64(body) {
            Ok(v) => Ok(FieldValue::Int(v)),
            Err(NumError::Malformed) => Err(ValueError::Malformed(NumberKind::Integer)),
            Err(NumError::Overflow) => Err(ValueError::OutOfRange(NumberKind::Integer)),
        },
        Some((b'u', body)) => match parse_u64(body) {
            Ok(v) => Ok(FieldValue::UInt(v)),
            Err(NumError::Malformed) => Err(ValueError::Malformed(NumberKind::Unsigned)),
            Err(NumError::Overflow) => Err(ValueError::OutOfRange(NumberKind::Unsigned)),
        },
        _ => {
            if !is_float_syntax(t) {
                return Err(if is_non_finite_literal(token) {
                    ValueError::NonFinite
                } else {
                    ValueError::Malformed(NumberKind::Float)
                });
            }
            match token.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(FieldValue::Float(v)),
                Ok(_) => Err(ValueError::OutOfRange(NumberKind::Float)),
                Err(_) => Err(ValueError::Malformed(NumberKind::Float)),
            }
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn integer_edges() {
        assert_eq!(parse_i64(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), Err(NumError::Overflow));
        assert_eq!(parse_i64(b"-9223372036854775809"), Err(NumError::Overflow));
        assert_eq!(parse_i64(b"99999999999999999999x"), Err(NumError::Malformed));
        assert_eq!(parse_i64(b"-"), Err(NumError::Malformed));
        assert_eq!(parse_i64(b""), Err(NumError::Malformed));
        assert_eq!(parse_i64(b"+1"), Err(NumError::Malformed));
        assert_eq!(parse_u64(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), Err(NumError::Overflow));
        assert_eq!(parse_u64(b"-1"), Err(NumError::Malformed));
    }

    #[test]
    fn float_syntax() {
        for ok in ["1", "-1", "1.", ".5", "-.5", "1.5e3", "1E+3", "1e-3", "1.e5", "007"] {
            assert!(is_float_syntax(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "-", ".", "e5", "1e", "1e+", "1.2.3", "--1", "+1", "1f", "inf", "0x10", "1_000"] {
            assert!(!is_float_syntax(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn unescape_keeps_unknown_escapes() {
        let el = Element::TagValue;
        assert_eq!(unescape_with(r"a\,b\ c\=d\\e\xf\", |b| el.is_escapable(b)), r"a,b c=d\e\xf\");
        assert_eq!(unescape_with(r"\\\\", |b| el.is_escapable(b)), r"\\");
    }

    #[test]
    fn snippet_truncates_on_char_boundary() {
        let long = "北".repeat(100);
        let s = snippet(&long);
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 1);
        assert!(s.ends_with('…'));
        assert_eq!(snippet("short"), "short");
    }

    #[test]
    fn duplicate_check_scales() {
        let entries: Vec<(String, ())> = (0..1000).map(|i| (format!("k{i}"), ())).collect();
        let mut hashes = None;
        assert!(!is_duplicate(&entries, "new", &mut hashes));
        let mut hashes = None;
        assert!(is_duplicate(&entries, "k999", &mut hashes));
        let mut hashes = None;
        assert!(is_duplicate(&entries, "k3", &mut hashes));
    }
}
