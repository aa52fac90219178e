//! `bench-phases` builds only: where the signed path stops, so that a benchmark can time
//! each phase of it in a real Envoy by subtraction between requests that stop one phase
//! apart (`cargo xtask bench --envoy`). The shipped build has no such header: [`stop`] is
//! always `None` there and every check of it compiles away.

/// A phase of the signed path, in order; the request is forwarded after it.
#[cfg_attr(not(feature = "bench-phases"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The context is created and `signature`/`signature-input` have been looked up.
    Enter,
    /// The whole header map and the `request.path` property have been read.
    Read,
    /// Core's request has been built from them.
    Request,
    /// Core's verdict is known (before the replay check, the metrics, the log line and the
    /// headers sent upstream).
    Verify,
}

/// The phase named by the request's `x-botauth-bench-phase` header: one header lookup,
/// in every request of a bench build alike, so it cancels out between the rows.
#[cfg(feature = "bench-phases")]
pub(crate) fn stop() -> Option<Phase> {
    use proxy_wasm::{hostcalls, types::MapType};
    let value = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, "x-botauth-bench-phase").ok().flatten()?;
    match value.as_slice() {
        b"enter" => Some(Phase::Enter),
        b"read" => Some(Phase::Read),
        b"request" => Some(Phase::Request),
        b"verify" => Some(Phase::Verify),
        _ => None,
    }
}

/// Shipped builds: never stop early.
#[cfg(not(feature = "bench-phases"))]
#[inline(always)]
pub(crate) const fn stop() -> Option<Phase> {
    None
}
