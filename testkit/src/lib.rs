//! Support for tests that drive real hosts (Viceroy, Envoy) over loopback.
//!
//! Everything binds 127.0.0.1 and everything started here stops on drop.

pub mod directory;
pub mod origin;
pub mod process;
pub mod raw_http;
pub mod soak;

pub use process::{free_port, wait_for_port, ChildGuard};

/// The current unix time, seconds (0 before the epoch).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The shared fixture model (`core/tests/common/fixture.rs`), the same file core's
/// conformance runner uses.
#[path = "../../core/tests/common/fixture.rs"]
#[allow(missing_docs, unreachable_pub)]
pub mod fixture;
