//! Logging: one JSON line per signed request to the `botauth` endpoint, and configuration
//! problems to stderr (Fastly's log tailing shows both).

use std::io::Write as _;

use botauth_core::outcome::EventContext;
use botauth_core::Verdict;
use fastly::log::Endpoint;

use crate::config::LOG_ENDPOINT;

/// Record one signed request: core's request event (verdict, reason, agent, keyid, label,
/// verify µs, time, mode, path, the status enforce mode answers) plus the POP, where in the
/// shield topology it was checked, and whether its agent was over the rate limit.
pub fn verdict(verdict: &Verdict, verify_us: u64, ctx: &EventContext<'_>, role: &str, rate_limited: bool) {
    let pop = std::env::var("FASTLY_POP").unwrap_or_default();
    let limited = if rate_limited { "true" } else { "false" };
    let event = botauth_core::outcome::request_event(
        verdict,
        verify_us,
        ctx,
        &[("pop", &pop), ("role", role), ("rate_limited", limited)],
    );
    line(&event);
}

/// One line (JSON) to the `botauth` endpoint, or to stderr when it is not configured.
pub fn line(line: &str) {
    match Endpoint::try_from_name(LOG_ENDPOINT) {
        Ok(mut endpoint) => {
            if writeln!(endpoint, "{line}").is_err() {
                eprintln!("botauth: cannot write to log endpoint `{LOG_ENDPOINT}`: {line}");
            }
        }
        Err(_) => eprintln!("botauth: log endpoint `{LOG_ENDPOINT}` is not configured: {line}"),
    }
}

/// A configuration problem: one clear line on stderr.
pub fn config_problem(message: &str) {
    eprintln!("botauth: configuration error: {message}");
}

/// A warning that is not an error.
pub fn warning(message: &str) {
    eprintln!("botauth: warning: {message}");
}
