//! Key directories (draft-meunier-http-message-signatures-directory, absorbed by
//! draft-ietf-webbotauth-httpsig-protocol): where an agent publishes its keys, and how a
//! verifier keeps them current without I/O of its own.
//!
//! - [`allow_list`]: which agents may be fetched, and from where (operator configuration only);
//! - [`document`]: the JWK Set (or bare JWK) a directory serves, with caps;
//! - [`response`]: signed directory responses;
//! - [`freshness`]: HTTP caching rules, clamped to operator bounds, as pure decisions;
//! - [`entry`]: one agent's cached state, which hosts store and consult;
//! - [`resolve`]: verification with directories, telling the host when to fetch.

pub mod allow_list;
pub mod document;
pub mod entry;
pub mod freshness;
pub mod resolve;
pub mod response;

pub use allow_list::{
    AgentConfig, AgentDirectory, Directories, DirectoriesConfig, DirectoriesError, DirectorySettings,
};
pub use document::{parse_document, Document, DocumentError, DocumentLimits, Finding, ParseOptions};
pub use entry::{record, Entry, FetchError, Fetched, Recorded, State, TransportError};
pub use freshness::{Bounds, Freshness};
pub use resolve::{claimed_agents, verify_with_directories, Entries, Fetch, FetchReason, Step};
pub use response::{check_signatures, verify_directory_response, DirectoryError, SignatureReport, VerifiedDirectory};

/// The well-known path of a key directory.
pub const WELL_KNOWN_PATH: &str = "/.well-known/http-message-signatures-directory";
/// The directory's media type.
pub const MEDIA_TYPE: &str = "application/http-message-signatures-directory+json";
