//! The report as one document: what the terminal text, `--json` and `--html` all show.

use std::collections::BTreeMap;

use serde::Serialize;

use super::diagnose::{diagnose, Diagnosis};
use super::read::{InputSummary, MAX_LINE};
use super::stats::{
    top, Answers, GroupStats, Groups, Missing, Reasons, Stats, MAX_GROUPS, MAX_PATH_PREFIXES, MAX_SERIES_BUCKETS, OTHER,
};
use crate::dates::utc;

/// A grouping of the tables (`--by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// The `Signature-Agent` (`agent`).
    Agent,
    /// The `keyid`.
    Keyid,
    /// The rejection reason (`(verified)` / `(unsigned)` for the others).
    Reason,
    /// The Fastly POP (`pop`).
    Pop,
}

impl By {
    pub fn name(self) -> &'static str {
        match self {
            By::Agent => "agent",
            By::Keyid => "keyid",
            By::Reason => "reason",
            By::Pop => "pop",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub inputs: Vec<InputSummary>,
    pub lines: Lines,
    pub window: WindowSummary,
    pub missing: Missing,
    /// What could not be computed, and why (e.g. old lines without `time`).
    pub not_computed: Vec<String>,
    pub totals: Totals,
    pub modes: BTreeMap<&'static str, u64>,
    pub verify_us: Latency,
    pub groups: Vec<GroupTable>,
    pub reasons: Vec<ReasonRow>,
    pub unknown_reasons: BTreeMap<String, u64>,
    pub top_reasons_per_agent: Vec<AgentReasons>,
    pub readiness: Readiness,
    pub enforced: Option<Enforced>,
    pub diagnoses: Vec<Diagnosis>,
    pub series: SeriesSummary,
    pub verify_us_histogram: Vec<HistBucket>,
    pub limits: Limits,
}

#[derive(Clone, Debug, Serialize)]
pub struct Lines {
    pub total: u64,
    pub events: u64,
    pub blank: u64,
    pub bad: u64,
    pub bad_by_kind: BTreeMap<&'static str, u64>,
    pub bad_examples: Vec<super::stats::BadExample>,
    /// Other botauth JSON events (e.g. `directory_fetch`), by kind: not requests.
    pub other_events: BTreeMap<String, u64>,
    pub outside_window: u64,
    pub untimed_left_out: u64,
    pub input_errors: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WindowSummary {
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub first: Option<u64>,
    pub last: Option<u64>,
    pub first_utc: Option<String>,
    pub last_utc: Option<String>,
    pub events_with_time: u64,
    pub time_from_line_prefix: u64,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Totals {
    pub events: u64,
    pub verified: u64,
    pub rejected: u64,
    pub unsigned: u64,
    /// verified / (verified + rejected).
    pub verified_ratio: Option<f64>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupTable {
    pub by: &'static str,
    /// Events of groups past the cap, in the `(other)` row.
    pub folded: u64,
    pub rows: Vec<Row>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub key: String,
    pub events: u64,
    pub verified: u64,
    pub rejected: u64,
    pub unsigned: u64,
    pub verified_ratio: Option<f64>,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReasonRow {
    pub code: String,
    pub status: Option<u16>,
    pub count: u64,
    /// Share of all rejections.
    pub share: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReasonCount {
    pub code: &'static str,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct AgentReasons {
    pub agent: String,
    pub rejected: u64,
    pub reasons: Vec<ReasonCount>,
}

/// Monitor → enforce: what enforce mode would have answered the signed requests that were
/// logged in monitor mode (or with no mode).
#[derive(Clone, Debug, Serialize)]
pub struct Readiness {
    pub signed: u64,
    pub would_block: u64,
    pub share: Option<f64>,
    pub by_status: BTreeMap<u16, u64>,
    pub by_reason: Vec<ReasonCount>,
    /// Verified but over the rate limit (429 in enforce mode).
    pub rate_limited: u64,
    /// Rejections whose status cannot be told (unknown reason code and no `status`).
    pub unknown_status: u64,
    /// Of these events, how many had no `mode` (counted as monitor).
    pub mode_not_logged: u64,
    pub agents: Vec<ReadinessRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReadinessRow {
    pub agent: String,
    pub signed: u64,
    pub would_block: u64,
    pub share: Option<f64>,
    pub by_status: BTreeMap<u16, u64>,
    pub why: Vec<ReasonCount>,
}

/// What enforce mode did answer (events logged in enforce mode).
#[derive(Clone, Debug, Serialize)]
pub struct Enforced {
    pub signed: u64,
    pub blocked: u64,
    pub share: Option<f64>,
    pub by_status: BTreeMap<u16, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeriesSummary {
    pub bucket_secs: u64,
    pub buckets: Vec<SeriesBucket>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SeriesBucket {
    pub start: u64,
    pub verified: u64,
    pub unsigned: u64,
    pub rejected: BTreeMap<&'static str, u64>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct HistBucket {
    pub lo: u64,
    pub hi: u64,
    pub count: u64,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Limits {
    pub max_groups: usize,
    pub max_path_prefixes: usize,
    pub max_series_buckets: usize,
    pub max_line_bytes: usize,
}

/// `a / b` to four decimals, `None` when `b` is 0.
pub fn ratio(a: u64, b: u64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    (b > 0).then(|| (a as f64 / b as f64 * 10_000.0).round() / 10_000.0)
}

fn latency(g: &GroupStats) -> Latency {
    Latency {
        samples: g.latency.count(),
        p50: g.latency.quantile(0.5),
        p90: g.latency.quantile(0.9),
        p99: g.latency.quantile(0.99),
        max: g.latency.max(),
    }
}

fn reason_counts(v: &[u64]) -> Vec<ReasonCount> {
    top(v).into_iter().map(|(i, count)| ReasonCount { code: Reasons::code(i), count }).collect()
}

/// Rows of a grouping, most events first, `(other)` last.
fn rows(groups: &Groups<GroupStats>) -> Vec<Row> {
    let mut rows: Vec<Row> = groups
        .iter()
        .map(|(key, g)| Row {
            key: key.to_owned(),
            events: g.counts.total(),
            verified: g.counts.verified,
            rejected: g.counts.rejected,
            unsigned: g.counts.unsigned,
            verified_ratio: ratio(g.counts.verified, g.counts.signed()),
            p50_us: g.latency.quantile(0.5),
            p99_us: g.latency.quantile(0.99),
        })
        .collect();
    rows.sort_by(|a, b| (a.key == OTHER).cmp(&(b.key == OTHER)).then(b.events.cmp(&a.events)).then(a.key.cmp(&b.key)));
    rows
}

fn statuses(a: &Answers) -> BTreeMap<u16, u64> {
    a.by_status.map.clone()
}

impl Report {
    pub fn build(stats: &Stats, inputs: Vec<InputSummary>, by: &[By]) -> Report {
        let all = &stats.all;
        let events = all.counts.total();
        let mut groups = Vec::new();
        for b in by {
            let g = match b {
                By::Agent => &stats.agents,
                By::Keyid => &stats.keyids,
                By::Reason => &stats.by_reason,
                By::Pop => &stats.pops,
            };
            groups.push(GroupTable { by: b.name(), folded: g.folded, rows: rows(g) });
        }
        let reasons = top(&all.reasons)
            .into_iter()
            .map(|(i, count)| ReasonRow {
                code: Reasons::code(i).to_owned(),
                status: Reasons::status(i),
                count,
                share: ratio(count, all.counts.rejected),
            })
            .collect();
        let mut top_reasons_per_agent: Vec<AgentReasons> = stats
            .agents
            .iter()
            .filter(|(_, g)| g.counts.rejected > 0)
            .map(|(agent, g)| AgentReasons {
                agent: agent.to_owned(),
                rejected: g.counts.rejected,
                reasons: reason_counts(&g.reasons).into_iter().take(3).collect(),
            })
            .collect();
        top_reasons_per_agent.sort_by(|a, b| {
            (a.agent == OTHER).cmp(&(b.agent == OTHER)).then(b.rejected.cmp(&a.rejected)).then(a.agent.cmp(&b.agent))
        });
        let mut ready_rows: Vec<ReadinessRow> = stats
            .agents
            .iter()
            .filter(|(_, g)| g.would.signed > 0)
            .map(|(agent, g)| ReadinessRow {
                agent: agent.to_owned(),
                signed: g.would.signed,
                would_block: g.would.blocked,
                share: ratio(g.would.blocked, g.would.signed),
                by_status: statuses(&g.would),
                why: {
                    let mut why = reason_counts(&g.would.by_reason);
                    if g.would.rate_limited > 0 {
                        why.push(ReasonCount { code: "rate_limited", count: g.would.rate_limited });
                        why.sort_by_key(|w| std::cmp::Reverse(w.count));
                    }
                    why.into_iter().take(3).collect()
                },
            })
            .collect();
        ready_rows.sort_by(|a, b| {
            (a.agent == OTHER)
                .cmp(&(b.agent == OTHER))
                .then(b.would_block.cmp(&a.would_block))
                .then(b.signed.cmp(&a.signed))
                .then(a.agent.cmp(&b.agent))
        });
        let readiness = Readiness {
            signed: all.would.signed,
            would_block: all.would.blocked,
            share: ratio(all.would.blocked, all.would.signed),
            by_status: statuses(&all.would),
            by_reason: reason_counts(&all.would.by_reason),
            rate_limited: all.would.rate_limited,
            unknown_status: all.would.unknown_status,
            mode_not_logged: stats.signed_no_mode,
            agents: ready_rows,
        };
        let enforced = (all.enforced.signed > 0).then(|| Enforced {
            signed: all.enforced.signed,
            blocked: all.enforced.blocked,
            share: ratio(all.enforced.blocked, all.enforced.signed),
            by_status: statuses(&all.enforced),
        });
        let series = SeriesSummary {
            bucket_secs: stats.series.width,
            buckets: stats
                .series
                .buckets
                .iter()
                .map(|(start, b)| SeriesBucket {
                    start: *start,
                    verified: b.verified,
                    unsigned: b.unsigned,
                    rejected: b.rejected.iter().map(|(r, c)| (Reasons::code(*r), *c)).collect(),
                })
                .collect(),
        };
        let with_time = events.saturating_sub(stats.missing.time);
        let parsed = inputs.iter().map(|i| i.events).sum();
        let report = Report {
            inputs,
            lines: Lines {
                total: stats.lines,
                events: parsed,
                blank: stats.blank,
                bad: stats.bad_total(),
                bad_by_kind: stats.bad.iter().map(|(k, v)| (k.code(), *v)).collect(),
                bad_examples: stats.bad_examples.clone(),
                other_events: stats.other_events.map.clone(),
                outside_window: stats.outside_window,
                untimed_left_out: stats.untimed_left_out,
                input_errors: stats.input_errors.clone(),
            },
            window: WindowSummary {
                since: stats.window.since,
                until: stats.window.until,
                first: all.first,
                last: all.last,
                first_utc: all.first.map(utc),
                last_utc: all.last.map(utc),
                events_with_time: with_time,
                time_from_line_prefix: stats.time_from_prefix,
            },
            missing: stats.missing,
            not_computed: Vec::new(),
            totals: Totals {
                events,
                verified: all.counts.verified,
                rejected: all.counts.rejected,
                unsigned: all.counts.unsigned,
                verified_ratio: ratio(all.counts.verified, all.counts.signed()),
            },
            modes: stats.modes.clone(),
            verify_us: latency(all),
            groups,
            reasons,
            unknown_reasons: stats.unknown_reasons.map.clone(),
            top_reasons_per_agent,
            readiness,
            enforced,
            diagnoses: diagnose(stats),
            series,
            verify_us_histogram: all.latency.buckets().map(|(lo, hi, count)| HistBucket { lo, hi, count }).collect(),
            limits: Limits {
                max_groups: MAX_GROUPS,
                max_path_prefixes: MAX_PATH_PREFIXES,
                max_series_buckets: MAX_SERIES_BUCKETS,
                max_line_bytes: MAX_LINE,
            },
        };
        let not_computed = not_computed(stats, &report);
        Report { not_computed, ..report }
    }
}

/// Sentences on what the input did not allow (fields absent from older lines, caps hit).
fn not_computed(stats: &Stats, r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let events = r.totals.events;
    let m = &stats.missing;
    if events == 0 {
        out.push("no events: nothing to report".to_owned());
        return out;
    }
    if m.time > 0 {
        out.push(format!(
            "time: {} of {events} events have no time (older log lines): they are counted, but not in the time series{}",
            m.time,
            if stats.window.is_set() { "" } else { " nor in any --since/--until window" }
        ));
    }
    if stats.untimed_left_out > 0 {
        out.push(format!(
            "time: {} events without a time were left out: --since/--until cannot place them",
            stats.untimed_left_out
        ));
    }
    if m.mode > 0 {
        out.push(format!(
            "mode: {} of {events} events do not say their mode: the readiness table counts them as monitor mode",
            m.mode
        ));
    }
    if m.status > 0 {
        let unknown = r.readiness.unknown_status + stats.all.enforced.unknown_status;
        out.push(format!(
            "status: {} of {events} events do not log the enforce status: it was derived from the reason code (core's Reason::status){}",
            m.status,
            if unknown > 0 { format!("; {unknown} rejections with a code core does not know have no status") } else { String::new() }
        ));
    }
    if m.path > 0 {
        let signed_no_path = stats.all.counts.signed().saturating_sub(stats.paths.iter().map(|(_, p)| p.signed).sum());
        if signed_no_path > 0 {
            out.push(format!(
                "path: {signed_no_path} signed events have no path: the path-prefix rule (signature_invalid on one prefix) ignores them"
            ));
        }
    }
    if m.verify_us > 0 {
        out.push(format!("verify_us: {} events have no verify time: not in the percentiles", m.verify_us));
    }
    if stats.series.width > 60 {
        out.push(format!(
            "series: more than {MAX_SERIES_BUCKETS} minutes of events: the series is in buckets of {} s, not per minute",
            stats.series.width
        ));
    }
    for (name, g) in [("agents", &stats.agents), ("keyids", &stats.keyids), ("pops", &stats.pops)] {
        if g.folded > 0 {
            out.push(format!(
                "{name}: more than {MAX_GROUPS} distinct: {} events of the rest are in {OTHER}",
                g.folded
            ));
        }
    }
    if stats.paths.folded > 0 {
        out.push(format!(
            "paths: more than {MAX_PATH_PREFIXES} distinct prefixes: {} events of the rest are in {OTHER}",
            stats.paths.folded
        ));
    }
    out
}
