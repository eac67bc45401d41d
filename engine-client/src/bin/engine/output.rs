//! Tables, sizes, times and progress bars, drawn the way docker draws them.

use engine_client::models::ProgressMessage;
use engine_core::Result;
use futures::stream::BoxStream;
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;

/// A 12-character id (without `sha256:`).
pub fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Print rows under headers, columns padded like docker's tabwriter (3 spaces).
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(&c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

/// "3 minutes ago", from Unix seconds.
pub fn ago(unix: i64) -> String {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let d = (now - unix).max(0) as u64;
    let human = match d {
        0 => return "Less than a second ago".into(),
        1 => "1 second".to_string(),
        2..=59 => format!("{d} seconds"),
        60..=119 => "About a minute".to_string(),
        120..=3599 => format!("{} minutes", d / 60),
        3600..=7199 => "About an hour".to_string(),
        7200..=172_799 => format!("{} hours", d / 3600),
        172_800..=1_209_599 => format!("{} days", d / 86400),
        1_209_600..=5_183_999 => format!("{} weeks", d / 604_800),
        5_184_000..=63_071_999 => format!("{} months", d / 2_592_000),
        _ => format!("{} years", d / 31_536_000),
    };
    format!("{human} ago")
}

/// Sizes in docker's decimal units: "1.98MB".
pub fn size(n: u64) -> String {
    let f = n as f64;
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = f;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        let digits: String = s.chars().take(4).collect();
        format!("{}{}", digits.trim_end_matches('.'), units[i])
    }
}

/// Draw a progress stream: one bar per layer on a terminal, plain lines otherwise.
pub async fn print_progress(mut s: BoxStream<'static, Result<ProgressMessage>>) -> Result<()> {
    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::new();
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let style = ProgressStyle::with_template("{prefix}: {msg:<12} [{bar:40}] {bytes}/{total_bytes}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    while let Some(m) = s.next().await {
        let m = m?;
        if let Some(text) = &m.stream {
            let _ = multi.println(text.trim_end());
            if !tty {
                print!("{text}");
            }
            continue;
        }
        let status = m.status.clone().unwrap_or_default();
        match (&m.id, tty) {
            (Some(id), true) => {
                let bar = bars.entry(id.clone()).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(0));
                    b.set_style(style.clone());
                    b.set_prefix(id.clone());
                    b
                });
                bar.set_message(status);
                if let Some(d) = &m.progress_detail {
                    if let Some(t) = d.total {
                        bar.set_length(t);
                    }
                    if let Some(c) = d.current {
                        bar.set_position(c);
                    }
                }
            }
            (Some(id), false) => {
                if m.progress_detail.as_ref().is_none_or(|d| d.current.is_none()) {
                    eprintln!("{id}: {status}");
                }
            }
            (None, _) => {
                if !status.is_empty() {
                    let _ = multi.println(&status);
                    if !tty {
                        eprintln!("{status}");
                    }
                }
            }
        }
    }
    for b in bars.values() {
        b.finish();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ids_like_docker() {
        assert_eq!(size(999), "999B");
        assert_eq!(size(1_982_000), "1.98MB");
        assert_eq!(size(12_345_678), "12.3MB");
        assert_eq!(size(1_000_000_000), "1GB");
        assert_eq!(short_id("sha256:3fe1460f9307ad070aa3"), "3fe1460f9307");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert_eq!(ago(now - 4), "4 seconds ago");
        assert_eq!(ago(now - 3 * 3600), "3 hours ago");
    }
}
