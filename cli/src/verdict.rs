//! `botauth verdict`: make and check `botauth-verdict-auth` values (core's
//! [`verdict_auth`](botauth_core::verdict_auth); docs/verdict-auth.md), for tests and for
//! origins that shell out.
//!
//! - `sign --key kid=BASE64 --verdict … --method … --authority … --path … [--now T]` prints
//!   the header value;
//! - `check --key kid=BASE64 [--key …] --verdict … --auth … --method … --authority … --path …
//!   [--max-age 30] [--now T]`: exit 0 authentic and fresh, 1 refused (the typed reason is
//!   printed), 2 bad usage.
//!
//! A key is `kid=BASE64` or `kid=@FILE` (the file holds the base64 secret, so it stays off
//! the command line and out of `ps`).

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use botauth_core::verdict_auth::{self, Binding, VerdictKey};

use crate::Outcome;

/// `botauth verdict`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print the botauth-verdict-auth value for a verdict and request.
    Sign(SignArgs),
    /// Check a received botauth-verdict-auth: exit 0 ok, 1 refused (reason printed).
    Check(CheckArgs),
}

/// The verdict and request the MAC binds.
#[derive(Debug, clap::Args)]
struct BindingArgs {
    /// The botauth-verdict header value, exactly as received.
    #[arg(long, value_name = "VALUE", allow_hyphen_values = true)]
    verdict: String,
    /// The request method, e.g. GET.
    #[arg(long)]
    method: String,
    /// The request authority, host[:port] (compared lower-cased).
    #[arg(long, value_name = "HOST[:PORT]")]
    authority: String,
    /// The request path with its query, as received, e.g. /a?b=1.
    #[arg(long)]
    path: String,
    /// Unix seconds to use as the current time [default: the clock].
    #[arg(long, value_name = "T")]
    now: Option<u64>,
}

impl BindingArgs {
    fn binding(&self) -> Binding<'_> {
        Binding { verdict: &self.verdict, method: &self.method, authority: &self.authority, path: &self.path }
    }

    fn now(&self) -> u64 {
        self.now.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
        })
    }
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The key: kid=BASE64 or kid=@FILE (secret at least 32 bytes).
    #[arg(long, value_name = "KID=SECRET")]
    key: String,
    #[command(flatten)]
    binding: BindingArgs,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// An accepted key: kid=BASE64 or kid=@FILE; repeat for rotation.
    #[arg(long = "key", value_name = "KID=SECRET", required = true)]
    keys: Vec<String>,
    /// The botauth-verdict-auth header value received.
    #[arg(long, value_name = "VALUE")]
    auth: String,
    /// Oldest accepted timestamp, seconds before now.
    #[arg(long, value_name = "SECONDS", default_value_t = verdict_auth::DEFAULT_MAX_AGE)]
    max_age: u64,
    #[command(flatten)]
    binding: BindingArgs,
}

/// Run `botauth verdict`.
pub fn run(args: &Args) -> Result<Outcome> {
    match &args.command {
        Command::Sign(a) => {
            let key = parse_key(&a.key)?;
            let value = verdict_auth::sign(&key, &a.binding.binding(), a.binding.now()).map_err(|e| anyhow!("{e}"))?;
            println!("{value}");
            Ok(Outcome::Ok)
        }
        Command::Check(a) => {
            let keys = a.keys.iter().map(|k| parse_key(k)).collect::<Result<Vec<_>>>()?;
            let now = a.binding.now();
            match verdict_auth::check(&a.auth, &a.binding.binding(), &keys, now, a.max_age) {
                Ok(ok) => {
                    println!("ok: kid={} t={} age={}", ok.kid, ok.t, now.saturating_sub(ok.t));
                    Ok(Outcome::Ok)
                }
                Err(e) => {
                    println!("refused: {e}");
                    Ok(Outcome::NotVerified)
                }
            }
        }
    }
}

/// `kid=BASE64` or `kid=@FILE`, checked by core (kid charset, secret length).
fn parse_key(arg: &str) -> Result<VerdictKey> {
    let Some((kid, secret)) = arg.split_once('=') else {
        bail!("--key must be KID=BASE64 or KID=@FILE");
    };
    let text = match secret.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read the secret of key {kid}"))?,
        None => secret.to_owned(),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| anyhow!("--key {kid}: the secret is not base64"))?;
    VerdictKey::new(kid, &bytes).map_err(|e| anyhow!("--key {kid}: {e}"))
}
