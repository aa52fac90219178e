//! Support for tests that drive real hosts (Viceroy, Envoy) over loopback.
//!
//! Everything binds 127.0.0.1 and everything started here stops on drop.

pub mod origin;
pub mod process;
pub mod raw_http;

pub use process::{free_port, wait_for_port, ChildGuard};

// The shared fixture model is added as `pub mod fixture` (via `#[path]` to
// `core/tests/common/fixture.rs`) as soon as that file lands.
