//! One log line → one verification event (or why not).
//!
//! Accepted shapes:
//! - the Fastly service's NDJSON: the line is the JSON object (`{"agent":…,"verdict":…}`);
//! - Viceroy's echo of the `botauth` endpoint: `botauth :: {json}`;
//! - the proxy-wasm filter's line inside an Envoy log
//!   (`[2026-12-02 18:00:00.123][12][info][wasm] [...] wasm log botauth botauth_vm: botauth: {json}`)
//!   or a Kong/nginx error log (`2026/12/02 18:00:00 [info] 1#0: *5 [proxy-wasm] … botauth: {json}, client: …`):
//!   the JSON after `botauth: `, trailing text ignored.
//!
//! When the event has no `time`, the timestamp that starts an Envoy or nginx log line is
//! used (read as UTC, Envoy's and nginx's default when the host's zone is UTC).

use serde_json::{Map, Value};

/// The verdict of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `verified`
    Verified,
    /// `rejected`
    Rejected,
    /// `unsigned`
    Unsigned,
}

/// The host's mode when it logged the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Rejections were answered.
    Enforce,
    /// Rejections were forwarded.
    Monitor,
}

/// Where an event's time came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSource {
    /// The event's own `time` member.
    Event,
    /// The Envoy or nginx log line's timestamp.
    LinePrefix,
}

/// One verification event, as logged by `log_event` / `request_event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub reason: Option<String>,
    pub agent: Option<String>,
    pub keyid: Option<String>,
    pub verify_us: Option<u64>,
    pub time: Option<(u64, TimeSource)>,
    pub mode: Option<Mode>,
    pub path: Option<String>,
    pub status: Option<u16>,
    pub pop: Option<String>,
    pub rate_limited: Option<bool>,
}

/// Why a line is not an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bad {
    /// No JSON object on the line (e.g. another component's log line).
    NoJson,
    /// A `{` that does not start valid JSON (e.g. a truncated line).
    InvalidJson,
    /// A JSON object without a `verdict` member (and no `event` kind).
    NotAnEvent,
    /// A member of the wrong type or an unknown verdict.
    WrongType,
    /// Not UTF-8.
    NotUtf8,
    /// Longer than the line cap.
    TooLong,
}

impl Bad {
    /// Stable code (report and JSON).
    pub fn code(self) -> &'static str {
        match self {
            Bad::NoJson => "no_json",
            Bad::InvalidJson => "bad_json",
            Bad::NotAnEvent => "not_an_event",
            Bad::WrongType => "bad_value",
            Bad::NotUtf8 => "not_utf8",
            Bad::TooLong => "too_long",
        }
    }
}

/// What a line is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Empty or whitespace only: skipped, not counted as bad.
    Blank,
    /// A verification event.
    Event(Box<Event>),
    /// Another botauth JSON event (`{"event":"directory_fetch",…}`): counted by kind.
    Other(String),
    /// Not usable.
    Bad(Bad),
}

/// Classify one line (without its line terminator).
pub fn parse_line(line: &str) -> Line {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Line::Blank;
    }
    let Some(start) = json_start(trimmed) else {
        return Line::Bad(Bad::NoJson);
    };
    let Some(json) = trimmed.get(start..) else {
        return Line::Bad(Bad::NoJson);
    };
    let value = match serde_json::Deserializer::from_str(json).into_iter::<Value>().next() {
        Some(Ok(v)) => v,
        _ => return Line::Bad(Bad::InvalidJson),
    };
    let Value::Object(map) = value else {
        return Line::Bad(Bad::NotAnEvent);
    };
    if !map.contains_key("verdict") {
        return match map.get("event").and_then(Value::as_str) {
            Some(kind) => Line::Other(kind.chars().take(64).collect()),
            None => Line::Bad(Bad::NotAnEvent),
        };
    }
    match event(&map) {
        Some(mut e) => {
            if e.time.is_none() {
                e.time = prefix_time(trimmed).map(|t| (t, TimeSource::LinePrefix));
            }
            Line::Event(Box::new(e))
        }
        None => Line::Bad(Bad::WrongType),
    }
}

/// Where the event's JSON object starts: the whole line, after a `botauth: ` or
/// `botauth :: ` marker, or at the first `{`.
fn json_start(line: &str) -> Option<usize> {
    if line.starts_with('{') {
        return Some(0);
    }
    for marker in ["botauth :: {", "botauth: {"] {
        if let Some(i) = line.find(marker) {
            return Some(i + marker.len() - 1);
        }
    }
    line.find('{')
}

fn event(map: &Map<String, Value>) -> Option<Event> {
    let kind = match map.get("verdict")?.as_str()? {
        "verified" => Kind::Verified,
        "rejected" => Kind::Rejected,
        "unsigned" => Kind::Unsigned,
        _ => return None,
    };
    let mode = match opt_str(map, "mode")? {
        None => None,
        Some("enforce") => Some(Mode::Enforce),
        Some("monitor") => Some(Mode::Monitor),
        Some(_) => return None,
    };
    let status = match opt_u64(map, "status")? {
        None => None,
        Some(s) => Some(u16::try_from(s).ok()?),
    };
    let rate_limited = match map.get("rate_limited") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) if s == "true" => Some(true),
        Some(Value::String(s)) if s == "false" => Some(false),
        Some(_) => return None,
    };
    Some(Event {
        kind,
        reason: opt_str(map, "reason")?.map(str::to_owned),
        agent: opt_str(map, "agent")?.map(str::to_owned),
        keyid: opt_str(map, "keyid")?.map(str::to_owned),
        verify_us: opt_u64(map, "verify_us")?,
        time: opt_u64(map, "time")?.map(|t| (t, TimeSource::Event)),
        mode,
        path: opt_str(map, "path")?.map(str::to_owned),
        status,
        // Fastly logs `"pop":""` when FASTLY_POP is unset (local runs): no POP.
        pop: opt_str(map, "pop")?.filter(|p| !p.is_empty()).map(str::to_owned),
        rate_limited,
    })
}

/// `Some(None)` when absent or null, `Some(Some(s))` for a string, `None` for another type.
fn opt_str<'a>(map: &'a Map<String, Value>, key: &str) -> Option<Option<&'a str>> {
    match map.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        Some(_) => None,
    }
}

/// A non-negative integer, or a string of one (host extras are strings); a non-negative
/// fraction (`"time":1796230800.25`, as some log pipelines rewrite it) is cut to its integer.
fn opt_u64(map: &Map<String, Value>, key: &str) -> Option<Option<u64>> {
    match map.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().and_then(whole)).map(Some),
        Some(Value::String(s)) => s.parse().ok().map(Some),
        Some(_) => None,
    }
}

/// The integer part of a finite, non-negative `f`.
fn whole(f: f64) -> Option<u64> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    (f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then(|| f.trunc() as u64)
}

/// Unix seconds of the timestamp an Envoy (`[2026-12-02 18:00:00.123]`) or nginx/Kong
/// (`2026/12/02 18:00:00`) log line starts with, read as UTC.
pub fn prefix_time(line: &str) -> Option<u64> {
    let s = line.strip_prefix('[').unwrap_or(line);
    let b = s.as_bytes();
    let sep = *b.get(4)?;
    if !(sep == b'-' || sep == b'/') || b.get(7) != Some(&sep) || b.get(10) != Some(&b' ') {
        return None;
    }
    let num = |from: usize, to: usize| s.get(from..to).and_then(|d| d.parse::<u32>().ok());
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let year = i32::try_from(num(0, 4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(5, 7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(num(8, 10)?).ok()?).ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(num(11, 13)?).ok()?,
        u8::try_from(num(14, 16)?).ok()?,
        u8::try_from(num(17, 19)?).ok()?,
    )
    .ok()?;
    u64::try_from(time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(line: &str) -> Event {
        match parse_line(line) {
            Line::Event(e) => *e,
            other => panic!("not an event: {other:?} for {line}"),
        }
    }

    #[test]
    fn fastly_ndjson() {
        let e = ev(
            r#"{"agent":"https://a.test","keyid":"k","label":"sig1","pop":"AMS","rate_limited":"false","reason":null,"role":"direct","verdict":"verified","verify_us":42}"#,
        );
        assert_eq!(e.kind, Kind::Verified);
        assert_eq!(e.agent.as_deref(), Some("https://a.test"));
        assert_eq!(e.verify_us, Some(42));
        assert_eq!(e.pop.as_deref(), Some("AMS"));
        assert_eq!(e.rate_limited, Some(false));
        assert_eq!((e.time, e.mode, e.status), (None, None, None));
    }

    #[test]
    fn request_event_fields() {
        let e = ev(
            r#"{"agent":null,"keyid":null,"label":null,"mode":"monitor","path":"/x","reason":"expired","status":403,"time":1735689700,"verdict":"rejected","verify_us":7}"#,
        );
        assert_eq!(e.kind, Kind::Rejected);
        assert_eq!(e.reason.as_deref(), Some("expired"));
        assert_eq!(e.time, Some((1_735_689_700, TimeSource::Event)));
        assert_eq!(e.mode, Some(Mode::Monitor));
        assert_eq!(e.status, Some(403));
        assert_eq!(e.path.as_deref(), Some("/x"));
    }

    #[test]
    fn envoy_kong_and_viceroy_lines() {
        let envoy = r#"[2026-12-02 18:00:00.123][12][info][wasm] [source/extensions/common/wasm/context.cc:1192] wasm log botauth botauth_vm: botauth: {"agent":"a","keyid":"k","label":"sig1","mode":"monitor","phase":"headers","reason":"unknown_key","verdict":"rejected","verify_us":9}"#;
        let e = ev(envoy);
        assert_eq!(e.reason.as_deref(), Some("unknown_key"));
        assert_eq!(e.time, Some((1_796_234_400, TimeSource::LinePrefix)));
        let kong = r#"2026/12/02 18:00:01 [info] 1#0: *5 [proxy-wasm]["botauth" #1] botauth: {"agent":"a","verdict":"verified","keyid":"k","verify_us":3}, client: 127.0.0.1, server: kong"#;
        assert_eq!(ev(kong).time, Some((1_796_234_401, TimeSource::LinePrefix)));
        let viceroy = r#"botauth :: {"agent":null,"verdict":"unsigned","verify_us":0}"#;
        assert_eq!(ev(viceroy).kind, Kind::Unsigned);
    }

    #[test]
    fn bad_and_other_lines() {
        assert_eq!(parse_line("   "), Line::Blank);
        assert_eq!(parse_line("hello world"), Line::Bad(Bad::NoJson));
        assert_eq!(parse_line(r#"{"agent":"a","verd"#), Line::Bad(Bad::InvalidJson));
        assert_eq!(parse_line(r#"{"agent":"a"}"#), Line::Bad(Bad::NotAnEvent));
        assert_eq!(parse_line(r#"[1,2]"#), Line::Bad(Bad::NoJson));
        assert_eq!(parse_line(r#"{"verdict":"maybe"}"#), Line::Bad(Bad::WrongType));
        assert_eq!(parse_line(r#"{"verdict":"verified","verify_us":"fast"}"#), Line::Bad(Bad::WrongType));
        assert_eq!(parse_line(r#"{"verdict":"verified","verify_us":-1}"#), Line::Bad(Bad::WrongType));
        assert_eq!(ev(r#"{"verdict":"verified","time":1796230800.75}"#).time, Some((1_796_230_800, TimeSource::Event)));
        assert_eq!(
            parse_line(r#"[2026-12-02 18:00:00.123][1][info][wasm] botauth: {"event":"directory_fetch","agent":"a"}"#),
            Line::Other("directory_fetch".into())
        );
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix_time("[1970-01-01 00:01:00.000][1]"), Some(60));
        assert_eq!(prefix_time("2025/01/01 00:00:00 [info]"), Some(1_735_689_600));
        assert_eq!(prefix_time("{\"verdict\""), None);
        assert_eq!(prefix_time("[2025-13-01 00:00:00]"), None);
    }
}
