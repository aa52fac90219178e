//! How long a fetched directory is used (RFC 9111 freshness, clamped to operator bounds),
//! how long a stale copy stays usable when refreshing fails (RFC 5861 `stale-if-error`,
//! bounded by `max_stale`), and when the next fetch may happen (negative caching with
//! backoff, `Retry-After` per RFC 9110 §10.2.3). Pure: fields and `now` in, instants out.

use alloc::vec::Vec;

use crate::request::Request;

/// Operator bounds, seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Shortest freshness lifetime used, whatever the directory says (default 60).
    pub min_ttl: u64,
    /// Longest freshness lifetime used (default 86400).
    pub max_ttl: u64,
    /// Lifetime when the response gives none (default 300).
    pub default_ttl: u64,
    /// How long after its freshness ends a good copy stays usable while refreshes fail
    /// (default 86400); a `stale-if-error` shorter than this wins.
    pub max_stale: u64,
    /// Longest negative caching of a failed fetch (default 300: "at most 5 minutes").
    pub max_negative_ttl: u64,
    /// Delay after the first failure; doubled for each further one (default 10).
    pub negative_base: u64,
    /// Least time between two fetches of one directory triggered by an unknown keyid
    /// (default 60).
    pub refetch_interval: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            min_ttl: 60,
            max_ttl: 86_400,
            default_ttl: 300,
            max_stale: 86_400,
            max_negative_ttl: 300,
            negative_base: 10,
            refetch_interval: 60,
        }
    }
}

/// The instants a successful fetch yields (unix seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Freshness {
    /// Use without refreshing until then.
    pub fresh_until: u64,
    /// Usable while refreshes fail until then; after it the agent fails closed.
    pub stale_until: u64,
    /// No further fetch before then (an unknown keyid may trigger one after it).
    pub retry_after: u64,
}

/// Cache directives of a response (RFC 9111 §5.2.2, RFC 5861 §4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `max-age`.
    pub max_age: Option<u64>,
    /// `s-maxage` (wins over `max-age` for a shared cache, RFC 9111 §5.2.2.10).
    pub s_maxage: Option<u64>,
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (or `private`: a shared cache must not reuse it without revalidation).
    pub no_cache: bool,
    /// `stale-if-error`.
    pub stale_if_error: Option<u64>,
}

/// Parse every `Cache-Control` line. Unknown directives are ignored (RFC 9111 §5.2.3); a
/// directive with an unusable value counts as absent, except that an invalid `max-age`
/// makes the response stale (§4.2.1: treat as zero).
pub fn cache_control(fields: &dyn Request) -> CacheControl {
    let mut lines = Vec::new();
    fields.field_lines("cache-control", &mut lines);
    let mut cc = CacheControl::default();
    for line in lines {
        let Ok(line) = core::str::from_utf8(line) else { continue };
        for directive in line.split(',') {
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            let seconds = || value.and_then(|v| v.parse::<u64>().ok());
            match name.to_ascii_lowercase().as_str() {
                "max-age" => cc.max_age = Some(seconds().unwrap_or(0)),
                "s-maxage" => cc.s_maxage = Some(seconds().unwrap_or(0)),
                "no-store" => cc.no_store = true,
                "no-cache" | "private" => cc.no_cache = true,
                "stale-if-error" => cc.stale_if_error = seconds().or(cc.stale_if_error),
                _ => {}
            }
        }
    }
    cc
}

/// The freshness of a successful (200 or 304) response received at `now`.
///
/// Lifetime: `s-maxage`, else `max-age`, else `Expires - Date` (RFC 9111 §4.2.1), minus
/// `Age` (§4.2.3), else [`Bounds::default_ttl`]; `no-store`/`no-cache` ask for the shortest
/// lifetime allowed. Then clamped to `[min_ttl, max_ttl]`: the keys must stay in memory to
/// verify at all, and a directory must not make the verifier fetch on every request.
pub fn on_success(fields: &dyn Request, now: u64, bounds: &Bounds) -> Freshness {
    let cc = cache_control(fields);
    let lifetime = if cc.no_store || cc.no_cache {
        0
    } else if let Some(s) = cc.s_maxage.or(cc.max_age) {
        s.saturating_sub(age(fields))
    } else if let Some(expires) = field(fields, "expires") {
        // §5.3: an invalid Expires means "already expired".
        let date = field(fields, "date").and_then(|d| http_date(&d)).unwrap_or(now);
        http_date(&expires).map_or(0, |e| e.saturating_sub(date)).saturating_sub(age(fields))
    } else {
        bounds.default_ttl
    };
    let ttl = lifetime.clamp(bounds.min_ttl, bounds.max_ttl.max(bounds.min_ttl));
    let fresh_until = now.saturating_add(ttl);
    let stale = cc.stale_if_error.map_or(bounds.max_stale, |s| s.min(bounds.max_stale));
    Freshness {
        fresh_until,
        stale_until: fresh_until.saturating_add(stale),
        retry_after: now.saturating_add(bounds.refetch_interval),
    }
}

/// When the next fetch may happen after the `failures`-th consecutive failure at `now`
/// (`fields`: the failed response's, when there was one). Backs off from
/// `negative_base`, doubling, honours a longer `Retry-After`, and never waits more than
/// `max_negative_ttl`.
pub fn on_failure(fields: Option<&dyn Request>, failures: u32, now: u64, bounds: &Bounds) -> u64 {
    let exponent = failures.saturating_sub(1).min(32);
    let backoff = bounds.negative_base.saturating_mul(1u64 << exponent);
    let asked = fields.and_then(|f| retry_after(f, now)).unwrap_or(0);
    let delay = backoff.max(asked).min(bounds.max_negative_ttl).max(1);
    now.saturating_add(delay)
}

/// `Retry-After` as seconds from `now`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn retry_after(fields: &dyn Request, now: u64) -> Option<u64> {
    let v = field(fields, "retry-after")?;
    let v = v.trim();
    match v.parse::<u64>() {
        Ok(s) => Some(s),
        Err(_) => http_date(v).map(|t| t.saturating_sub(now)),
    }
}

/// `Age`, seconds (RFC 9111 §5.1); 0 when absent or invalid.
fn age(fields: &dyn Request) -> u64 {
    field(fields, "age").and_then(|a| a.trim().parse().ok()).unwrap_or(0)
}

/// The first line of a field, as text.
fn field(fields: &dyn Request, name: &str) -> Option<alloc::string::String> {
    let mut lines = Vec::new();
    fields.field_lines(name, &mut lines);
    lines.first().and_then(|l| core::str::from_utf8(l).ok()).map(alloc::string::String::from)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7) as unix seconds.
/// The obsolete formats are not accepted (a recipient that cannot parse a date treats
/// `Expires` as past, and `Retry-After` as absent).
pub fn http_date(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.trim().split(' ').collect();
    let [wday, day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    if wday.len() != 4 || !wday.ends_with(',') || day.len() != 2 || year.len() != 4 {
        return None;
    }
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| m == month)?;
    let num = |s: &str| -> Option<u64> { s.bytes().all(|b| b.is_ascii_digit()).then(|| s.parse().ok()).flatten() };
    let (day, year) = (num(day)?, num(year)?);
    let hms: Vec<&str> = time.split(':').collect();
    let [h, m, s] = hms.as_slice() else { return None };
    if h.len() != 2 || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let (h, m, s) = (num(h)?, num(m)?, num(s)?);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year, u64::try_from(month).ok()? + 1, day)?;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 { year.checked_sub(1)? } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::HttpRequest;

    const NOW: u64 = 1_760_000_000;

    fn with(fields: &[(&str, &str)]) -> HttpRequest {
        let mut r = HttpRequest::new("GET", "https", "a.test", "/");
        for (n, v) in fields {
            r.push_header(n, v.as_bytes());
        }
        r
    }

    fn ttl(fields: &[(&str, &str)]) -> u64 {
        on_success(&with(fields), NOW, &Bounds::default()).fresh_until - NOW
    }

    #[test]
    fn lifetime_from_cache_control_clamped() {
        assert_eq!(ttl(&[]), 300, "default");
        assert_eq!(ttl(&[("cache-control", "max-age=3600")]), 3600);
        assert_eq!(ttl(&[("cache-control", "public, max-age=3600, s-maxage=600")]), 600);
        assert_eq!(ttl(&[("cache-control", "max-age=5")]), 60, "min bound");
        assert_eq!(ttl(&[("cache-control", "max-age=60")]), 60);
        assert_eq!(ttl(&[("cache-control", "max-age=61")]), 61);
        assert_eq!(ttl(&[("cache-control", "max-age=86400")]), 86_400);
        assert_eq!(ttl(&[("cache-control", "max-age=86401")]), 86_400, "max bound");
        assert_eq!(ttl(&[("cache-control", "no-store")]), 60);
        assert_eq!(ttl(&[("cache-control", "no-cache, max-age=3600")]), 60);
        assert_eq!(ttl(&[("cache-control", "max-age=abc")]), 60, "invalid max-age is stale");
        assert_eq!(ttl(&[("cache-control", "max-age=3600"), ("age", "600")]), 3000);
        assert_eq!(ttl(&[("Cache-Control", "MAX-AGE=\"7200\"")]), 7200);
    }

    #[test]
    fn expires_and_dates() {
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None, "RFC 850 form not accepted");
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(http_date("Sun, 32 Nov 1994 08:49:37 GMT"), None);
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let expires = "Sun, 06 Nov 1994 09:49:37 GMT";
        assert_eq!(ttl(&[("date", date), ("expires", expires)]), 3600, "Expires - Date");
        assert_eq!(ttl(&[("expires", "0")]), 60, "invalid Expires = already expired");
        assert_eq!(ttl(&[("cache-control", "max-age=600"), ("date", date), ("expires", expires)]), 600);
    }

    #[test]
    fn stale_window() {
        let b = Bounds::default();
        let f = on_success(&with(&[("cache-control", "max-age=600")]), NOW, &b);
        assert_eq!(f.stale_until, NOW + 600 + 86_400);
        assert_eq!(f.retry_after, NOW + 60);
        let f = on_success(&with(&[("cache-control", "max-age=600, stale-if-error=3600")]), NOW, &b);
        assert_eq!(f.stale_until, NOW + 600 + 3600);
        let f = on_success(&with(&[("cache-control", "max-age=600, stale-if-error=999999")]), NOW, &b);
        assert_eq!(f.stale_until, NOW + 600 + 86_400, "bounded by max_stale");
    }

    #[test]
    fn failures_back_off_within_five_minutes() {
        let b = Bounds::default();
        let delays: Vec<u64> = (1..=7).map(|n| on_failure(None, n, NOW, &b) - NOW).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(on_failure(None, u32::MAX, NOW, &b) - NOW, 300);
        let ra = with(&[("retry-after", "120")]);
        assert_eq!(on_failure(Some(&ra), 1, NOW, &b) - NOW, 120);
        let ra = with(&[("retry-after", "3600")]);
        assert_eq!(on_failure(Some(&ra), 1, NOW, &b) - NOW, 300, "at most 5 minutes");
        let ra = with(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        assert_eq!(on_failure(Some(&ra), 1, 784_111_777 - 90, &b) - (784_111_777 - 90), 90);
    }
}
