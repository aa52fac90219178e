//! # botauth-proxy-wasm
//!
//! A Proxy-Wasm HTTP filter (Envoy, Istio, Kong Gateway 3.4+ filter chains) that verifies
//! Web Bot Auth request signatures with `botauth-core` (ARCHITECTURE §6).
//!
//! Per request: strip any incoming verdict header; unsigned traffic (no `Signature`, no
//! `Signature-Input`) continues untouched. Signed traffic is read in full ([`request`]),
//! verified, checked for replay in shared data ([`replay`]), counted ([`metrics`]) and
//! logged; then the verdict header goes upstream, or — in enforce mode — a rejection is
//! answered locally with problem+json ([`response`]). Configuration: [`config`].
//!
//! The host glue (`filter`) exists only in wasm32 builds; everything else is pure and
//! tested natively.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

#[cfg(target_arch = "wasm32")]
mod bench;
pub mod config;
pub mod directory;
#[cfg(target_arch = "wasm32")]
mod filter;
pub mod metrics;
pub mod replay;
pub mod request;
pub mod response;
