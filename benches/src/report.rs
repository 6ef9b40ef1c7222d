//! Tables: printed as markdown to stdout and, with `--out`, written into a
//! marked section of a markdown file (refreshed in place on later runs).

use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// Start marker of the generated section.
pub const BEGIN: &str = "<!-- moss-bench:begin -->";
/// End marker of the generated section.
pub const END: &str = "<!-- moss-bench:end -->";

/// One table of the report.
pub struct Table {
    /// Heading above the table.
    pub title: String,
    /// Column names.
    pub headers: Vec<&'static str>,
    /// Cells, row by row.
    pub rows: Vec<Vec<String>>,
    /// Lines printed under the table.
    pub notes: Vec<String>,
}

impl Table {
    /// An empty table.
    pub fn new(title: impl Into<String>, headers: Vec<&'static str>) -> Self {
        Self {
            title: title.into(),
            headers,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "### {}\n", self.title);
        let _ = writeln!(out, "| {} |", self.headers.join(" | "));
        let _ = writeln!(
            out,
            "|{}|",
            self.headers
                .iter()
                .map(|_| " --- ")
                .collect::<Vec<_>>()
                .join("|")
        );
        for r in &self.rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        for n in &self.notes {
            let _ = writeln!(out, "\n{n}");
        }
        out.push('\n');
    }
}

/// Renders the whole section (markers included).
pub fn render(header: &str, tables: &[Table]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(s, "## Measured by `moss-bench`\n");
    let _ = writeln!(s, "{header}\n");
    for t in tables {
        t.render(&mut s);
    }
    let _ = writeln!(s, "{END}");
    s
}

/// Writes `section` into `path`: replaces an existing marked section,
/// appends one to a file without it, or creates the file.
pub fn write_section(path: &Path, section: &str) -> io::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if a < b => {
            let mut s = String::with_capacity(old.len() + section.len());
            s.push_str(&old[..a]);
            s.push_str(section.trim_end());
            s.push_str(&old[b + END.len()..]);
            s
        }
        _ if old.is_empty() => section.to_string(),
        _ => format!("{}\n\n{}", old.trim_end(), section),
    };
    std::fs::write(path, new)
}

/// Formats a rate (per second) with a k/M suffix.
pub fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M/s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k/s", v / 1e3)
    } else {
        format!("{v:.0} /s")
    }
}

/// Payload bandwidth for `rate` datagrams of `size` bytes.
pub fn gbits(rate: f64, size: usize) -> String {
    format!("{:.2} Gbit/s", rate * size as f64 * 8.0 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_is_replaced_in_place() {
        let dir = std::env::temp_dir().join(format!("moss-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let p = dir.join("B.md");
        std::fs::write(&p, "# Benchmarks\n\nintro\n").expect("write");
        write_section(&p, &render("one", &[])).expect("append");
        let s1 = std::fs::read_to_string(&p).expect("read");
        assert!(s1.starts_with("# Benchmarks\n\nintro\n") && s1.contains("one"));
        std::fs::write(&p, format!("{s1}\n## After\n")).expect("write");
        write_section(&p, &render("two", &[])).expect("replace");
        let s2 = std::fs::read_to_string(&p).expect("read");
        assert!(s2.contains("two") && !s2.contains("one") && s2.contains("## After"));
        assert_eq!(s2.matches(BEGIN).count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
