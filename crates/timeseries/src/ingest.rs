//! Turning line protocol into points: each numeric field of a line becomes
//! one point of the series `<measurement>_<field>` (or `<measurement>` for
//! a field named `value`), carrying the line's tags and timestamp.

use std::collections::BTreeMap;
use std::io::BufRead;

use crate::line_protocol::{BatchMode, FieldValue, LineReader, ParsedLine, Precision};
use crate::model::Point;
use crate::{Engine, Error, Result, WriteReport};

/// The series name a field of a measurement is stored under.
pub fn series_name(measurement: &str, field: &str) -> String {
    if field == "value" { measurement.to_owned() } else { format!("{measurement}_{field}") }
}

/// Points of one parsed line; `now` stands in for a missing timestamp.
/// String fields are refused (a time series holds numbers).
pub fn points_of(line: &ParsedLine, now: i64) -> Result<Vec<Point>> {
    let tags: BTreeMap<String, String> = line.tags.iter().cloned().collect();
    let ts = line.timestamp.unwrap_or(now);
    line.fields
        .iter()
        .map(|(field, value)| {
            let v = match value {
                FieldValue::Float(f) => *f,
                FieldValue::Int(i) => *i as f64,
                FieldValue::UInt(u) => *u as f64,
                FieldValue::Bool(b) => f64::from(u8::from(*b)),
                FieldValue::Str(_) => {
                    return Err(Error::StringField { measurement: line.measurement.clone(), field: field.clone() });
                }
            };
            Ok(Point {
                series: series_name(&line.measurement, field),
                tags: tags.clone(),
                timestamp: ts,
                value: v,
                quality: Default::default(),
                unit: None,
            })
        })
        .collect()
}

/// What a line-protocol load did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Lines read, blank and comment lines aside (refused ones included).
    pub lines: usize,
    pub written: WriteReport,
    /// Lines refused in lenient mode, in line order.
    pub rejected: Vec<Rejected>,
}

/// A line a lenient load refused: it did not parse, or a point of it failed
/// the schema (unknown series or tag key, a string field, too late, NaN).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Rejected {
    /// 1-based line number in the input.
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Points parsed from a chunk of lines, each with the line it came from.
#[derive(Debug, Default)]
struct Chunk {
    points: Vec<Point>,
    lines: Vec<usize>,
}

/// Reads line protocol from `input` in chunks and writes each chunk as one
/// batch. Strict mode stops at the first bad line or point (earlier chunks
/// stay written); lenient mode writes every good line and reports each bad
/// one, whether it fails to parse or fails the schema.
///
/// Parsing the next chunk overlaps writing the one before it: the caller's
/// thread parses, a scoped thread writes, with at most one parsed chunk
/// waiting between them.
pub fn load(
    engine: &Engine,
    input: impl BufRead,
    precision: Precision,
    mode: BatchMode,
    chunk: usize,
) -> Result<LoadReport> {
    let lenient = mode == BatchMode::Lenient;
    let mut reader = LineReader::new(input, precision);
    let mut report = LoadReport::default();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let (parsed, written) = std::thread::scope(|scope| {
        let (chunks, to_write) = std::sync::mpsc::sync_channel::<Chunk>(1);
        // Written chunks go back to be freed by the thread that allocated
        // them: freeing on another thread costs the allocator more.
        let (done, to_free) = std::sync::mpsc::channel::<Chunk>();
        let writer = scope.spawn(move || -> Result<(WriteReport, Vec<Rejected>)> {
            let (mut total, mut rejected) = (WriteReport::default(), Vec::new());
            for chunk in to_write {
                let w = if lenient {
                    let (w, refused) = engine.write_lenient(&chunk.points)?;
                    rejected.extend(refused.into_iter().map(|r| Rejected {
                        line: chunk.lines.get(r.index).copied().unwrap_or_default(),
                        reason: r.error.to_string(),
                    }));
                    w
                } else {
                    engine.write(&chunk.points)?
                };
                total.accepted += w.accepted;
                total.dropped += w.dropped;
                total.duplicates += w.duplicates;
                total.new_series += w.new_series;
                let _ = done.send(chunk);
            }
            Ok((total, rejected))
        });
        let parsed = (|| -> Result<()> {
            let mut ended = false;
            while !ended {
                let mut next = Chunk::default();
                let mut read = 0;
                while read < chunk.max(1) {
                    match reader.next_line() {
                        Ok(Some(line)) => {
                            read += 1;
                            report.lines += 1;
                            let number = reader.line_no();
                            match points_of(&line, now) {
                                Ok(points) => {
                                    next.lines.extend(std::iter::repeat_n(number, points.len()));
                                    next.points.extend(points);
                                }
                                Err(e) if lenient => {
                                    report.rejected.push(Rejected { line: number, reason: e.to_string() })
                                }
                                Err(e) => return Err(e),
                            }
                        }
                        Ok(None) => {
                            ended = true;
                            break;
                        }
                        Err(crate::line_protocol::StreamError::Parse(e)) if lenient => {
                            read += 1;
                            report.lines += 1;
                            report
                                .rejected
                                .push(Rejected { line: e.line, reason: format!("column {}: {}", e.column, e.kind) });
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                // A closed channel means the writer failed; its error is returned below.
                if chunks.send(next).is_err() {
                    break;
                }
                to_free.try_iter().for_each(drop);
            }
            Ok(())
        })();
        drop(chunks);
        (parsed, writer.join())
    });
    // A write error stopped the parsing; a parse error let the writer finish
    // the chunks before it.
    let (written, refused) = written.map_err(|_| Error::Failed("the writing thread panicked".into()))??;
    report.written = written;
    parsed?;
    report.rejected.extend(refused);
    // One entry per line and reason (a line's fields may fail alike).
    report.rejected.sort();
    report.rejected.dedup();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SeriesSchema;

    #[test]
    fn tsbs_lines_become_one_point_per_field() {
        let dir = std::env::temp_dir().join(format!("ts-ingest-{}", std::process::id()));
        let engine = Engine::open(&dir).expect("open");
        for f in ["usage_user", "usage_idle"] {
            engine
                .create_series(SeriesSchema::new(
                    &format!("cpu_{f}"),
                    &["hostname", "region"],
                    "percent",
                    30,
                    &["raw", "1min"],
                ))
                .expect("create");
        }
        let input = "# comment\ncpu,hostname=host_0,region=eu-west-1 usage_user=58i,usage_idle=24i 1451606400000000000\n\
                     cpu,hostname=host_1,region=eu-west-1 usage_user=1.5,usage_idle=2u 1451606410000000000\n";
        let r = load(&engine, input.as_bytes(), Precision::Ns, BatchMode::Strict, 1000).expect("load");
        assert_eq!((r.lines, r.written.accepted, r.written.new_series), (2, 4, 4));
        let bad = "cpu,hostname=h usage_user=\"text\" 1451606420000000000\n";
        assert!(load(&engine, bad.as_bytes(), Precision::Ns, BatchMode::Strict, 1000).is_err());
        let broken = "cpu,hostname=host_2 usage_user=1 1451606420000000000\ncpu usage_user=\n";
        assert!(load(&engine, broken.as_bytes(), Precision::Ns, BatchMode::Strict, 1000).is_err());
        let r = load(&engine, broken.as_bytes(), Precision::Ns, BatchMode::Lenient, 1000).expect("lenient");
        assert_eq!((r.written.accepted, r.rejected.len()), (1, 1));
        assert_eq!(r.rejected[0].line, 2, "{:?}", r.rejected);
        drop(engine);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Every kind of bad line, each between good ones and in chunks of
    /// two lines (so a late point meets the newest of an earlier chunk):
    /// a lenient load writes every good line and lists each bad one with
    /// its line number; a strict load of the same input stops at line 2.
    #[test]
    fn a_lenient_load_writes_every_good_line_and_lists_each_bad_one() {
        let dir = std::env::temp_dir().join(format!("ts-ingest-lenient-{}", std::process::id()));
        let engine = Engine::open(&dir).expect("open");
        engine
            .create_series(SeriesSchema::new("cpu_usage_user", &["hostname"], "percent", 30, &["raw"]))
            .expect("create");
        let t = |s: i64| 1_451_606_400_000_000_000i64 + s * 1_000_000_000;
        let input = [
            format!("cpu,hostname=a usage_user=1 {}", t(1_000)),
            format!("cpu,hostname=a,rack=r1 usage_user=2 {}", t(1_001)),
            format!("cpu,hostname=a usage_user=3 {}", t(1_002)),
            format!("cpu,hostname=a usage_user=\"busy\" {}", t(1_003)),
            "cpu usage_user=".to_owned(),
            format!("cpu,hostname=a usage_user=4 {}", t(1_004)),
            format!("cpu,hostname=a usage_user=5 {}", t(-40 * 86_400)),
            format!("cpu,hostname=b usage_user=6 {}", t(1_005)),
            format!("mem,hostname=a used=7 {}", t(1_006)),
            format!("cpu,hostname=b usage_user=8 {}", t(1_007)),
        ]
        .join("\n");
        let r = load(&engine, input.as_bytes(), Precision::Ns, BatchMode::Lenient, 2).expect("lenient");
        let lines: Vec<usize> = r.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4, 5, 7, 9], "{:?}", r.rejected);
        for (rejected, says) in
            r.rejected.iter().zip(["tag key `rack`", "string", "column", "older than", "unknown series"])
        {
            assert!(rejected.reason.contains(says), "line {}: {}", rejected.line, rejected.reason);
        }
        assert_eq!((r.lines, r.written.accepted), (10, 5));
        assert_eq!(engine.stats().points, 5, "every good line is written");
        let again = load(&engine, input.as_bytes(), Precision::Ns, BatchMode::Strict, 2).expect_err("strict");
        assert!(matches!(again, Error::UnknownTagKey { .. }), "{again}");
        drop(engine);
        std::fs::remove_dir_all(&dir).ok();
    }

    fn line(host: usize, t: usize) -> String {
        format!(
            "cpu,hostname=host_{host} usage_user={t} {}\n",
            1_451_606_400_000_000_000i64 + t as i64 * 10_000_000_000
        )
    }

    #[test]
    fn a_strict_load_keeps_the_chunks_before_a_bad_line_and_stops_on_write_errors() {
        let dir = std::env::temp_dir().join(format!("ts-ingest-chunks-{}", std::process::id()));
        let engine = Engine::open(&dir).expect("open");
        engine
            .create_series(SeriesSchema::new("cpu_usage_user", &["hostname"], "percent", 30, &["raw"]))
            .expect("create");
        // Chunks of 10 lines; the bad line is in the fourth chunk.
        let mut input: String = (0..35).map(|t| line(t % 3, t)).collect();
        input.push_str("cpu,hostname=host_0 usage_user=\n");
        input.extend((35..60).map(|t| line(0, t)));
        let err = load(&engine, input.as_bytes(), Precision::Ns, BatchMode::Strict, 10).expect_err("bad line");
        assert!(err.to_string().contains("line 36"), "{err}");
        assert_eq!(engine.stats().points, 30, "the three chunks before the bad one are written");
        // A write error (a series without a schema) stops the load and is the error returned.
        let unknown: String =
            (0..50).map(|t| format!("mem,hostname=h used={t} {}\n", 1_451_606_400_000_000_000i64 + t)).collect();
        let err = load(&engine, unknown.as_bytes(), Precision::Ns, BatchMode::Strict, 10).expect_err("unknown series");
        assert!(matches!(err, Error::UnknownSeries(ref s) if s == "mem_used"), "{err}");
        drop(engine);
        std::fs::remove_dir_all(&dir).ok();
    }
}
