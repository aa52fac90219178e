//! Streaming aggregation in bounded memory: per-group counters, a fixed log-bucket
//! histogram of `verify_us` per group, a capped number of groups per dimension (the rest
//! fold into `(other)`), and a per-minute series that doubles its bucket width instead of
//! growing past [`MAX_SERIES_BUCKETS`].

use std::collections::{BTreeMap, HashMap};

use botauth_core::Reason;

use super::event::{Bad, Event, Kind, Mode, TimeSource};

/// The RFC 9421 B.1.4 test key's thumbprint: anyone can sign with it.
pub const TEST_KEYID: &str = "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";
/// Distinct agents, keyids, POPs and reasons tracked each; more fold into [`OTHER`].
pub const MAX_GROUPS: usize = 256;
/// Distinct path prefixes tracked (first path segment).
pub const MAX_PATH_PREFIXES: usize = 1024;
/// Buckets of the time series at most: past this the bucket width doubles.
pub const MAX_SERIES_BUCKETS: usize = 1440;
/// Longest group key kept, bytes (longer ones are cut).
pub const MAX_KEY_LEN: usize = 200;
/// Keyids tracked per agent for the key-rotation rule.
pub const MAX_KEYIDS_PER_AGENT: usize = 8;
/// Bad-line examples kept.
pub const MAX_EXAMPLES: usize = 5;
/// Distinct unknown reason codes / other event kinds / statuses kept.
pub const MAX_SMALL: usize = 16;
/// The group that collects everything past a cap.
pub const OTHER: &str = "(other)";
/// The group of events without that field (e.g. the agent of unsigned traffic).
pub const NONE: &str = "(none)";

// ---- reasons ---------------------------------------------------------------------------

/// Core's reason codes by index in [`Reason::ALL`]; index `ALL.len()` is "not a code core
/// knows" (or a rejection logged without one).
pub struct Reasons {
    by_code: HashMap<&'static str, usize>,
}

impl Reasons {
    pub fn new() -> Self {
        Self { by_code: Reason::ALL.iter().enumerate().map(|(i, r)| (r.code(), i)).collect() }
    }

    /// Index of `code`, or [`Reasons::unknown`].
    pub fn index(&self, code: Option<&str>) -> usize {
        code.and_then(|c| self.by_code.get(c).copied()).unwrap_or_else(Self::unknown)
    }

    /// The index of unknown codes.
    pub fn unknown() -> usize {
        Reason::ALL.len()
    }

    /// Slots in a per-reason array.
    pub fn len() -> usize {
        Reason::ALL.len() + 1
    }

    /// The code at `index` (`(unknown)` past core's).
    pub fn code(index: usize) -> &'static str {
        Reason::ALL.get(index).map_or("(unknown)", |r| r.code())
    }

    /// What enforce mode answers for the reason at `index`.
    pub fn status(index: usize) -> Option<u16> {
        Reason::ALL.get(index).map(|r| r.status().code())
    }
}

// ---- histogram -------------------------------------------------------------------------

/// Sub-buckets per power of two: every bucket is at most 1/16 of its lower bound wide, so
/// a reported quantile (the bucket's midpoint) is within 1/32 (≈3 %) of a value in it.
const SUB: u64 = 16;

/// A fixed log-bucket histogram: values below 16 exactly, above in 16 buckets per power of
/// two. At most 976 buckets whatever the input (about 210 up to 100 s in µs).
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    min: u64,
    max: u64,
}

fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return usize::try_from(v).unwrap_or(0);
    }
    let e = u64::from(63 - v.leading_zeros());
    let m = (v >> (e - 4)) & (SUB - 1);
    usize::try_from(SUB + (e - 4) * SUB + m).unwrap_or(0)
}

/// `[lo, hi)` of bucket `i` (`hi` saturates at `u64::MAX`).
fn bounds_of(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, i + 1);
    }
    let e = (i - SUB) / SUB + 4;
    let m = (i - SUB) % SUB;
    let lo = u128::from(SUB + m) << (e - 4);
    let hi = u128::from(SUB + m + 1) << (e - 4);
    (u64::try_from(lo).unwrap_or(u64::MAX), u64::try_from(hi).unwrap_or(u64::MAX))
}

impl Histogram {
    pub fn add(&mut self, v: u64) {
        let i = bucket_of(v);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.min = if self.n == 0 { v } else { self.min.min(v) };
        self.max = self.max.max(v);
        self.n += 1;
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn max(&self) -> Option<u64> {
        (self.n > 0).then_some(self.max)
    }

    /// The `q` quantile (0 < q ≤ 1): the midpoint of the bucket holding rank ⌈q·n⌉,
    /// clamped to the observed min and max.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bounds_of(i);
                let mid = lo + (hi - lo - 1) / 2;
                return Some(mid.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Non-empty buckets: `(lo, hi, count)`, `[lo, hi)`.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| {
            let (lo, hi) = bounds_of(i);
            (lo, hi, *c)
        })
    }
}

// ---- groups --------------------------------------------------------------------------

/// At most `cap` distinct keys; events for further keys go to one [`OTHER`] entry.
#[derive(Debug)]
pub struct Groups<T> {
    index: HashMap<String, usize>,
    items: Vec<(String, T)>,
    other: T,
    /// Events that went to [`OTHER`].
    pub folded: u64,
    cap: usize,
}

/// `s` cut to at most [`MAX_KEY_LEN`] bytes on a character boundary.
pub fn cut(s: &str) -> &str {
    let mut end = s.len().min(MAX_KEY_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

impl<T: Default> Groups<T> {
    pub fn new(cap: usize) -> Self {
        Self { index: HashMap::new(), items: Vec::new(), other: T::default(), folded: 0, cap }
    }

    /// The entry for `key` (cut to [`MAX_KEY_LEN`]), or [`OTHER`]'s when the cap is reached.
    pub fn entry(&mut self, key: &str) -> &mut T {
        let key = cut(key);
        let i = match self.index.get(key) {
            Some(i) => *i,
            None if self.items.len() < self.cap => {
                self.items.push((key.to_owned(), T::default()));
                let i = self.items.len() - 1;
                self.index.insert(key.to_owned(), i);
                i
            }
            None => usize::MAX,
        };
        if i == usize::MAX {
            self.folded += 1;
        }
        match self.items.get_mut(i) {
            Some((_, v)) => v,
            None => &mut self.other,
        }
    }

    /// Every tracked group, then [`OTHER`] when anything folded into it.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        let other = (self.folded > 0).then_some((OTHER, &self.other));
        self.items.iter().map(|(k, v)| (k.as_str(), v)).chain(other)
    }
}

/// A small capped counter map (unknown codes, other event kinds, statuses).
#[derive(Clone, Debug, Default)]
pub struct Small<K: Ord> {
    pub map: BTreeMap<K, u64>,
    pub folded: u64,
}

impl<K: Ord> Small<K> {
    pub fn add(&mut self, key: K) {
        if let Some(c) = self.map.get_mut(&key) {
            *c += 1;
        } else if self.map.len() < MAX_SMALL {
            self.map.insert(key, 1);
        } else {
            self.folded += 1;
        }
    }
}

// ---- per-group statistics ---------------------------------------------------------------

/// Events per verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub verified: u64,
    pub rejected: u64,
    pub unsigned: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.verified + self.rejected + self.unsigned
    }
    pub fn signed(&self) -> u64 {
        self.verified + self.rejected
    }
    fn add(&mut self, kind: Kind) {
        match kind {
            Kind::Verified => self.verified += 1,
            Kind::Rejected => self.rejected += 1,
            Kind::Unsigned => self.unsigned += 1,
        }
    }
}

/// What enforce mode answers (or would answer) the signed requests of a group.
#[derive(Clone, Debug, Default)]
pub struct Answers {
    /// Signed requests.
    pub signed: u64,
    /// Answered with an error (not 200).
    pub blocked: u64,
    /// Blocked requests by status.
    pub by_status: Small<u16>,
    /// Rejections whose status cannot be told (no `status`, a code core does not know).
    pub unknown_status: u64,
    /// Blocked requests by reason index ([`Reasons::len`] slots; rate limits are not a reason).
    pub by_reason: Vec<u64>,
    /// Verified but over the host's rate limit (429).
    pub rate_limited: u64,
}

impl Answers {
    fn add(&mut self, e: &Event, reason: Option<usize>, status: Option<u16>) {
        if e.kind == Kind::Unsigned {
            return;
        }
        self.signed += 1;
        match status {
            None => self.unknown_status += 1,
            Some(200) => {}
            Some(s) => {
                self.blocked += 1;
                self.by_status.add(s);
                if let Some(r) = reason {
                    bump(&mut self.by_reason, r);
                } else {
                    self.rate_limited += 1;
                }
            }
        }
    }
}

/// How often a keyid was seen, first and last time.
pub type KeySeen = (u64, Option<u64>, Option<u64>);

/// Keys an agent signed with, for the key-rotation rule.
#[derive(Clone, Debug, Default)]
pub struct KeyUse {
    /// `unknown_key` rejections per keyid: (count, first time, last time).
    pub unknown: BTreeMap<String, KeySeen>,
    /// Verified requests per keyid: (count, first time, last time).
    pub verified: BTreeMap<String, KeySeen>,
}

fn note_key(map: &mut BTreeMap<String, KeySeen>, keyid: &str, time: Option<u64>) {
    let key = cut(keyid);
    if !map.contains_key(key) && map.len() >= MAX_KEYIDS_PER_AGENT {
        return;
    }
    let slot = map.entry(key.to_owned()).or_insert((0, None, None));
    slot.0 += 1;
    if let Some(t) = time {
        slot.1 = Some(slot.1.map_or(t, |f| f.min(t)));
        slot.2 = Some(slot.2.map_or(t, |l| l.max(t)));
    }
}

/// Everything kept per group (and once for all events).
#[derive(Clone, Debug, Default)]
pub struct GroupStats {
    pub counts: Counts,
    pub latency: Histogram,
    /// Rejections by reason index ([`Reasons::len`] slots).
    pub reasons: Vec<u64>,
    /// Signed requests logged in monitor mode (or without a mode): what enforce would answer.
    pub would: Answers,
    /// Signed requests logged in enforce mode: what was answered.
    pub enforced: Answers,
    /// Verified with the RFC 9421 test key.
    pub test_key_verified: u64,
    /// Keyids (agents only).
    pub keys: KeyUse,
    /// First and last event time.
    pub first: Option<u64>,
    pub last: Option<u64>,
}

fn bump(v: &mut Vec<u64>, i: usize) {
    if v.len() <= i {
        v.resize(Reasons::len().max(i + 1), 0);
    }
    if let Some(c) = v.get_mut(i) {
        *c += 1;
    }
}

/// What one event contributes, computed once.
pub struct Facts<'a> {
    pub event: &'a Event,
    pub reason: Option<usize>,
    pub status: Option<u16>,
    pub time: Option<u64>,
}

impl GroupStats {
    pub fn add(&mut self, f: &Facts<'_>, track_keys: bool) {
        let e = f.event;
        self.counts.add(e.kind);
        if let Some(us) = e.verify_us {
            self.latency.add(us);
        }
        if let Some(r) = f.reason {
            bump(&mut self.reasons, r);
        }
        if e.mode == Some(Mode::Enforce) {
            self.enforced.add(e, f.reason, f.status);
        } else {
            self.would.add(e, f.reason, f.status);
        }
        let test_key = e.keyid.as_deref() == Some(TEST_KEYID);
        if e.kind == Kind::Verified && test_key {
            self.test_key_verified += 1;
        }
        if let Some(t) = f.time {
            self.first = Some(self.first.map_or(t, |x| x.min(t)));
            self.last = Some(self.last.map_or(t, |x| x.max(t)));
        }
        if track_keys {
            if let Some(keyid) = e.keyid.as_deref() {
                match (e.kind, f.reason.map(Reasons::code)) {
                    (Kind::Verified, _) => note_key(&mut self.keys.verified, keyid, f.time),
                    (Kind::Rejected, Some("unknown_key")) => note_key(&mut self.keys.unknown, keyid, f.time),
                    _ => {}
                }
            }
        }
    }

    /// Rejections with the reason `code`.
    pub fn reason(&self, code: &str) -> u64 {
        Reason::ALL.iter().position(|r| r.code() == code).and_then(|i| self.reasons.get(i)).copied().unwrap_or(0)
    }
}

/// Non-zero slots of a per-reason array, most frequent first (ties: core's order).
pub fn top(v: &[u64]) -> Vec<(usize, u64)> {
    let mut out: Vec<(usize, u64)> = v.iter().copied().enumerate().filter(|(_, c)| *c > 0).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

// ---- path prefixes --------------------------------------------------------------------

/// Signed requests and `signature_invalid` rejections under one path prefix.
#[derive(Clone, Copy, Debug, Default)]
pub struct PathStats {
    pub signed: u64,
    pub signature_invalid: u64,
}

/// The first segment of a path: `/search/q` → `/search`, `/` → `/`.
pub fn path_prefix(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let end = rest.find('/').map_or(path.len(), |i| i + usize::from(path.starts_with('/')));
    path.get(..end).filter(|p| !p.is_empty()).unwrap_or("/")
}

// ---- series -----------------------------------------------------------------------------

/// Events in one time bucket.
#[derive(Clone, Debug, Default)]
pub struct Bucket {
    pub verified: u64,
    pub unsigned: u64,
    /// Rejections: (reason index, count), sparse.
    pub rejected: Vec<(usize, u64)>,
}

impl Bucket {
    fn merge(&mut self, other: &Bucket) {
        self.verified += other.verified;
        self.unsigned += other.unsigned;
        for (r, c) in &other.rejected {
            self.add_rejected(*r, *c);
        }
    }
    fn add_rejected(&mut self, r: usize, c: u64) {
        match self.rejected.iter_mut().find(|(x, _)| *x == r) {
            Some((_, n)) => *n += c,
            None => self.rejected.push((r, c)),
        }
    }
}

/// Verdicts over time: buckets of `width` seconds (60, doubled whenever more than
/// [`MAX_SERIES_BUCKETS`] would be needed), so the whole input fits in a bounded series.
#[derive(Clone, Debug)]
pub struct Series {
    pub width: u64,
    pub buckets: BTreeMap<u64, Bucket>,
}

impl Default for Series {
    fn default() -> Self {
        Self { width: 60, buckets: BTreeMap::new() }
    }
}

impl Series {
    fn add(&mut self, t: u64, kind: Kind, reason: Option<usize>) {
        let b = self.buckets.entry(t - t % self.width).or_default();
        match kind {
            Kind::Verified => b.verified += 1,
            Kind::Unsigned => b.unsigned += 1,
            Kind::Rejected => b.add_rejected(reason.unwrap_or_else(Reasons::unknown), 1),
        }
        while self.buckets.len() > MAX_SERIES_BUCKETS {
            self.width *= 2;
            let old = std::mem::take(&mut self.buckets);
            for (start, b) in old {
                self.buckets.entry(start - start % self.width).or_default().merge(&b);
            }
        }
    }
}

// ---- the whole input -------------------------------------------------------------------

/// Fields absent from events (older log lines), counted.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Missing {
    pub time: u64,
    pub mode: u64,
    pub path: u64,
    pub status: u64,
    pub verify_us: u64,
    pub pop: u64,
}

/// A bad line, for the report: where and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BadExample {
    pub input: String,
    pub line: u64,
    pub kind: &'static str,
    pub text: String,
}

/// The window of `--since` / `--until`: `since <= time < until`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    pub since: Option<u64>,
    pub until: Option<u64>,
}

impl Window {
    pub fn is_set(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }
    fn contains(&self, t: u64) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// Everything the report is computed from.
pub struct Stats {
    reasons: Reasons,
    pub window: Window,
    pub lines: u64,
    pub blank: u64,
    pub bad: BTreeMap<Bad, u64>,
    pub bad_examples: Vec<BadExample>,
    pub other_events: Small<String>,
    pub input_errors: Vec<String>,
    /// Events outside the window, and events without a time left out because a window was given.
    pub outside_window: u64,
    pub untimed_left_out: u64,
    pub missing: Missing,
    /// Signed events (in the window) that do not say their mode.
    pub signed_no_mode: u64,
    pub time_from_prefix: u64,
    pub modes: BTreeMap<&'static str, u64>,
    pub unknown_reasons: Small<String>,
    pub all: GroupStats,
    pub agents: Groups<GroupStats>,
    pub keyids: Groups<GroupStats>,
    pub pops: Groups<GroupStats>,
    pub by_reason: Groups<GroupStats>,
    pub paths: Groups<PathStats>,
    /// `signature_invalid` rejections without a path.
    pub signature_invalid_no_path: u64,
    pub series: Series,
}

impl Stats {
    pub fn new(window: Window) -> Self {
        Self {
            reasons: Reasons::new(),
            window,
            lines: 0,
            blank: 0,
            bad: BTreeMap::new(),
            bad_examples: Vec::new(),
            other_events: Small::default(),
            input_errors: Vec::new(),
            outside_window: 0,
            untimed_left_out: 0,
            missing: Missing::default(),
            signed_no_mode: 0,
            time_from_prefix: 0,
            modes: BTreeMap::new(),
            unknown_reasons: Small::default(),
            all: GroupStats::default(),
            agents: Groups::new(MAX_GROUPS),
            keyids: Groups::new(MAX_GROUPS),
            pops: Groups::new(MAX_GROUPS),
            by_reason: Groups::new(MAX_GROUPS),
            paths: Groups::new(MAX_PATH_PREFIXES),
            signature_invalid_no_path: 0,
            series: Series::default(),
        }
    }

    /// Count a bad line (keeping the first few as examples).
    pub fn bad_line(&mut self, kind: Bad, input: &str, line: u64, text: &str) {
        *self.bad.entry(kind).or_insert(0) += 1;
        if self.bad_examples.len() < MAX_EXAMPLES {
            let mut shown: String = text.chars().take(120).collect();
            if shown.len() < text.len() {
                shown.push('…');
            }
            self.bad_examples.push(BadExample { input: input.to_owned(), line, kind: kind.code(), text: shown });
        }
    }

    /// Bad lines in all.
    pub fn bad_total(&self) -> u64 {
        self.bad.values().sum()
    }

    /// Add one event (after the window check).
    pub fn add(&mut self, e: &Event) {
        let time = e.time.map(|(t, _)| t);
        match time {
            Some(t) if !self.window.contains(t) => {
                self.outside_window += 1;
                return;
            }
            None if self.window.is_set() => {
                self.untimed_left_out += 1;
                return;
            }
            _ => {}
        }
        if matches!(e.time, Some((_, TimeSource::LinePrefix))) {
            self.time_from_prefix += 1;
        }
        let reason = (e.kind == Kind::Rejected).then(|| self.reasons.index(e.reason.as_deref()));
        if reason == Some(Reasons::unknown()) {
            self.unknown_reasons
                .add(e.reason.as_deref().map_or_else(|| "(no reason)".to_owned(), |r| cut(r).to_owned()));
        }
        let status = match e.kind {
            Kind::Unsigned => Some(200),
            Kind::Verified if e.rate_limited == Some(true) => Some(429),
            Kind::Verified => Some(e.status.unwrap_or(200)),
            Kind::Rejected => e.status.or_else(|| reason.and_then(Reasons::status)),
        };
        let m = &mut self.missing;
        m.time += u64::from(time.is_none());
        m.mode += u64::from(e.mode.is_none());
        m.path += u64::from(e.path.is_none());
        m.status += u64::from(e.status.is_none());
        m.verify_us += u64::from(e.verify_us.is_none());
        m.pop += u64::from(e.pop.is_none());
        self.signed_no_mode += u64::from(e.mode.is_none() && e.kind != Kind::Unsigned);
        let mode = match e.mode {
            Some(Mode::Enforce) => "enforce",
            Some(Mode::Monitor) => "monitor",
            None => "not logged",
        };
        *self.modes.entry(mode).or_insert(0) += 1;

        let facts = Facts { event: e, reason, status, time };
        self.all.add(&facts, false);
        self.agents.entry(e.agent.as_deref().unwrap_or(NONE)).add(&facts, true);
        self.keyids.entry(e.keyid.as_deref().unwrap_or(NONE)).add(&facts, false);
        self.pops.entry(e.pop.as_deref().unwrap_or(NONE)).add(&facts, false);
        let reason_key = match (e.kind, reason) {
            (Kind::Verified, _) => "(verified)",
            (Kind::Unsigned, _) => "(unsigned)",
            (Kind::Rejected, Some(r)) if r != Reasons::unknown() => Reasons::code(r),
            (Kind::Rejected, _) => e.reason.as_deref().unwrap_or("(no reason)"),
        };
        self.by_reason.entry(reason_key).add(&facts, false);

        if e.kind != Kind::Unsigned {
            let invalid = reason.map(Reasons::code) == Some("signature_invalid");
            match e.path.as_deref() {
                Some(p) => {
                    let s = self.paths.entry(path_prefix(p));
                    s.signed += 1;
                    s.signature_invalid += u64::from(invalid);
                }
                None => self.signature_invalid_no_path += u64::from(invalid),
            }
        }
        if let Some(t) = time {
            self.series.add(t, e.kind, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        for v in [0u64, 1, 15, 16, 17, 31, 32, 33, 1000, 123_456, u64::MAX / 3, u64::MAX] {
            let (lo, hi) = bounds_of(bucket_of(v));
            assert!(lo <= v && (v < hi || hi == u64::MAX), "{v} in [{lo},{hi})");
            assert!(hi - lo <= (lo / 16).max(1), "{v}: width");
        }
        assert!(bucket_of(u64::MAX) < 976);
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.add(v);
        }
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        assert!((485..=515).contains(&p50), "{p50}");
        assert!((960..=1000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), Some(1000));
        let mut one = Histogram::default();
        one.add(7);
        assert_eq!((one.quantile(0.5), one.quantile(0.99)), (Some(7), Some(7)));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn groups_fold_past_the_cap() {
        let mut g: Groups<u64> = Groups::new(2);
        for k in ["a", "b", "c", "a", "d"] {
            *g.entry(k) += 1;
        }
        let all: Vec<(&str, u64)> = g.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(all, [("a", 2), ("b", 1), (OTHER, 2)]);
        assert_eq!(g.folded, 2);
        let long = "x".repeat(500);
        let mut g: Groups<u64> = Groups::new(4);
        *g.entry(&long) += 1;
        assert_eq!(g.iter().next().unwrap().0.len(), MAX_KEY_LEN);
    }

    #[test]
    fn prefixes() {
        assert_eq!(path_prefix("/search/q"), "/search");
        assert_eq!(path_prefix("/search"), "/search");
        assert_eq!(path_prefix("/"), "/");
        assert_eq!(path_prefix(""), "/");
        assert_eq!(path_prefix("*"), "*");
    }

    #[test]
    fn series_doubles_its_width() {
        let mut s = Series::default();
        for m in 0..(MAX_SERIES_BUCKETS as u64 * 3) {
            s.add(m * 60, Kind::Verified, None);
        }
        assert!(s.buckets.len() <= MAX_SERIES_BUCKETS);
        assert_eq!(s.width, 240);
        assert_eq!(s.buckets.values().map(|b| b.verified).sum::<u64>(), MAX_SERIES_BUCKETS as u64 * 3);
    }
}
