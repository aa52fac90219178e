//! The terminal rendering of a [`Report`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::model::{ReasonCount, Report, Row};
use crate::dates::utc;

/// Rows shown per table (the JSON has them all).
pub const MAX_ROWS: usize = 20;
/// Widest key column.
const KEY_WIDTH: usize = 44;

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn us(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// `s` padded or cut (with `…`) to `w` characters.
fn fit(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        format!("{s}{}", " ".repeat(w - n))
    } else {
        let mut out: String = s.chars().take(w.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn statuses(m: &BTreeMap<u16, u64>) -> String {
    if m.is_empty() {
        return "-".to_owned();
    }
    m.iter().map(|(s, c)| format!("{s}×{c}")).collect::<Vec<_>>().join(" ")
}

fn reasons(v: &[ReasonCount]) -> String {
    v.iter().map(|r| format!("{} {}", r.code, r.count)).collect::<Vec<_>>().join(", ")
}

fn key_width(keys: impl Iterator<Item = usize>, min: usize) -> usize {
    keys.max().unwrap_or(0).clamp(min, KEY_WIDTH)
}

/// The whole report as text.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let l = &r.lines;
    let _ = write!(o, "botauth report: {} lines, {} events, {} bad", l.total, l.events, l.bad);
    if l.bad > 0 {
        let kinds: Vec<String> = l.bad_by_kind.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = write!(o, " ({})", kinds.join(", "));
    }
    if l.blank > 0 {
        let _ = write!(o, ", {} blank", l.blank);
    }
    o.push('\n');
    if r.inputs.len() > 1 || r.inputs.iter().any(|i| i.gzip) {
        for i in &r.inputs {
            let _ = writeln!(
                o,
                "  {}{}: {} lines, {} events, {} bad",
                i.name,
                if i.gzip { " (gzip)" } else { "" },
                i.lines,
                i.events,
                i.bad
            );
        }
    }
    for e in &l.input_errors {
        let _ = writeln!(o, "  input error: {e}");
    }
    for x in &l.bad_examples {
        let _ = writeln!(o, "  bad line {}:{} ({}): {}", x.input, x.line, x.kind, x.text);
    }
    if !l.other_events.is_empty() {
        let kinds: Vec<String> = l.other_events.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(o, "other events (not requests): {}", kinds.join(", "));
    }
    let w = &r.window;
    if w.since.is_some() || w.until.is_some() {
        let _ = writeln!(
            o,
            "window:   --since {} --until {}: {} events outside, {} without a time left out",
            w.since.map_or_else(|| "-".to_owned(), utc),
            w.until.map_or_else(|| "-".to_owned(), utc),
            l.outside_window,
            l.untimed_left_out
        );
    }
    match (&w.first_utc, &w.last_utc) {
        (Some(a), Some(b)) => {
            let _ = writeln!(o, "time:     {a} .. {b} ({} events with a time)", w.events_with_time);
        }
        _ => {
            let _ = writeln!(o, "time:     not logged");
        }
    }
    let t = &r.totals;
    let share = |n: u64| super::model::ratio(n, t.events);
    let _ = writeln!(
        o,
        "verdicts: {} events: verified {} ({}), rejected {} ({}), unsigned {} ({})",
        t.events,
        t.verified,
        pct(share(t.verified)),
        t.rejected,
        pct(share(t.rejected)),
        t.unsigned,
        pct(share(t.unsigned))
    );
    let modes: Vec<String> = r.modes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(o, "mode:     {}", if modes.is_empty() { "-".to_owned() } else { modes.join(", ") });
    let v = &r.verify_us;
    let _ = writeln!(
        o,
        "verify:   p50 {} µs, p90 {} µs, p99 {} µs, max {} µs ({} samples)",
        us(v.p50),
        us(v.p90),
        us(v.p99),
        us(v.max),
        v.samples
    );

    for g in &r.groups {
        table(&mut o, g.by, &g.rows, g.folded);
    }

    if !r.reasons.is_empty() {
        let _ = writeln!(o, "\nrejections by reason");
        let kw = key_width(r.reasons.iter().map(|x| x.code.len()), 6);
        for x in &r.reasons {
            let _ = writeln!(
                o,
                "  {} {} {:>8} {:>7}",
                fit(&x.code, kw),
                x.status.map_or_else(|| "?".to_owned(), |s| s.to_string()),
                x.count,
                pct(x.share)
            );
        }
    }
    if !r.unknown_reasons.is_empty() {
        let codes: Vec<String> = r.unknown_reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(o, "  reason codes core does not know: {}", codes.join(", "));
    }

    if !r.top_reasons_per_agent.is_empty() {
        let _ = writeln!(o, "\ntop reasons per agent");
        let kw = key_width(r.top_reasons_per_agent.iter().map(|x| x.agent.chars().count()), 5);
        for x in r.top_reasons_per_agent.iter().take(MAX_ROWS) {
            line(&mut o, format!("  {} {:>8}  {}", fit(&x.agent, kw), x.rejected, reasons(&x.reasons)));
        }
        more(&mut o, r.top_reasons_per_agent.len());
    }

    let rd = &r.readiness;
    if rd.signed > 0 {
        let _ = writeln!(
            o,
            "\nenforce readiness (monitor → enforce): of {} signed requests logged in monitor mode{}, enforce would \
             block {} ({}): {}",
            rd.signed,
            if rd.mode_not_logged > 0 { format!(" or without a mode ({})", rd.mode_not_logged) } else { String::new() },
            rd.would_block,
            pct(rd.share),
            statuses(&rd.by_status)
        );
        if rd.rate_limited > 0 {
            let _ = writeln!(o, "  {} of them verified but over the rate limit (429)", rd.rate_limited);
        }
        if rd.unknown_status > 0 {
            let _ = writeln!(o, "  {} rejections have no known status (unknown reason code)", rd.unknown_status);
        }
        let kw = key_width(rd.agents.iter().map(|x| x.agent.chars().count()), 5);
        let sw = rd.agents.iter().take(MAX_ROWS).map(|x| statuses(&x.by_status).len()).max().unwrap_or(0).max(6);
        line(
            &mut o,
            format!("  {} {:>8} {:>8} {:>7}  {:<sw$}  why", fit("agent", kw), "signed", "blocked", "share", "status"),
        );
        for x in rd.agents.iter().take(MAX_ROWS) {
            line(
                &mut o,
                format!(
                    "  {} {:>8} {:>8} {:>7}  {:<sw$}  {}",
                    fit(&x.agent, kw),
                    x.signed,
                    x.would_block,
                    pct(x.share),
                    statuses(&x.by_status),
                    reasons(&x.why)
                ),
            );
        }
        more(&mut o, rd.agents.len());
    }
    if let Some(e) = &r.enforced {
        let _ = writeln!(
            o,
            "\nenforce mode answered: {} of {} signed requests blocked ({}): {}",
            e.blocked,
            e.signed,
            pct(e.share),
            statuses(&e.by_status)
        );
    }

    let _ = writeln!(o, "\ndiagnoses");
    if r.diagnoses.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for d in &r.diagnoses {
        let _ = writeln!(o, "  {} {} [{}]: {}", d.severity, d.rule, d.subject, d.finding);
        let _ = writeln!(o, "    → {}", d.action);
    }
    if !r.not_computed.is_empty() {
        let _ = writeln!(o, "\nnot computed");
        for n in &r.not_computed {
            let _ = writeln!(o, "  {n}");
        }
    }
    o
}

/// A line without trailing blanks.
fn line(o: &mut String, text: String) {
    o.push_str(text.trim_end());
    o.push('\n');
}

fn more(o: &mut String, n: usize) {
    if n > MAX_ROWS {
        let _ = writeln!(o, "  … {} more (see --json)", n - MAX_ROWS);
    }
}

fn table(o: &mut String, by: &str, rows: &[Row], folded: u64) {
    let _ = writeln!(o, "\nby {by}");
    let kw = key_width(rows.iter().map(|x| x.key.chars().count()), by.len());
    let _ = writeln!(
        o,
        "  {} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}",
        fit(by, kw),
        "events",
        "verified",
        "rejected",
        "unsigned",
        "verified%",
        "p50 µs",
        "p99 µs"
    );
    for x in rows.iter().take(MAX_ROWS) {
        let _ = writeln!(
            o,
            "  {} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}",
            fit(&x.key, kw),
            x.events,
            x.verified,
            x.rejected,
            x.unsigned,
            pct(x.verified_ratio),
            us(x.p50_us),
            us(x.p99_us)
        );
    }
    more(o, rows.len());
    if folded > 0 {
        let _ = writeln!(o, "  ({folded} events of {by}s past the first {} are in (other))", super::stats::MAX_GROUPS);
    }
}
