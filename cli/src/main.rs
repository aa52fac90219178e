//! `botauth`: sign, verify and explain Web Bot Auth request signatures (RFC 9421 HTTP
//! Message Signatures with Ed25519) from raw HTTP/1.1 message files; generate keys and
//! signed key directories; fetch and check live key directories; make and check the
//! authenticated verdict (`botauth-verdict-auth`). All rules live in
//! `botauth-core`; this is file handling and HTTP.
//!
//! Exit codes: 0 ok / verified, 1 rejected or unsigned, 2 bad usage or input.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::todo)
)]

mod compact;
mod covered;
mod curl;
mod dates;
mod directory;
mod fetch;
mod input;
mod keygen;
mod keys;
mod message;
mod report;
mod sign;
mod thumbprint;
mod verdict;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Web Bot Auth (RFC 9421, Ed25519) signatures from the command line.
#[derive(Debug, Parser)]
#[command(name = "botauth", version, about, propagate_version = true)]
#[command(after_help = "Exit codes: 0 ok/verified, 1 rejected or unsigned, 2 bad usage or input.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate an Ed25519 key: the private JWK (kid = RFC 7638 thumbprint).
    Keygen(keygen::Args),
    /// Print the RFC 7638 thumbprint (the Web Bot Auth keyid) of each key in a JWK or JWKS.
    Thumbprint(thumbprint::Args),
    /// Print a JWK or JWKS as botauth's compact key list: the pre-validated key store item
    /// (e.g. a Fastly `botauth_jwks` item) the edge reads without JSON or hashing.
    CompactKeys(compact::Args),
    /// Sign a raw HTTP request file; print the signed request (or a curl command).
    Sign(Box<sign::Args>),
    /// Verify a signed raw HTTP request file: exit 0 verified, 1 rejected or unsigned.
    Verify(verify::Args),
    /// Like verify, but show each check, the covered components and the signature base.
    Explain(verify::Args),
    /// Key directories: fetch and check a live one, check a saved one, or print a signed one.
    Directory(directory::Args),
    /// Report on the verifiers' logs (Fastly NDJSON, Envoy/Kong lines; gzip ok): verdicts,
    /// agents, keyids, reasons, what enforce mode would block, diagnoses; --json, --html.
    Report(Box<report::Args>),
    /// The authenticated verdict (botauth-verdict-auth): `sign` one, or `check` a received
    /// one (exit 0 ok, 1 refused with the reason).
    Verdict(verdict::Args),
}

/// What a successful run of a command concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Done / verified: exit 0.
    Ok,
    /// Rejected or unsigned: exit 1.
    NotVerified,
}

fn main() -> ExitCode {
    // clap prints usage errors and exits 2 (help and version exit 0).
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Keygen(a) => keygen::run(a),
        Command::Thumbprint(a) => thumbprint::run(a),
        Command::CompactKeys(a) => compact::run(a),
        Command::Sign(a) => sign::run(a),
        Command::Verify(a) => verify::verify(a),
        Command::Explain(a) => verify::explain(a),
        Command::Directory(a) => directory::run(a),
        Command::Report(a) => report::run(a),
        Command::Verdict(a) => verdict::run(a),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::NotVerified) => ExitCode::from(1),
        Err(e) => {
            eprintln!("botauth: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// How the request file's target is placed (shared by sign, verify, explain).
#[derive(Clone, Debug, Default, clap::Args)]
struct TargetArgs {
    /// Scheme for @scheme/@target-uri [default: https, or the absolute-form target's].
    #[arg(long, value_name = "SCHEME")]
    scheme: Option<String>,
    /// Authority for @authority [default: the Host header, or the absolute-form target's].
    #[arg(long, value_name = "HOST[:PORT]")]
    authority: Option<String>,
}

/// Read and parse a request file (`-` = stdin), with the file name in every error.
fn load_request(path: &str) -> anyhow::Result<message::RawRequest> {
    use anyhow::Context as _;
    let shown = if path == "-" { "<stdin>" } else { path };
    let bytes = input::read_input(path).with_context(|| format!("cannot read request {shown}"))?;
    message::parse_request(&bytes).with_context(|| format!("bad request file {shown}"))
}
