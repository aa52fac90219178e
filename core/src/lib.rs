//! # botauth-core
//!
//! Verification of [Web Bot Auth] request signatures: HTTP Message Signatures
//! ([RFC 9421]) with Ed25519 ([RFC 8032] §5.1.7), the way AI agents sign their requests.
//!
//! The crate is pure: no clock, no I/O, no global state. The caller passes the request
//! parts ([`Request`]), the trusted keys ([`Keyring`]), the [`Policy`] and `now` (unix
//! seconds) to [`verify`], which returns a [`Verdict`]. Replay state lives with the caller
//! ([`NonceStore`]); the decision lives here ([`check_replay`]).
//!
//! Order of work ([`verify`]): no `Signature`/`Signature-Input` → [`Verdict::Unsigned`];
//! prechecks without parsing or crypto ([`precheck`]); `sfv` parsing
//! ([`signature_input`]); key-free policy ([`policy`]); key lookup ([`keys`]); the
//! signature base ([`signature_base`], RFC 9421 §2.5); Ed25519 ([`crypto`]).
//!
//! [Web Bot Auth]: https://datatracker.ietf.org/doc/draft-meunier-web-bot-auth-architecture/
//! [RFC 9421]: https://www.rfc-editor.org/rfc/rfc9421
//! [RFC 8032]: https://www.rfc-editor.org/rfc/rfc8032
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![warn(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented,
        clippy::unreachable
    )
)]

extern crate alloc;

#[cfg(not(any(feature = "ed25519-compact", feature = "ed25519-dalek")))]
compile_error!("botauth-core needs an Ed25519 backend: enable `ed25519-compact` or `ed25519-dalek`");

pub mod agent_uri;
pub mod claims;
pub mod components;
pub mod config;
pub mod content_digest;
pub mod crypto;
pub mod directory;
mod event;
pub mod keys;
pub mod outcome;
pub mod policy;
pub mod precheck;
mod reason;
pub mod replay;
pub mod request;
#[cfg(feature = "sign")]
pub mod sign;
pub mod signature_agent;
pub mod signature_base;
pub mod signature_input;
mod structured;
mod verdict;
pub mod verdict_auth;
mod verify;

pub use keys::{Jwk, Jwks, KeySkipReason, Keyring, KeysError, PublicKey, SkippedKey, ANY_AGENT, COMPACT_KEYS_TAG};
pub use policy::{Limits, Mode, Policy};
pub use reason::{Field, Reason, Status};
pub use replay::{check_replay, MemoryNonceStore, NonceStore};
pub use request::{HttpRequest, Request};
pub use verdict::{Rejected, Verdict, Verified};
pub use verify::{verify, verify_with_trace, Trace};
