//! Forwarding to the origin (or to the shield POP): the host's answer, or a failure the
//! service answers itself as problem+json (`response::upstream_failed`), never a bare host
//! error page.
//!
//! The host bounds the wait with the backend's own timeouts (Fastly: `connect_timeout`,
//! `first_byte_timeout`, set on the service's backend); a send error caused by one of them
//! is a timeout (504), every other one an unreachable origin (502). With the settings item
//! `origin_timeout_ms` the service also bounds the wait for the response head itself
//! (polling, as for directory fetches), for backends whose timeouts are longer than the
//! operator wants clients to wait, and for hosts that enforce none (Viceroy).

use std::time::{Duration, Instant};

use fastly::http::request::{PollResult, SendErrorCause};
use fastly::{Request, Response};

/// How often a pending origin request is polled when `origin_timeout_ms` is set.
const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// Why no response came from the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No response head within a timeout (the host's or `origin_timeout_ms`): 504.
    Timeout,
    /// Refused, reset, unroutable, TLS or protocol failure: 502.
    Unreachable,
}

/// Send `req` to `backend` and wait for the response head, at most `timeout` when set.
pub fn send(req: Request, backend: &str, timeout: Option<Duration>) -> Result<Response, (Failure, String)> {
    let failed = |e: fastly::http::request::SendError| (failure(e.root_cause()), e.to_string());
    let Some(timeout) = timeout else {
        return req.send(backend).map_err(failed);
    };
    let deadline = Instant::now() + timeout;
    let mut pending = req.send_async(backend).map_err(failed)?;
    loop {
        match pending.poll() {
            PollResult::Done(result) => return result.map_err(failed),
            PollResult::Pending(p) if Instant::now() < deadline => {
                pending = p;
                std::thread::sleep(POLL_INTERVAL);
            }
            // Dropping the pending request abandons it.
            PollResult::Pending(_) => {
                return Err((Failure::Timeout, format!("no response head within origin_timeout_ms ({timeout:?})")))
            }
        }
    }
}

/// The failure a send error's cause means for the client.
pub fn failure(cause: &SendErrorCause) -> Failure {
    match cause {
        SendErrorCause::DnsTimeout | SendErrorCause::ConnectionTimeout | SendErrorCause::HttpResponseTimeout => {
            Failure::Timeout
        }
        _ => Failure::Unreachable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_timeouts_are_504_everything_else_502() {
        assert_eq!(failure(&SendErrorCause::HttpResponseTimeout), Failure::Timeout);
        assert_eq!(failure(&SendErrorCause::ConnectionTimeout), Failure::Timeout);
        assert_eq!(failure(&SendErrorCause::DnsTimeout), Failure::Timeout);
        assert_eq!(failure(&SendErrorCause::ConnectionRefused), Failure::Unreachable);
        assert_eq!(failure(&SendErrorCause::ConnectionTerminated), Failure::Unreachable);
        assert_eq!(failure(&SendErrorCause::HttpIncompleteResponse), Failure::Unreachable);
        assert_eq!(failure(&SendErrorCause::TlsCertificateError), Failure::Unreachable);
    }
}
