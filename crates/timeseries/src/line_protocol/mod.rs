//! InfluxDB line protocol (1.x / 2.x) parser and serializer.
//!
//! ```text
//! measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]
//! ```
//!
//! Entry points:
//!
//! * [`parse_line`] parses one line (`Ok(None)` for blank and `#` comment lines);
//! * [`parse_batch`] parses a whole in-memory body in [`BatchMode::Strict`] (first bad line rejects the
//!   batch) or [`BatchMode::Lenient`] (good lines plus one [`ParseError`] per bad line, nothing is
//!   dropped silently);
//! * [`LineReader`] streams over any [`std::io::BufRead`] (files, stdin, request bodies) with line
//!   numbers that keep counting across the whole input;
//! * [`to_line`] / [`write_line`] serialize a [`ParsedLine`] back to text with correct escaping.
//!
//! # Syntax accepted
//!
//! * Lines are separated by `\n`; a trailing `\r` (CRLF) is stripped. Leading and trailing spaces and
//!   tabs are ignored. A line whose first non-blank character is `#` is a comment.
//! * Sections (measurement+tags, fields, timestamp) are separated by one or more spaces.
//! * Escapes (a backslash followed by the character):
//!   * measurement: `\,` and `\ `;
//!   * tag keys, tag values, field keys: `\,`, `\=` and `\ `;
//!   * string field values: `\"` and `\\`.
//!
//!   As in InfluxDB 2.x, two contiguous backslashes (`\\`) are one literal backslash in every element,
//!   and a backslash followed by any other character is kept literally (`C:\Windows` stays as is).
//!   A backslash as the very last character of an unquoted element at the end of the line escapes
//!   nothing and is rejected ([`ParseErrorKind::InvalidEscape`]).
//! * Tag values must not be empty and must not contain an unescaped `=`.
//! * Field values:
//!   * float: `-?digits[.digits][e[+-]digits]` (also `1.` and `.5`); `inf`, `NaN` and friends are
//!     rejected like InfluxDB does ([`ParseErrorKind::NonFiniteFloat`]), and so is a literal that
//!     overflows to infinity such as `1e400` ([`ParseErrorKind::NumberOutOfRange`]);
//!   * signed integer: `-?digits` followed by `i` (`i64` range);
//!   * unsigned integer: `digits` followed by `u` (`u64` range);
//!   * string: double quoted; may contain spaces, commas, equals signs, but not a newline;
//!   * boolean: `t`, `T`, `true`, `True`, `TRUE`, `f`, `F`, `false`, `False`, `FALSE`.
//! * The timestamp is an optional signed integer in the unit given by [`Precision`] and is converted
//!   to `i64` nanoseconds with overflow checking.
//!
//! # Decisions
//!
//! * **Duplicate field keys are an error** ([`ParseErrorKind::DuplicateFieldKey`]), and so are
//!   duplicate tag keys ([`ParseErrorKind::DuplicateTagKey`]). "Last wins" would silently drop a
//!   value that a client sent, which this platform never does; a rejected line is reported instead.
//! * **`inf` / `NaN` are rejected**, following InfluxDB, which has no literal for them; floats that
//!   overflow `f64` are rejected rather than stored as infinity.
//! * Tags are kept in input order; [`ParsedLine::sorted_tags`] and [`ParsedLine::sort_tags`] give
//!   the canonical (key-sorted) order.
//! * Column numbers in errors are 1-based and count characters (not bytes) of the line.

mod parser;
mod stream;
mod writer;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub use parser::{parse_batch, parse_line};
pub use stream::{DEFAULT_MAX_LINE_LEN, LineReader, StreamError};
pub use writer::{to_line, write_line};

/// One point parsed from a line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedLine {
    /// Measurement name (unescaped).
    pub measurement: String,
    /// Tags in input order (unescaped). Keys are unique.
    pub tags: Vec<(String, String)>,
    /// Fields in input order (unescaped keys). At least one; keys are unique.
    pub fields: Vec<(String, FieldValue)>,
    /// Timestamp in nanoseconds since the Unix epoch, if the line had one.
    pub timestamp: Option<i64>,
}

impl ParsedLine {
    /// Tags sorted by key (then value), borrowed; the line itself is left untouched.
    pub fn sorted_tags(&self) -> Vec<(&str, &str)> {
        let mut tags: Vec<(&str, &str)> = self.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        tags.sort_unstable();
        tags
    }

    /// Sorts the tags by key in place (canonical series order).
    pub fn sort_tags(&mut self) {
        self.tags.sort_unstable();
    }

    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The value of field `key`, if present.
    pub fn field(&self, key: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl fmt::Display for ParsedLine {
    /// Formats the line as line protocol (same text as [`to_line`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_line(self))
    }
}

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// 64-bit float (a bare number such as `1`, `1.5`, `-2e3`). Always finite when parsed.
    Float(f64),
    /// Signed integer (`42i`).
    Int(i64),
    /// Unsigned integer (`42u`).
    UInt(u64),
    /// String (`"text"`).
    Str(String),
    /// Boolean (`t`, `true`, `F`, ...).
    Bool(bool),
}

impl FieldValue {
    /// A short name of the value's type: `float`, `integer`, `unsigned`, `string` or `boolean`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Float(_) => "float",
            Self::Int(_) => "integer",
            Self::UInt(_) => "unsigned",
            Self::Str(_) => "string",
            Self::Bool(_) => "boolean",
        }
    }
}

/// Unit of the timestamps in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Nanoseconds (default).
    #[default]
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

impl Precision {
    /// Nanoseconds per unit.
    pub const fn nanos_per_unit(self) -> i64 {
        match self {
            Self::Ns => 1,
            Self::Us => 1_000,
            Self::Ms => 1_000_000,
            Self::S => 1_000_000_000,
        }
    }

    /// Converts a timestamp in this unit to nanoseconds; `None` on `i64` overflow.
    pub const fn to_nanos(self, value: i64) -> Option<i64> {
        value.checked_mul(self.nanos_per_unit())
    }

    /// The canonical name: `ns`, `us`, `ms` or `s`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ns => "ns",
            Self::Us => "us",
            Self::Ms => "ms",
            Self::S => "s",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A precision string that is not one of `ns`, `us`, `ms`, `s` (or the 1.x aliases `n`, `u`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown timestamp precision {0:?} (expected ns, us, ms or s)")]
pub struct UnknownPrecision(pub String);

impl FromStr for Precision {
    type Err = UnknownPrecision;

    /// Accepts `ns`, `us`, `ms`, `s`, plus the InfluxDB 1.x spellings `n` and `u`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ns" | "n" => Ok(Self::Ns),
            "us" | "u" => Ok(Self::Us),
            "ms" => Ok(Self::Ms),
            "s" => Ok(Self::S),
            other => Err(UnknownPrecision(other.to_owned())),
        }
    }
}

/// A line that could not be parsed, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct ParseError {
    /// 1-based line number in the input.
    pub line: usize,
    /// 1-based column, counted in characters of that line.
    pub column: usize,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

/// Which kind of numeric literal a field value was meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberKind {
    /// Bare number, `f64`.
    Float,
    /// `i` suffix, `i64`.
    Integer,
    /// `u` suffix, `u64`.
    Unsigned,
}

impl fmt::Display for NumberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Float => "float",
            Self::Integer => "integer",
            Self::Unsigned => "unsigned integer",
        })
    }
}

/// Every way a line can be rejected. Keys and values quoted in a kind are shortened to at most 64
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The line starts with `,` or a space-separated section where the measurement should be.
    #[error("missing measurement name")]
    EmptyMeasurement,
    /// The line ended after the measurement / tag set: at least one field is required.
    #[error("missing field set (at least one field is required)")]
    MissingFields,
    /// A `,` in the tag set is not followed by a tag key.
    #[error("empty tag key")]
    EmptyTagKey,
    /// A tag key is not followed by `=`.
    #[error("expected '=' after tag key {key:?}")]
    MissingTagEquals {
        /// The tag key.
        key: String,
    },
    /// `key=` with nothing after it.
    #[error("empty value for tag key {key:?} (omit the tag instead)")]
    EmptyTagValue {
        /// The tag key.
        key: String,
    },
    /// A tag value contains an unescaped `=` (write `\=`).
    #[error("unescaped '=' in value of tag {key:?}")]
    UnescapedEqualsInTagValue {
        /// The tag key.
        key: String,
    },
    /// The same tag key appears twice in one line.
    #[error("duplicate tag key {key:?}")]
    DuplicateTagKey {
        /// The repeated key.
        key: String,
    },
    /// A field key is empty (e.g. `=1`, a trailing `,` or `,,`).
    #[error("empty field key")]
    EmptyFieldKey,
    /// A field key is not followed by `=`.
    #[error("expected '=' after field key {key:?}")]
    MissingFieldEquals {
        /// The field key.
        key: String,
    },
    /// `key=` with nothing after it.
    #[error("missing value for field key {key:?}")]
    MissingFieldValue {
        /// The field key.
        key: String,
    },
    /// A field value that is not a number, string or boolean (e.g. `tru`, `abc`, `+1`).
    #[error("invalid value {value:?} for field {key:?} (expected a number, a quoted string or a boolean)")]
    InvalidFieldValue {
        /// The field key.
        key: String,
        /// The offending text.
        value: String,
    },
    /// `inf`, `NaN` and similar literals, which InfluxDB does not accept.
    #[error("non-finite float {value:?} for field {key:?} (inf and NaN are not allowed)")]
    NonFiniteFloat {
        /// The field key.
        key: String,
        /// The offending text.
        value: String,
    },
    /// A value that looks numeric but is malformed (`1.2.3`, `1.5i`, `-3u`, `1e`, `--1`).
    #[error("malformed {expected} {value:?} for field {key:?}")]
    InvalidNumber {
        /// The field key.
        key: String,
        /// The offending text.
        value: String,
        /// What the literal claimed to be (from its suffix).
        expected: NumberKind,
    },
    /// A well-formed number outside the range of its type (`9223372036854775808i`, `1e400`).
    #[error("{kind} {value:?} for field {key:?} is out of range")]
    NumberOutOfRange {
        /// The field key.
        key: String,
        /// The offending text.
        value: String,
        /// The literal's type.
        kind: NumberKind,
    },
    /// A string field value without its closing `"`.
    #[error("unterminated string value for field {key:?}")]
    UnterminatedString {
        /// The field key.
        key: String,
    },
    /// Something other than `,`, a space or the end of the line right after a closing `"`.
    #[error("unexpected {found:?} after the string value of field {key:?} (expected ',' or ' ')")]
    UnexpectedAfterString {
        /// The field key.
        key: String,
        /// The character found.
        found: char,
    },
    /// A backslash at the very end of the line, escaping nothing.
    #[error("backslash at end of line escapes nothing")]
    InvalidEscape,
    /// The same field key appears twice in one line.
    #[error("duplicate field key {key:?}")]
    DuplicateFieldKey {
        /// The repeated key.
        key: String,
    },
    /// The timestamp is not an integer.
    #[error("invalid timestamp {value:?} (expected an integer)")]
    InvalidTimestamp {
        /// The offending text.
        value: String,
    },
    /// The timestamp does not fit in `i64` nanoseconds.
    #[error("timestamp {value:?} ({precision}) overflows i64 nanoseconds")]
    TimestampOverflow {
        /// The offending text.
        value: String,
        /// The precision it was read with.
        precision: Precision,
    },
    /// Text after the timestamp.
    #[error("unexpected trailing text {found:?} after the timestamp")]
    TrailingGarbage {
        /// The extra text.
        found: String,
    },
    /// A `\n` inside the text given to [`parse_line`] (one line at a time; values cannot contain
    /// newlines).
    #[error("newline inside a line (line protocol values cannot contain newlines)")]
    EmbeddedNewline,
    /// The bytes of the line are not UTF-8 (streaming input only).
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    /// The line is longer than the reader's limit (streaming input only); the rest of it was skipped.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
}

/// How [`parse_batch`] treats bad lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BatchMode {
    /// The first bad line rejects the whole batch.
    #[default]
    Strict,
    /// Good lines are returned, and every bad line is reported in [`BatchOutcome::rejected`].
    Lenient,
}

/// The result of parsing a batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchOutcome {
    /// Lines parsed successfully, in input order.
    pub lines: Vec<ParsedLine>,
    /// One error per rejected line, in input order (always empty in [`BatchMode::Strict`]).
    pub rejected: Vec<ParseError>,
}

impl BatchOutcome {
    /// True when no line was rejected.
    pub fn is_clean(&self) -> bool {
        self.rejected.is_empty()
    }
}

/// A batch rejected in [`BatchMode::Strict`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The first bad line; nothing in the batch was accepted.
    #[error("batch rejected: {0}")]
    Rejected(ParseError),
}

impl BatchError {
    /// The parse error that rejected the batch.
    pub fn parse_error(&self) -> &ParseError {
        match self {
            Self::Rejected(e) => e,
        }
    }
}
