//! `botauth directory`: key directories (draft-meunier-http-message-signatures-directory,
//! absorbed by draft-ietf-webbotauth-httpsig-protocol).
//!
//! - `fetch URL`: GET a live directory and run core's checks on what came back;
//! - `check --body --headers`: the same checks on a saved response;
//! - `sign --key --authority` (also the flag form `botauth directory --key …`): print a
//!   signed directory response.
//!
//! Every rule is core's: the allow-list entry is built by [`Directories::from_config`], the
//! response is judged by [`botauth_core::directory::record`], exactly as the Fastly and
//! proxy-wasm hosts judge theirs.

mod report;
mod saved;
mod sign;

use anyhow::{anyhow, Result};
use botauth_core::agent_uri::AgentUri;
use botauth_core::directory::{AgentConfig, Directories, DirectoriesConfig, WELL_KNOWN_PATH};

use crate::fetch::check_scheme;
use crate::Outcome;

/// `botauth directory`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
#[command(after_help = "Without a subcommand, `botauth directory --key … --authority …` is `directory sign`.")]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    sign: sign::SignArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Fetch a directory (https, or http to a loopback host) and check it with core:
    /// exit 0 with at least one usable key, 1 otherwise.
    Fetch(report::FetchArgs),
    /// Check a saved directory response (body + header fields) offline, like `fetch`.
    Check(report::CheckArgs),
    /// Print a signed key-directory response (/.well-known/http-message-signatures-directory).
    Sign(sign::SignArgs),
}

/// Directory options shared by `directory fetch`, `directory check` and `verify --fetch`:
/// they become members of core's allow-list configuration.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct DirectoryOptions {
    /// Keep directory keys whose `kid` is not their RFC 7638 thumbprint (default: skipped).
    #[arg(long)]
    pub accept_kid_mismatch: bool,
    /// Refuse unsigned directory responses (default: accepted, reported as `unsigned`).
    #[arg(long)]
    pub require_signed: bool,
    /// Fetch timeout, milliseconds [default: core's, 2000; at most 30000].
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
}

impl DirectoryOptions {
    /// Core's allow-list entry for `agent`, with these options.
    pub fn agent_config(&self, agent: String, directory: Option<String>) -> AgentConfig {
        AgentConfig {
            agent,
            directory,
            require_signed_directory: Some(self.require_signed),
            accept_kid_mismatch: Some(self.accept_kid_mismatch),
            ..AgentConfig::default()
        }
    }

    /// Core's validated allow-list of `agents`.
    pub fn directories(&self, agents: Vec<AgentConfig>) -> Result<Directories> {
        let config = DirectoriesConfig { agents, fetch_timeout_ms: self.timeout_ms, ..DirectoriesConfig::default() };
        Directories::from_config(&config).map_err(|e| anyhow!("{e}"))
    }
}

/// The one-agent allow-list for a URL given on the command line: an origin is an agent
/// (its directory at the well-known path); a URL with a path is the directory URL itself,
/// its origin the agent. Returns the allow-list and the agent as shown (the URL's origin).
///
/// Core's allow-list takes `https` agents only (a plain `http` directory only on a
/// loopback host), so a loopback `http` directory is listed under the `https` origin of
/// the same authority: the checks read only the directory URL (its scheme, authority and
/// path), never the agent URI.
pub fn one_agent(url: &str, options: &DirectoryOptions) -> Result<(Directories, String)> {
    let uri = AgentUri::parse(url).map_err(|e| anyhow!("{url}: {e}"))?;
    check_scheme(&uri, "URL")?;
    let directory = if uri.is_origin() {
        AgentUri::parse(&format!("{}{WELL_KNOWN_PATH}", uri.origin())).map_err(|e| anyhow!("{url}: {e}"))?
    } else {
        uri.clone()
    };
    let agent = format!("https://{}", uri.authority());
    let config = options.agent_config(agent, Some(directory.as_str().to_owned()));
    Ok((options.directories(vec![config])?, uri.origin().to_owned()))
}

/// Run the subcommand (or the flag form of `sign`).
pub fn run(args: &Args) -> Result<Outcome> {
    match &args.command {
        Some(Command::Fetch(a)) => report::fetch(a),
        Some(Command::Check(a)) => report::check(a),
        Some(Command::Sign(a)) => sign::run(a),
        None => sign::run(&args.sign),
    }
}
