//! `botauth thumbprint`: the RFC 7638 §3 thumbprint (the Web Bot Auth `keyid`) of each key.

use anyhow::{bail, Context as _, Result};

use crate::input::{emit_line, read_input};
use crate::Outcome;

/// `botauth thumbprint`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A JWK or JWK Set, private or public (`-` = stdin).
    #[arg(value_name = "FILE|-")]
    file: String,
}

/// One thumbprint per key and line; keys that are not OKP are errors (exit 2) after the
/// others are printed.
pub fn run(args: &Args) -> Result<crate::Outcome> {
    let bytes = read_input(&args.file).with_context(|| format!("cannot read {}", args.file))?;
    let results = crate::keys::thumbprints(&bytes).with_context(|| format!("bad JWK file {}", args.file))?;
    if results.is_empty() {
        bail!("{}: the JWK Set has no keys", args.file);
    }
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(t) => emit_line(&t)?,
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        bail!("{}: {}", args.file, failures.join("; "));
    }
    Ok(Outcome::Ok)
}
