//! Output for people (aligned tables) and machines (JSON).

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    /// Comma-separated values (query results).
    Csv,
}

/// Renders rows under headers with columns padded to their widest cell
/// (counting characters, so 张三 lines up as well as ASCII does).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(width(cell));
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(width(c))))).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    out.push(line(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().iter().map(String::as_str).collect()));
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align_for_wide_and_narrow_text() {
        let t = super::table(&["name", "n"], &[vec!["张三".into(), "1".into()], vec!["bob".into(), "22".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "name  n");
        assert_eq!(lines[2], "张三    1");
        assert_eq!(lines[3], "bob   22");
    }
}
