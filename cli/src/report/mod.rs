//! `botauth report`: an operator's report from the verifiers' logs — the Fastly service's
//! NDJSON and the proxy-wasm filter's Envoy/Kong log lines, plain or gzip, files or stdin.
//!
//! Streaming, in bounded memory (see [`stats`]): totals per verdict; per agent / keyid /
//! reason / POP counts, verified ratio and verify-time percentiles; rejections by reason;
//! what enforce mode would block in monitor-mode logs; diagnoses; `--json` and `--html`.

mod diagnose;
mod event;
mod html;
mod model;
mod read;
mod stats;
mod text;

use anyhow::{anyhow, Context as _, Result};

use crate::input::{emit, emit_line};
use crate::Outcome;
use model::{By, Report};
use stats::{Stats, Window};

/// `botauth report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Log files (NDJSON or Envoy/Kong lines, gzip or plain); `-` or none = stdin.
    #[arg(value_name = "FILE")]
    inputs: Vec<String>,
    /// Print the report as one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML page with charts to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<String>,
    /// Only events at or after this time (unix seconds or RFC 3339, e.g. 2026-12-02T18:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<u64>,
    /// Only events before this time (unix seconds or RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<u64>,
    /// The group tables to show (repeatable or comma-separated) [default: agent,keyid].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "agent|keyid|reason|pop")]
    by: Vec<By>,
}

/// Unix seconds, or an RFC 3339 date-time.
fn parse_time(s: &str) -> Result<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| anyhow!("not unix seconds nor RFC 3339 ({e}): {s}"))?;
    u64::try_from(t.unix_timestamp()).map_err(|_| anyhow!("before 1970: {s}"))
}

pub fn run(args: &Args) -> Result<Outcome> {
    let window = Window { since: args.since, until: args.until };
    if let (Some(s), Some(u)) = (window.since, window.until) {
        if s >= u {
            return Err(anyhow!("--since must be before --until"));
        }
    }
    let mut by: Vec<By> = Vec::new();
    for b in &args.by {
        if !by.contains(b) {
            by.push(*b);
        }
    }
    if by.is_empty() {
        by = vec![By::Agent, By::Keyid];
    }
    let mut stats = Stats::new(window);
    let inputs = read::read_all(&args.inputs, &mut stats)?;
    let report = Report::build(&stats, inputs, &by);
    if let Some(path) = &args.html {
        let page = html::page(&report, &stats);
        std::fs::write(path, page).with_context(|| format!("cannot write {path}"))?;
    }
    if args.json {
        let mut doc = serde_json::to_string_pretty(&report).context("cannot serialise the report")?;
        doc.push('\n');
        emit(doc.as_bytes())?;
    } else {
        let text = text::render(&report);
        emit(text.as_bytes())?;
        if let Some(path) = &args.html {
            emit_line(&format!("html:     {path}"))?;
        }
    }
    Ok(Outcome::Ok)
}
