//! Unix seconds as UTC dates (`2025-01-01T00:00:00Z`), for people reading key lifetimes and
//! cache instants, formatted by the `time` crate (RFC 3339).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC) of unix seconds; `@<unix>` past year 9999.
pub fn utc(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{unix}"))
}

/// `in 300 s` / `300 s ago` / `now`, relative to `now`.
pub fn relative(at: u64, now: u64) -> String {
    match at.cmp(&now) {
        std::cmp::Ordering::Greater => format!("in {} s", at - now),
        std::cmp::Ordering::Less => format!("{} s ago", now - at),
        std::cmp::Ordering::Equal => "now".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(784_111_777), "1994-11-06T08:49:37Z");
        assert_eq!(utc(1_735_689_600), "2025-01-01T00:00:00Z");
        assert_eq!(utc(1_786_913_274), "2026-08-16T20:47:54Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(utc(99_999_999_999), "5138-11-16T09:46:39Z");
        assert_eq!(utc(u64::MAX), format!("@{}", u64::MAX));
        assert_eq!(relative(10, 4), "in 6 s");
        assert_eq!(relative(4, 10), "6 s ago");
    }
}
