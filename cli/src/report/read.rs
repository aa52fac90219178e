//! Reading the inputs: files or stdin, gzip or plain (told by the magic bytes), line by
//! line with a cap on the line length, a progress bar on stderr when it is a terminal.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal as _, Read};

use anyhow::{Context as _, Result};
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::event::{parse_line, Bad, Line};
use super::stats::Stats;

/// Longest line read, bytes: the rest of a longer line is skipped (counted `too_long`).
pub const MAX_LINE: usize = 64 * 1024;

/// Lines read from one input.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InputSummary {
    pub name: String,
    pub gzip: bool,
    pub lines: u64,
    pub events: u64,
    pub bad: u64,
    /// A read error that ended this input early (e.g. a truncated gzip stream).
    pub error: Option<String>,
}

enum Source {
    Stdin,
    File(File, u64),
}

/// Counts raw (possibly compressed) bytes into the progress bar.
struct Counting<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Read every input into `stats`. Files that cannot be opened are an error before
/// anything is read; a read error later ends that input only (reported, not fatal).
pub fn read_all(inputs: &[String], stats: &mut Stats) -> Result<Vec<InputSummary>> {
    let names: Vec<String> = if inputs.is_empty() { vec!["-".to_owned()] } else { inputs.to_vec() };
    let mut sources = Vec::new();
    for name in &names {
        if name == "-" {
            sources.push((name.clone(), Source::Stdin));
        } else {
            let file = File::open(name).with_context(|| format!("cannot open {name}"))?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            sources.push((name.clone(), Source::File(file, len)));
        }
    }
    let bar = progress_bar(&sources);
    let mut out = Vec::new();
    for (name, source) in sources {
        let shown = if name == "-" { "<stdin>".to_owned() } else { name };
        bar.set_message(shown.clone());
        let raw: Box<dyn Read> = match source {
            Source::Stdin => Box::new(io::stdin().lock()),
            Source::File(f, _) => Box::new(f),
        };
        out.push(read_one(&shown, Counting { inner: raw, bar: bar.clone() }, stats));
    }
    bar.finish_and_clear();
    Ok(out)
}

fn progress_bar(sources: &[(String, Source)]) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total: Option<u64> = sources
        .iter()
        .map(|(_, s)| match s {
            Source::Stdin => None,
            Source::File(_, len) => Some(*len),
        })
        .sum();
    let bar = match total {
        Some(total) => {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        }
        None => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {binary_bytes} read, {binary_bytes_per_sec} {msg}")
            {
                bar.set_style(style);
            }
            bar
        }
    };
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn read_one<R: Read>(name: &str, raw: R, stats: &mut Stats) -> InputSummary {
    let mut plain = BufReader::with_capacity(64 * 1024, raw);
    let gzip = matches!(plain.fill_buf(), Ok([0x1f, 0x8b, ..]));
    let mut summary = InputSummary { name: name.to_owned(), gzip, lines: 0, events: 0, bad: 0, error: None };
    let result = if gzip {
        let mut r = BufReader::with_capacity(64 * 1024, MultiGzDecoder::new(plain));
        lines(&mut r, name, stats, &mut summary)
    } else {
        lines(&mut plain, name, stats, &mut summary)
    };
    if let Err(e) = result {
        let message = format!("{name}: read error after line {}: {e}", summary.lines);
        stats.input_errors.push(message.clone());
        summary.error = Some(message);
    }
    summary
}

fn lines(r: &mut dyn BufRead, name: &str, stats: &mut Stats, summary: &mut InputSummary) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    while let Some(too_long) = read_line_capped(r, &mut buf)? {
        summary.lines += 1;
        stats.lines += 1;
        let n = summary.lines;
        if too_long {
            summary.bad += 1;
            stats.bad_line(Bad::TooLong, name, n, &String::from_utf8_lossy(&buf));
            continue;
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            summary.bad += 1;
            stats.bad_line(Bad::NotUtf8, name, n, &String::from_utf8_lossy(&buf));
            continue;
        };
        match parse_line(text) {
            Line::Blank => stats.blank += 1,
            Line::Event(e) => {
                summary.events += 1;
                stats.add(&e);
            }
            Line::Other(kind) => stats.other_events.add(kind),
            Line::Bad(kind) => {
                summary.bad += 1;
                stats.bad_line(kind, name, n, text);
            }
        }
    }
    Ok(())
}

/// The next line (without `\n` / `\r\n`) into `buf`, at most [`MAX_LINE`] bytes of it:
/// `Some(true)` when it was longer (the rest is skipped), `None` at the end.
fn read_line_capped(r: &mut dyn BufRead, buf: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buf.clear();
    let mut any = false;
    let mut too_long = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            break;
        }
        any = true;
        let newline = avail.iter().position(|b| *b == b'\n');
        let take = newline.unwrap_or(avail.len());
        let room = MAX_LINE.saturating_sub(buf.len());
        if take > room {
            too_long = true;
        }
        buf.extend_from_slice(avail.get(..take.min(room)).unwrap_or_default());
        let used = newline.map_or(take, |i| i + 1);
        r.consume(used);
        if newline.is_some() {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(too_long))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_lines() {
        let long = "x".repeat(MAX_LINE + 10);
        let data = format!("a\r\nb\n{long}\nc");
        let mut r = BufReader::with_capacity(16, data.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_line_capped(&mut r, &mut buf).unwrap(), Some(false));
        assert_eq!(buf, b"a");
        assert_eq!(read_line_capped(&mut r, &mut buf).unwrap(), Some(false));
        assert_eq!(buf, b"b");
        assert_eq!(read_line_capped(&mut r, &mut buf).unwrap(), Some(true));
        assert_eq!(buf.len(), MAX_LINE);
        assert_eq!(read_line_capped(&mut r, &mut buf).unwrap(), Some(false));
        assert_eq!(buf, b"c");
        assert_eq!(read_line_capped(&mut r, &mut buf).unwrap(), None);
    }
}
