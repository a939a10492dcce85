//! Property tests: serializer/parser round-trips and "never panics" on arbitrary input.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// Characters that stress escaping, plus some unicode and arbitrary non-newline characters.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![' ', ',', '=', '"', '\\', '#', '\t', '\r', '北', '京', '☃', 'é', '\u{0}']),
        4 => prop::char::range('a', 'z'),
        2 => prop::char::range('0', '9'),
        1 => any::<char>().prop_filter("no newline", |c| *c != '\n'),
    ]
}

fn tricky_string(min: usize, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), min..max).prop_map(String::from_iter)
}

/// A measurement the protocol can represent: non-empty, not starting with `#` or a tab.
fn measurement() -> impl Strategy<Value = String> {
    tricky_string(1, 12)
        .prop_filter("must not look like a comment or indentation", |m| !m.starts_with('#') && !m.starts_with('\t'))
}

fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        prop::sample::select(vec![0.0, -0.0, 1.0, -1.5e3, f64::MAX, f64::MIN, f64::MIN_POSITIVE, 5e-324, 1e16, 1e-7]),
    ]
}

fn field_value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        finite_f64().prop_map(FieldValue::Float),
        any::<i64>().prop_map(FieldValue::Int),
        any::<u64>().prop_map(FieldValue::UInt),
        tricky_string(0, 16).prop_map(FieldValue::Str),
        any::<bool>().prop_map(FieldValue::Bool),
    ]
}

prop_compose! {
    fn parsed_line()(
        measurement in measurement(),
        tags in prop::collection::btree_map(tricky_string(1, 10), tricky_string(1, 10), 0..6)
            .prop_map(|m: BTreeMap<String, String>| m.into_iter().collect::<Vec<_>>())
            .prop_shuffle(),
        fields in prop::collection::btree_map(tricky_string(1, 10), field_value(), 1..6)
            .prop_map(|m: BTreeMap<String, FieldValue>| m.into_iter().collect::<Vec<_>>())
            .prop_shuffle(),
        timestamp in any::<Option<i64>>(),
    ) -> ParsedLine {
        ParsedLine { measurement, tags, fields, timestamp }
    }
}

/// Equality with floats compared by bit pattern (so `-0.0 != 0.0`).
fn same_bits(a: &ParsedLine, b: &ParsedLine) -> bool {
    a.measurement == b.measurement
        && a.tags == b.tags
        && a.timestamp == b.timestamp
        && a.fields.len() == b.fields.len()
        && a.fields.iter().zip(&b.fields).all(|((ka, va), (kb, vb))| {
            ka == kb
                && match (va, vb) {
                    (FieldValue::Float(x), FieldValue::Float(y)) => x.to_bits() == y.to_bits(),
                    _ => va == vb,
                }
        })
}

/// Line-protocol-flavoured noise: mostly syntax characters, so the parser gets deep into lines.
fn lp_noise() -> impl Strategy<Value = String> {
    let alphabet = prop_oneof![
        6 => prop::sample::select(vec![
            ' ', ',', '=', '"', '\\', '#', '\n', '\r', '\t', '-', '.', 'e', 'E', 'i', 'u', 't', 'f', 'T', 'F', 'n',
            'a', 'm', '北', '0', '1', '9',
        ]),
        1 => any::<char>(),
    ];
    prop::collection::vec(alphabet, 0..80).prop_map(String::from_iter)
}

/// Checks that an error points inside (or just past the end of) its line.
fn check_error(input_line: &str, line_no: usize, e: &ParseError) -> Result<(), TestCaseError> {
    prop_assert_eq!(e.line, line_no);
    prop_assert!(e.column >= 1);
    prop_assert!(e.column <= input_line.chars().count() + 1, "column {} beyond {:?}", e.column, input_line);
    // Display never panics either.
    prop_assert!(!e.to_string().is_empty());
    Ok(())
}

/// Whatever parses must serialize to text that parses back to the same value.
fn check_reparse(parsed: &ParsedLine) -> Result<(), TestCaseError> {
    let text = to_line(parsed);
    match parse_line(&text, 1, Precision::Ns) {
        Ok(Some(again)) => prop_assert!(same_bits(parsed, &again), "{:?} -> {:?} -> {:?}", parsed, text, again),
        other => prop_assert!(false, "{:?} -> {:?} -> {:?}", parsed, text, other),
    }
    Ok(())
}

proptest! {
    // At least 512 cases; `PROPTEST_CASES` can ask for more.
    #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases.max(512), ..ProptestConfig::default() })]

    #[test]
    fn round_trip(line in parsed_line()) {
        let text = to_line(&line);
        match parse_line(&text, 7, Precision::Ns) {
            Ok(Some(parsed)) => prop_assert!(same_bits(&line, &parsed), "{:?}\n{}\n{:?}", line, text, parsed),
            other => prop_assert!(false, "{:?}\n{}\n{:?}", line, text, other),
        }
    }

    #[test]
    fn round_trip_batch_with_crlf(lines in prop::collection::vec(parsed_line(), 1..8)) {
        let text: String = lines.iter().map(|l| to_line(l) + "\r\n").collect();
        let out = parse_batch(&text, Precision::Ns, BatchMode::Strict);
        prop_assert!(out.is_ok(), "{:?}", out);
        let out = out.unwrap_or_default();
        prop_assert_eq!(out.lines.len(), lines.len());
        for (a, b) in lines.iter().zip(&out.lines) {
            prop_assert!(same_bits(a, b));
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(input in any::<String>()) {
        match parse_line(&input, 1, Precision::S) {
            Ok(Some(parsed)) => check_reparse(&parsed)?,
            Ok(None) => {}
            Err(e) => check_error(input.strip_suffix('\n').unwrap_or(&input), 1, &e)?,
        }
        let _ = parse_batch(&input, Precision::Ms, BatchMode::Strict);
    }

    #[test]
    fn line_protocol_noise_never_panics(input in lp_noise()) {
        let lenient = parse_batch(&input, Precision::Ns, BatchMode::Lenient);
        prop_assert!(lenient.is_ok());
        let lenient = lenient.unwrap_or_default();
        let raw_lines: Vec<&str> = input.split('\n').collect();
        for e in &lenient.rejected {
            let raw = raw_lines.get(e.line - 1).copied().unwrap_or_default();
            check_error(raw.strip_suffix('\r').unwrap_or(raw), e.line, e)?;
        }
        for parsed in &lenient.lines {
            check_reparse(parsed)?;
        }
        // Strict fails exactly when lenient rejected something, on the same first error.
        match parse_batch(&input, Precision::Ns, BatchMode::Strict) {
            Ok(out) => prop_assert!(lenient.rejected.is_empty() && out == lenient),
            Err(e) => prop_assert_eq!(Some(e.parse_error()), lenient.rejected.first()),
        }
        // The streaming reader sees the same lines and errors.
        let streamed: Vec<_> = LineReader::new(input.as_bytes(), Precision::Ns).collect();
        prop_assert_eq!(streamed.len(), lenient.lines.len() + lenient.rejected.len());
    }

    #[test]
    fn mutated_valid_lines_never_panic(line in parsed_line(), pos in any::<prop::sample::Index>(), c in tricky_char()) {
        let mut text: Vec<char> = to_line(&line).chars().collect();
        let at = pos.index(text.len() + 1);
        text.insert(at, c);
        let text: String = text.into_iter().collect();
        match parse_line(&text, 3, Precision::Us) {
            Ok(Some(parsed)) => {
                // Timestamps were scaled by the precision, so re-serialize in ns and compare that way.
                check_reparse(&parsed)?;
            }
            Ok(None) => {}
            Err(e) => check_error(&text, 3, &e)?,
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_when_streamed(bytes in prop::collection::vec(any::<u8>(), 0..200), max in 1usize..64) {
        let reader = LineReader::new(&bytes[..], Precision::Ns).with_max_line_len(max);
        for item in reader {
            if let Err(StreamError::Parse(e)) = item {
                prop_assert!(e.column >= 1);
            }
        }
    }
}
