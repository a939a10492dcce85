//! Unit tests: every syntax feature, every error kind (with line and column), batches, streaming,
//! the serializer, and a throughput measurement on TSBS-shaped lines.

use std::io::{self, BufRead, Cursor, Read};
use std::time::Instant;

use super::*;

const TSBS: &str = "cpu,hostname=host_0,region=eu-west-1,datacenter=eu-west-1a,rack=6,os=Ubuntu16.10,arch=x86,team=SF,service=19,service_version=1,service_environment=test usage_user=58i,usage_system=2i,usage_idle=24i,usage_nice=61i,usage_iowait=22i,usage_irq=63i,usage_softirq=6i,usage_steal=44i,usage_guest=80i,usage_guest_nice=38i 1451606400000000000";

fn ok(line: &str) -> ParsedLine {
    match parse_line(line, 1, Precision::Ns) {
        Ok(Some(parsed)) => parsed,
        other => panic!("{line:?} should parse, got {other:?}"),
    }
}

fn err(line: &str) -> ParseError {
    match parse_line(line, 1, Precision::Ns) {
        Err(e) => e,
        other => panic!("{line:?} should fail, got {other:?}"),
    }
}

/// Asserts that `line` fails at `column` with `kind`.
#[track_caller]
fn assert_err(line: &str, column: usize, kind: ParseErrorKind) {
    let e = err(line);
    assert_eq!((e.line, e.column, &e.kind), (1, column, &kind), "{line:?}: {e}");
}

fn field(line: &str) -> FieldValue {
    let parsed = ok(line);
    assert_eq!(parsed.fields.len(), 1, "{line:?}");
    parsed.fields.into_iter().map(|(_, v)| v).next().unwrap_or(FieldValue::Bool(false))
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (s(k), s(v))).collect()
}

// ---------------------------------------------------------------------------------------------
// Syntax features
// ---------------------------------------------------------------------------------------------

#[test]
fn minimal_line() {
    let p = ok("m f=1");
    assert_eq!(
        p,
        ParsedLine {
            measurement: s("m"),
            tags: vec![],
            fields: vec![(s("f"), FieldValue::Float(1.0))],
            timestamp: None
        }
    );
}

#[test]
fn tags_fields_and_timestamp() {
    let p = ok("weather,location=us-midwest,season=summer temperature=82,humidity=71i 1465839830100400200");
    assert_eq!(p.measurement, "weather");
    assert_eq!(p.tags, tags(&[("location", "us-midwest"), ("season", "summer")]));
    assert_eq!(p.fields, vec![(s("temperature"), FieldValue::Float(82.0)), (s("humidity"), FieldValue::Int(71))]);
    assert_eq!(p.timestamp, Some(1_465_839_830_100_400_200));
}

#[test]
fn tsbs_cpu_only_line() {
    let p = ok(TSBS);
    assert_eq!(p.measurement, "cpu");
    assert_eq!(
        p.tags,
        tags(&[
            ("hostname", "host_0"),
            ("region", "eu-west-1"),
            ("datacenter", "eu-west-1a"),
            ("rack", "6"),
            ("os", "Ubuntu16.10"),
            ("arch", "x86"),
            ("team", "SF"),
            ("service", "19"),
            ("service_version", "1"),
            ("service_environment", "test"),
        ])
    );
    let expected = [
        ("usage_user", 58),
        ("usage_system", 2),
        ("usage_idle", 24),
        ("usage_nice", 61),
        ("usage_iowait", 22),
        ("usage_irq", 63),
        ("usage_softirq", 6),
        ("usage_steal", 44),
        ("usage_guest", 80),
        ("usage_guest_nice", 38),
    ];
    let expected: Vec<(String, FieldValue)> = expected.iter().map(|(k, v)| (s(k), FieldValue::Int(*v))).collect();
    assert_eq!(p.fields, expected);
    assert_eq!(p.timestamp, Some(1_451_606_400_000_000_000));
    assert_eq!(to_line(&p), TSBS);
}

#[test]
fn float_values() {
    let cases: &[(&str, f64)] = &[
        ("1", 1.0),
        ("1.0", 1.0),
        ("-1.5e3", -1500.0),
        ("1E+3", 1000.0),
        ("2e-3", 0.002),
        ("1.", 1.0),
        (".5", 0.5),
        ("-.5", -0.5),
        ("007", 7.0),
        ("1.e2", 100.0),
        ("1.7976931348623157e308", f64::MAX),
    ];
    for (text, want) in cases {
        assert_eq!(field(&format!("m f={text}")), FieldValue::Float(*want), "{text}");
    }
    let FieldValue::Float(neg_zero) = field("m f=-0") else { panic!("float expected") };
    assert_eq!(neg_zero.to_bits(), (-0.0f64).to_bits());
}

#[test]
fn integer_values() {
    assert_eq!(field("m f=42i"), FieldValue::Int(42));
    assert_eq!(field("m f=-42i"), FieldValue::Int(-42));
    assert_eq!(field("m f=0i"), FieldValue::Int(0));
    assert_eq!(field("m f=9223372036854775807i"), FieldValue::Int(i64::MAX));
    assert_eq!(field("m f=-9223372036854775808i"), FieldValue::Int(i64::MIN));
}

#[test]
fn unsigned_values() {
    assert_eq!(field("m f=0u"), FieldValue::UInt(0));
    assert_eq!(field("m f=42u"), FieldValue::UInt(42));
    assert_eq!(field("m f=18446744073709551615u"), FieldValue::UInt(u64::MAX));
}

#[test]
fn boolean_values() {
    for t in ["t", "T", "true", "True", "TRUE"] {
        assert_eq!(field(&format!("m f={t}")), FieldValue::Bool(true), "{t}");
    }
    for f in ["f", "F", "false", "False", "FALSE"] {
        assert_eq!(field(&format!("m f={f}")), FieldValue::Bool(false), "{f}");
    }
}

#[test]
fn string_values() {
    assert_eq!(field(r#"m f="hello""#), FieldValue::Str(s("hello")));
    assert_eq!(field(r#"m f="""#), FieldValue::Str(s("")));
    assert_eq!(field(r#"m f="a b,c=d""#), FieldValue::Str(s("a b,c=d")));
    assert_eq!(field(r#"m f="say \"hi\"""#), FieldValue::Str(s(r#"say "hi""#)));
    assert_eq!(field(r#"m f="back\\slash""#), FieldValue::Str(s(r"back\slash")));
    assert_eq!(field(r#"m f="ends with \\""#), FieldValue::Str(s(r"ends with \")));
    // Other backslashes are literal.
    assert_eq!(field(r#"m f="C:\path\n""#), FieldValue::Str(s(r"C:\path\n")));
    assert_eq!(field(r#"m f="北京 ☃""#), FieldValue::Str(s("北京 ☃")));
    assert_eq!(field("m f=\"tab\there\""), FieldValue::Str(s("tab\there")));
    // String followed by more fields and a timestamp.
    let p = ok(r#"m a="x,y",b=1i 5"#);
    assert_eq!(p.fields, vec![(s("a"), FieldValue::Str(s("x,y"))), (s("b"), FieldValue::Int(1))]);
    assert_eq!(p.timestamp, Some(5));
}

#[test]
fn measurement_escapes() {
    assert_eq!(ok(r"my\ meas\,urement f=1").measurement, "my meas,urement");
    // '=' needs no escape in a measurement; `\=` is kept literally there (not an escape).
    assert_eq!(ok("a=b f=1").measurement, "a=b");
    assert_eq!(ok(r"a\=b f=1").measurement, r"a\=b");
    assert_eq!(ok(r"back\\slash f=1").measurement, r"back\slash");
    assert_eq!(ok(r"C:\dir f=1").measurement, r"C:\dir");
    assert_eq!(ok(r"\ lead f=1").measurement, " lead");
}

#[test]
fn tag_and_field_key_escapes() {
    let p = ok(r"m,tag\ key\,1\==v\ a\,l\=ue\\,path=C:\Windows field\ k\=\,=1i");
    assert_eq!(p.tags, tags(&[("tag key,1=", r"v a,l=ue\"), ("path", r"C:\Windows")]));
    assert_eq!(p.fields, vec![(s("field k=,"), FieldValue::Int(1))]);
}

#[test]
fn unicode_names() {
    let p = ok("温度,城市=北京 值=1.5,说明=\"晴\" 1");
    assert_eq!(p.measurement, "温度");
    assert_eq!(p.tags, tags(&[("城市", "北京")]));
    assert_eq!(p.fields, vec![(s("值"), FieldValue::Float(1.5)), (s("说明"), FieldValue::Str(s("晴")))]);
}

#[test]
fn blank_and_comment_lines() {
    for line in ["", "   ", "\t", "\n", "\r\n", "# comment", "  # indented comment", "#m f=1", "\t#"] {
        assert_eq!(parse_line(line, 1, Precision::Ns), Ok(None), "{line:?}");
    }
    // A '#' that is not first is part of the measurement.
    assert_eq!(ok("m#1 f=1").measurement, "m#1");
}

#[test]
fn crlf_and_surrounding_blanks() {
    assert_eq!(ok("m f=1 5\r\n").timestamp, Some(5));
    assert_eq!(ok("m f=1\r").fields.len(), 1);
    assert_eq!(ok("  \tm f=1 5 \t ").timestamp, Some(5));
    let p = ok("m,t=v   f=1i   7");
    assert_eq!((p.tags.len(), p.fields.len(), p.timestamp), (1, 1, Some(7)));
}

#[test]
fn timestamps_and_precision() {
    let at = |line: &str, p: Precision| parse_line(line, 1, p).map(|l| l.and_then(|l| l.timestamp));
    assert_eq!(at("m f=1 1", Precision::Ns), Ok(Some(1)));
    assert_eq!(at("m f=1 1", Precision::Us), Ok(Some(1_000)));
    assert_eq!(at("m f=1 1", Precision::Ms), Ok(Some(1_000_000)));
    assert_eq!(at("m f=1 1", Precision::S), Ok(Some(1_000_000_000)));
    assert_eq!(at("m f=1 -5", Precision::S), Ok(Some(-5_000_000_000)));
    assert_eq!(at("m f=1 0", Precision::Ns), Ok(Some(0)));
    assert_eq!(at("m f=1 9223372036854775807", Precision::Ns), Ok(Some(i64::MAX)));
    assert_eq!(at("m f=1 -9223372036854775808", Precision::Ns), Ok(Some(i64::MIN)));
    assert_eq!(at("m f=1 9223372036", Precision::S), Ok(Some(9_223_372_036_000_000_000)));
    assert_eq!(at("m f=1", Precision::S), Ok(None));
}

#[test]
fn precision_from_str_and_display() {
    for (text, p) in [("ns", Precision::Ns), ("us", Precision::Us), ("ms", Precision::Ms), ("s", Precision::S)] {
        assert_eq!(text.parse::<Precision>(), Ok(p));
        assert_eq!(p.to_string(), text);
    }
    assert_eq!("n".parse::<Precision>(), Ok(Precision::Ns));
    assert_eq!("u".parse::<Precision>(), Ok(Precision::Us));
    let e = "h".parse::<Precision>().expect_err("h is not supported");
    assert_eq!(e, UnknownPrecision(s("h")));
    assert_eq!(e.to_string(), r#"unknown timestamp precision "h" (expected ns, us, ms or s)"#);
    assert_eq!(Precision::default(), Precision::Ns);
}

#[test]
fn tag_helpers() {
    let mut p = ok("m,zone=z,app=a,mid=m f=1,g=2i");
    assert_eq!(p.sorted_tags(), vec![("app", "a"), ("mid", "m"), ("zone", "z")]);
    assert_eq!(p.tags[0].0, "zone", "sorted_tags must not reorder the line");
    assert_eq!(p.tag("mid"), Some("m"));
    assert_eq!(p.tag("nope"), None);
    assert_eq!(p.field("g"), Some(&FieldValue::Int(2)));
    assert_eq!(p.field("g").map(FieldValue::type_name), Some("integer"));
    p.sort_tags();
    assert_eq!(p.tags, tags(&[("app", "a"), ("mid", "m"), ("zone", "z")]));
}

// ---------------------------------------------------------------------------------------------
// Error kinds, with columns
// ---------------------------------------------------------------------------------------------

#[test]
fn error_display_format() {
    let input = "cpu,host=a usage_user=1\n# comment\ncpu,host=a usage,x=1\n";
    let e = parse_batch(input, Precision::Ns, BatchMode::Strict).expect_err("line 3 is bad");
    let pe = e.parse_error();
    assert_eq!((pe.line, pe.column), (3, 17));
    assert_eq!(pe.to_string(), r#"line 3, column 17: expected '=' after field key "usage""#);
    assert_eq!(e.to_string(), r#"batch rejected: line 3, column 17: expected '=' after field key "usage""#);
}

#[test]
fn error_empty_measurement() {
    assert_err(",t=1 f=1", 1, ParseErrorKind::EmptyMeasurement);
    assert_err("  ,t=1 f=1", 3, ParseErrorKind::EmptyMeasurement);
}

#[test]
fn error_missing_fields() {
    assert_err("cpu", 4, ParseErrorKind::MissingFields);
    assert_err("cpu,host=a", 11, ParseErrorKind::MissingFields);
    assert_err("cpu,host=a   ", 11, ParseErrorKind::MissingFields);
    assert_err("北京", 3, ParseErrorKind::MissingFields);
}

#[test]
fn error_empty_tag_key() {
    assert_err("cpu,=a f=1", 5, ParseErrorKind::EmptyTagKey);
    assert_err("cpu, f=1", 5, ParseErrorKind::EmptyTagKey);
    assert_err("cpu,", 5, ParseErrorKind::EmptyTagKey);
    assert_err("cpu,a=b,,c=d f=1", 9, ParseErrorKind::EmptyTagKey);
}

#[test]
fn error_missing_tag_equals() {
    assert_err("cpu,host f=1", 9, ParseErrorKind::MissingTagEquals { key: s("host") });
    assert_err("cpu,host,a=b f=1", 9, ParseErrorKind::MissingTagEquals { key: s("host") });
    assert_err("cpu,ho\\ st", 11, ParseErrorKind::MissingTagEquals { key: s("ho st") });
}

#[test]
fn error_empty_tag_value() {
    assert_err("cpu,host= f=1", 10, ParseErrorKind::EmptyTagValue { key: s("host") });
    assert_err("cpu,host=,a=b f=1", 10, ParseErrorKind::EmptyTagValue { key: s("host") });
    // Columns count characters, not bytes.
    assert_err("北京,城市= 温度=1", 7, ParseErrorKind::EmptyTagValue { key: s("城市") });
}

#[test]
fn error_unescaped_equals_in_tag_value() {
    assert_err("cpu,host=a=b f=1", 11, ParseErrorKind::UnescapedEqualsInTagValue { key: s("host") });
    assert_eq!(ok(r"cpu,host=a\=b f=1").tags, tags(&[("host", "a=b")]));
}

#[test]
fn error_duplicate_tag_key() {
    assert_err("cpu,a=1,a=2 f=1", 9, ParseErrorKind::DuplicateTagKey { key: s("a") });
    assert_err(r"cpu,a\ b=1,a\ b=2 f=1", 12, ParseErrorKind::DuplicateTagKey { key: s("a b") });
}

#[test]
fn error_empty_field_key() {
    assert_err("cpu =1", 5, ParseErrorKind::EmptyFieldKey);
    assert_err("cpu a=1,", 9, ParseErrorKind::EmptyFieldKey);
    assert_err("cpu a=1,,b=2", 9, ParseErrorKind::EmptyFieldKey);
    assert_err("cpu a=1, b=2", 9, ParseErrorKind::EmptyFieldKey);
}

#[test]
fn error_missing_field_equals() {
    assert_err("cpu usage", 10, ParseErrorKind::MissingFieldEquals { key: s("usage") });
    assert_err("cpu usage 5", 10, ParseErrorKind::MissingFieldEquals { key: s("usage") });
    assert_err("cpu a=1,b", 10, ParseErrorKind::MissingFieldEquals { key: s("b") });
}

#[test]
fn error_missing_field_value() {
    assert_err("cpu a=", 7, ParseErrorKind::MissingFieldValue { key: s("a") });
    assert_err("cpu a=,b=1", 7, ParseErrorKind::MissingFieldValue { key: s("a") });
    assert_err("cpu a= 1", 7, ParseErrorKind::MissingFieldValue { key: s("a") });
}

#[test]
fn error_invalid_field_value() {
    for v in ["abc", "tru", "yes", "+1", "Truee", "'x'", "∞"] {
        assert_err(&format!("cpu a={v}"), 7, ParseErrorKind::InvalidFieldValue { key: s("a"), value: s(v) });
    }
}

#[test]
fn error_non_finite_float() {
    for v in ["inf", "-inf", "+inf", "Inf", "NaN", "nan", "-NaN", "infinity", "Infinity"] {
        assert_err(&format!("cpu a={v}"), 7, ParseErrorKind::NonFiniteFloat { key: s("a"), value: s(v) });
    }
}

#[test]
fn error_invalid_number() {
    let cases = [
        ("1.2.3", NumberKind::Float),
        ("1e", NumberKind::Float),
        ("--1", NumberKind::Float),
        ("-", NumberKind::Float),
        (".", NumberKind::Float),
        ("12abc", NumberKind::Float),
        ("0x10", NumberKind::Float),
        ("1.5i", NumberKind::Integer),
        ("1i2i", NumberKind::Integer),
        ("-i", NumberKind::Integer),
        ("-3u", NumberKind::Unsigned),
        ("1.0u", NumberKind::Unsigned),
    ];
    for (v, kind) in cases {
        assert_err(
            &format!("cpu a={v}"),
            7,
            ParseErrorKind::InvalidNumber { key: s("a"), value: s(v), expected: kind },
        );
    }
}

#[test]
fn error_number_out_of_range() {
    let cases = [
        ("9223372036854775808i", NumberKind::Integer),
        ("-9223372036854775809i", NumberKind::Integer),
        ("18446744073709551616u", NumberKind::Unsigned),
        ("1e400", NumberKind::Float),
        ("-1e400", NumberKind::Float),
    ];
    for (v, kind) in cases {
        assert_err(&format!("cpu a={v}"), 7, ParseErrorKind::NumberOutOfRange { key: s("a"), value: s(v), kind });
    }
}

#[test]
fn error_unterminated_string() {
    assert_err(r#"cpu s="abc"#, 7, ParseErrorKind::UnterminatedString { key: s("s") });
    assert_err(r#"cpu s="abc\""#, 7, ParseErrorKind::UnterminatedString { key: s("s") });
    assert_err(r#"cpu a=1,s="x 123"#, 11, ParseErrorKind::UnterminatedString { key: s("s") });
}

#[test]
fn error_unexpected_after_string() {
    assert_err(r#"cpu s="a"b"#, 10, ParseErrorKind::UnexpectedAfterString { key: s("s"), found: 'b' });
    assert_err(r#"cpu s="a""b""#, 10, ParseErrorKind::UnexpectedAfterString { key: s("s"), found: '"' });
}

#[test]
fn error_invalid_escape() {
    assert_err(r"cpu\", 4, ParseErrorKind::InvalidEscape);
    assert_err(r"cpu,t=v\", 8, ParseErrorKind::InvalidEscape);
    assert_err(r"cpu,t\", 6, ParseErrorKind::InvalidEscape);
    assert_err(r"cpu f\", 6, ParseErrorKind::InvalidEscape);
}

#[test]
fn error_duplicate_field_key() {
    assert_err("cpu a=1,a=2", 9, ParseErrorKind::DuplicateFieldKey { key: s("a") });
    assert_err(r#"cpu a="x",b=1,a=2i"#, 15, ParseErrorKind::DuplicateFieldKey { key: s("a") });
    // Tag and field keys live in different namespaces.
    assert_eq!(ok("cpu,a=x a=1").fields.len(), 1);
}

#[test]
fn error_duplicate_field_key_in_wide_line() {
    let fields: Vec<String> = (0..200).map(|i| format!("f{i}=1i")).collect();
    let line = format!("m {},f150=2i", fields.join(","));
    let e = err(&line);
    assert_eq!(e.kind, ParseErrorKind::DuplicateFieldKey { key: s("f150") });
    assert_eq!(e.column, line.len() - "f150=2i".len() + 1);
    assert_eq!(ok(&format!("m {}", fields.join(","))).fields.len(), 200);
}

#[test]
fn error_invalid_timestamp() {
    assert_err("cpu a=1 12x", 9, ParseErrorKind::InvalidTimestamp { value: s("12x") });
    assert_err("cpu a=1 1.5", 9, ParseErrorKind::InvalidTimestamp { value: s("1.5") });
    assert_err("cpu a=1 -", 9, ParseErrorKind::InvalidTimestamp { value: s("-") });
    assert_err("cpu a=1 +5", 9, ParseErrorKind::InvalidTimestamp { value: s("+5") });
}

#[test]
fn error_timestamp_overflow() {
    assert_err(
        "cpu a=1 9223372036854775808",
        9,
        ParseErrorKind::TimestampOverflow { value: s("9223372036854775808"), precision: Precision::Ns },
    );
    let e = parse_line("cpu a=1 9223372037", 4, Precision::S).expect_err("overflows in ns");
    assert_eq!((e.line, e.column), (4, 9));
    assert_eq!(e.kind, ParseErrorKind::TimestampOverflow { value: s("9223372037"), precision: Precision::S });
    let e = parse_line("cpu a=1 -9223372036855", 1, Precision::Ms).expect_err("underflows in ns");
    assert!(matches!(e.kind, ParseErrorKind::TimestampOverflow { precision: Precision::Ms, .. }));
}

#[test]
fn error_trailing_garbage() {
    assert_err("cpu a=1 123 456", 13, ParseErrorKind::TrailingGarbage { found: s("456") });
    assert_err("cpu a=1 123  x y", 14, ParseErrorKind::TrailingGarbage { found: s("x y") });
}

#[test]
fn error_embedded_newline() {
    assert_err("a f=1\nb f=2", 6, ParseErrorKind::EmbeddedNewline);
}

#[test]
fn error_values_are_shortened() {
    let long = "x".repeat(500);
    let e = err(&format!("m f={long}"));
    let ParseErrorKind::InvalidFieldValue { value, .. } = e.kind else { panic!("unexpected {e}") };
    assert_eq!(value.chars().count(), 65);
}

// ---------------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------------

const MIXED: &str = "# header\ncpu a=1 1\n\ncpu a= 2\r\ncpu b=2i 3\r\nbad\n  # note\ncpu c=t 4";

#[test]
fn batch_strict_rejects_on_first_bad_line() {
    let e = parse_batch(MIXED, Precision::Ns, BatchMode::Strict).expect_err("line 4 is bad");
    let pe = e.parse_error();
    assert_eq!((pe.line, pe.column), (4, 7));
    assert_eq!(pe.kind, ParseErrorKind::MissingFieldValue { key: s("a") });
}

#[test]
fn batch_lenient_reports_every_bad_line() {
    let out = parse_batch(MIXED, Precision::Ns, BatchMode::Lenient).expect("lenient never fails");
    let ts: Vec<Option<i64>> = out.lines.iter().map(|l| l.timestamp).collect();
    assert_eq!(ts, vec![Some(1), Some(3), Some(4)]);
    let at: Vec<(usize, usize)> = out.rejected.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(at, vec![(4, 7), (6, 4)]);
    assert_eq!(out.rejected[1].kind, ParseErrorKind::MissingFields);
    assert!(!out.is_clean());
}

#[test]
fn batch_clean_input() {
    let input = format!("{TSBS}\n{TSBS}\r\n\n{TSBS}\n");
    for mode in [BatchMode::Strict, BatchMode::Lenient] {
        let out = parse_batch(&input, Precision::Ns, mode).expect("clean");
        assert_eq!(out.lines.len(), 3);
        assert!(out.is_clean());
    }
    assert_eq!(parse_batch("", Precision::Ns, BatchMode::Strict), Ok(BatchOutcome::default()));
}

#[test]
fn batch_precision_applies_to_all_lines() {
    let out = parse_batch("m f=1 2\nm f=1 3", Precision::Ms, BatchMode::Strict).expect("ok");
    let ts: Vec<Option<i64>> = out.lines.iter().map(|l| l.timestamp).collect();
    assert_eq!(ts, vec![Some(2_000_000), Some(3_000_000)]);
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

#[test]
fn stream_matches_batch_and_counts_lines() {
    let reader = LineReader::new(Cursor::new(MIXED.as_bytes()), Precision::Ns);
    let items: Vec<Result<ParsedLine, StreamError>> = reader.collect();
    let batch = parse_batch(MIXED, Precision::Ns, BatchMode::Lenient).expect("lenient");
    let good: Vec<&ParsedLine> = items.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(good, batch.lines.iter().collect::<Vec<_>>());
    let bad: Vec<&ParseError> = items
        .iter()
        .filter_map(|r| match r {
            Err(StreamError::Parse(e)) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(bad, batch.rejected.iter().collect::<Vec<_>>());
}

#[test]
fn stream_chunks() {
    let input: String = (0..10).map(|i| format!("m f={i}i {i}\n")).collect();
    let mut reader = LineReader::new(Cursor::new(input.into_bytes()), Precision::S);
    let mut sizes = vec![];
    while let Some(chunk) = reader.read_chunk(4, BatchMode::Strict).expect("clean") {
        sizes.push(chunk.lines.len());
    }
    assert_eq!(sizes, vec![4, 4, 2]);
    assert_eq!(reader.line_no(), 10);

    let mut reader = LineReader::new(Cursor::new(MIXED.as_bytes()), Precision::Ns);
    let first = reader.read_chunk(3, BatchMode::Lenient).expect("lenient").expect("data");
    assert_eq!((first.lines.len(), first.rejected.len()), (2, 1));
    let second = reader.read_chunk(3, BatchMode::Lenient).expect("lenient").expect("data");
    assert_eq!((second.lines.len(), second.rejected.len()), (1, 1));
    assert_eq!(second.rejected[0].line, 6);
    assert!(reader.read_chunk(3, BatchMode::Lenient).expect("eof").is_none());

    let mut reader = LineReader::new(Cursor::new(MIXED.as_bytes()), Precision::Ns);
    match reader.read_chunk(100, BatchMode::Strict) {
        Err(StreamError::Parse(e)) => assert_eq!((e.line, e.column), (4, 7)),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn stream_invalid_utf8() {
    let input: &[u8] = b"ok f=1\nab\xffc f=1\n# \xff comment\n\xe5\x8c\x97\xff f=1\nok f=2";
    let items: Vec<Result<ParsedLine, StreamError>> = LineReader::new(input, Precision::Ns).collect();
    assert_eq!(items.len(), 4);
    for (item, (line, column)) in items.iter().filter(|r| r.is_err()).zip([(2, 3), (4, 2)]) {
        match item {
            Err(StreamError::Parse(e)) => {
                assert_eq!((e.line, e.column, &e.kind), (line, column, &ParseErrorKind::InvalidUtf8));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(&items[3], Ok(l) if l.fields == vec![(s("f"), FieldValue::Float(2.0))]));
}

#[test]
fn stream_line_too_long_is_skipped_and_counted() {
    let input = format!("m f=1\n{}\nm f=3\n", "x".repeat(100));
    let items: Vec<Result<ParsedLine, StreamError>> =
        LineReader::new(input.as_bytes(), Precision::Ns).with_max_line_len(10).collect();
    assert_eq!(items.len(), 3);
    match &items[1] {
        Err(StreamError::Parse(e)) => {
            assert_eq!((e.line, e.column, &e.kind), (2, 11, &ParseErrorKind::LineTooLong { limit: 10 }));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(&items[2], Ok(l) if l.field("f") == Some(&FieldValue::Float(3.0))));
    // A line of exactly the limit is fine, with or without its newline.
    let items: Vec<_> = LineReader::new(&b"m f=12345\nm f=12345"[..], Precision::Ns).with_max_line_len(9).collect();
    assert!(items.iter().all(Result::is_ok) && items.len() == 2, "{items:?}");
}

/// Fails after handing out some bytes.
struct FailingReader {
    data: Cursor<Vec<u8>>,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.data.read(buf)? {
            0 => Err(io::Error::other("disk on fire")),
            n => Ok(n),
        }
    }
}

#[test]
fn stream_io_error_ends_the_stream() {
    let reader = io::BufReader::new(FailingReader { data: Cursor::new(b"m f=1\nm f=2\n".to_vec()) });
    let items: Vec<Result<ParsedLine, StreamError>> = LineReader::new(reader, Precision::Ns).collect();
    assert_eq!(items.len(), 3);
    match &items[2] {
        Err(e @ StreamError::Io { line: 3, .. }) => {
            assert_eq!(e.to_string(), "I/O error while reading line 3: disk on fire");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn stream_reader_is_reusable() {
    let mut cursor = Cursor::new(b"m f=1\n".to_vec());
    let mut reader = LineReader::new(&mut cursor, Precision::Ns);
    assert!(reader.next_line().expect("ok").is_some());
    assert!(reader.next_line().expect("ok").is_none());
    let inner = reader.into_inner();
    assert!(inner.fill_buf().expect("cursor").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Serializer
// ---------------------------------------------------------------------------------------------

#[test]
fn serializer_escapes_each_element() {
    let line = ParsedLine {
        measurement: s(r"m, =\"),
        tags: tags(&[("k, =\\", "v, =\\\"")]),
        fields: vec![(s("f, =\\\""), FieldValue::Str(s("a \"q\" \\ , =")))],
        timestamp: Some(-1),
    };
    let text = to_line(&line);
    assert_eq!(text, r#"m\,\ =\\,k\,\ \=\\=v\,\ \=\\" f\,\ \=\\"="a \"q\" \\ , =" -1"#);
    assert_eq!(parse_line(&text, 1, Precision::Ns), Ok(Some(line.clone())));
    assert_eq!(line.to_string(), text);
}

#[test]
fn serializer_value_formats() {
    let line = ParsedLine {
        measurement: s("m"),
        tags: vec![],
        fields: vec![
            (s("a"), FieldValue::Float(1.0)),
            (s("b"), FieldValue::Float(-0.0)),
            (s("c"), FieldValue::Float(1e300)),
            (s("d"), FieldValue::Float(5e-324)),
            (s("e"), FieldValue::Int(i64::MIN)),
            (s("f"), FieldValue::UInt(u64::MAX)),
            (s("g"), FieldValue::Bool(true)),
            (s("h"), FieldValue::Bool(false)),
        ],
        timestamp: None,
    };
    let text = to_line(&line);
    assert_eq!(text, "m a=1.0,b=-0.0,c=1e300,d=5e-324,e=-9223372036854775808i,f=18446744073709551615u,g=true,h=false");
    assert_eq!(parse_line(&text, 1, Precision::Ns), Ok(Some(line)));
}

#[test]
fn serializer_appends() {
    let mut out = String::from("x");
    write_line(&ok("m f=1i"), &mut out);
    assert_eq!(out, "xm f=1i");
}

// ---------------------------------------------------------------------------------------------
// Throughput (measurement only, no timing assertion)
// ---------------------------------------------------------------------------------------------

fn tsbs_lines(n: usize) -> String {
    let mut out = String::with_capacity(n * 360);
    for i in 0..n {
        let v = |k: usize| (i * 7 + k * 13) % 100;
        out.push_str(&format!(
            "cpu,hostname=host_{},region=eu-west-1,datacenter=eu-west-1a,rack={},os=Ubuntu16.10,arch=x86,team=SF,\
             service={},service_version=1,service_environment=test usage_user={}i,usage_system={}i,usage_idle={}i,\
             usage_nice={}i,usage_iowait={}i,usage_irq={}i,usage_softirq={}i,usage_steal={}i,usage_guest={}i,\
             usage_guest_nice={}i {}\n",
            i % 4000,
            i % 100,
            i % 20,
            v(0),
            v(1),
            v(2),
            v(3),
            v(4),
            v(5),
            v(6),
            v(7),
            v(8),
            v(9),
            1_451_606_400_000_000_000_i64 + i64::try_from(i).unwrap_or(0) * 10_000_000_000,
        ));
    }
    out
}

#[test]
fn parse_rate_tsbs_100k() {
    const N: usize = 100_000;
    // Best of several rounds: the build machine is shared, so single runs are noisy.
    let rounds = if cfg!(debug_assertions) { 1 } else { 5 };
    let input = tsbs_lines(N);
    // Warm-up (page in the input, grow the allocator's pools).
    let warm = parse_batch(&tsbs_lines(N / 10), Precision::Ns, BatchMode::Strict).expect("valid");
    assert_eq!(warm.lines.len(), N / 10);
    drop(warm);

    let mut batch_secs = f64::INFINITY;
    let mut stream_secs = f64::INFINITY;
    for _ in 0..rounds {
        let started = Instant::now();
        let out = parse_batch(&input, Precision::Ns, BatchMode::Strict).expect("valid");
        batch_secs = batch_secs.min(started.elapsed().as_secs_f64());
        assert_eq!(out.lines.len(), N);
        drop(out);

        let started = Instant::now();
        let mut count = 0usize;
        for item in LineReader::new(input.as_bytes(), Precision::Ns) {
            if item.is_ok() {
                count += 1;
            }
        }
        stream_secs = stream_secs.min(started.elapsed().as_secs_f64());
        assert_eq!(count, N);
    }

    let mb = input.len() as f64 / 1e6;
    let mode = if cfg!(debug_assertions) { "debug build" } else { "release build" };
    eprintln!(
        "line_protocol parse rate ({mode}, best of {rounds}, {N} TSBS lines): \
         parse_batch (all lines kept) {:.0} lines/s = {:.0} field values/s, {:.1} MB/s; \
         LineReader (line by line, dropped) {:.0} lines/s",
        N as f64 / batch_secs,
        (N * 10) as f64 / batch_secs,
        mb / batch_secs,
        N as f64 / stream_secs,
    );
}
