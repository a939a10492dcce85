//! A strict reader of the Prometheus text exposition format (0.0.4): what
//! `/metrics` must parse as. The demo reads its services' lag and counters
//! with it; the service tests check every scrape with it.

use std::collections::BTreeMap;

/// The samples of a Prometheus text exposition, `name{labels}` -> value.
/// Fails on any line the format does not allow, and on a sample whose
/// family has no `# TYPE` before it.
pub fn parse(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let is_name = |s: &str| {
        let mut cs = s.chars();
        cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for (n, line) in text.lines().enumerate() {
        let at = |why: &str| format!("line {}: {why}: {line}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) if is_name(name) => {}
                (Some("TYPE"), Some(name), Some(kind)) if is_name(name) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at("unknown type"));
                    }
                    types.insert(name.to_owned(), kind.to_owned());
                }
                _ => return Err(at("bad comment")),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| at("value is not a number"))?,
        };
        let name = series.split('{').next().unwrap_or_default();
        if !is_name(name) {
            return Err(at("bad metric name"));
        }
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).ok_or_else(|| at("bad labels"))?;
            check_labels(inner).map_err(|why| at(&why))?;
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| types.get(*f).is_some_and(|t| t == "histogram")))
            .unwrap_or(name);
        if !types.contains_key(family) {
            return Err(at("sample before its # TYPE"));
        }
        samples.insert(series.to_owned(), value);
    }
    Ok(samples)
}

/// `k="v",k2="v\"2"`.
fn check_labels(mut s: &str) -> Result<(), String> {
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"").ok_or("a label without =\"")?;
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name `{key}`"));
        }
        let mut escaped = false;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                let close = *c == '"' && !escaped;
                escaped = *c == '\\' && !escaped;
                close
            })
            .map(|(i, _)| i)
            .ok_or("an unterminated label value")?;
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
    Ok(())
}

/// The sum of the samples of `name` whose labels contain every `k="v"` in `with`.
pub fn sum(samples: &BTreeMap<String, f64>, name: &str, with: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name) && with.iter().all(|w| k.contains(w)))
        .map(|(_, v)| v)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prometheus_reader_refuses_what_the_format_does_not_allow() {
        let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"z\"} 3\n\
                    # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
        let s = parse(good).expect("parses");
        assert_eq!(sum(&s, "a_total", &["x=\"1\""]), 3.0);
        assert_eq!(sum(&s, "h_count", &[]), 2.0);
        for bad in ["a_total 1\n", "# TYPE a counter\na{x=1} 1\n", "# TYPE a counter\na one\n", "# TYPE a meter\n"] {
            assert!(parse(bad).is_err(), "{bad:?} is refused");
        }
    }
}
