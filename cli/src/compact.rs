//! `botauth compact-keys`: a JWK or JWK Set as botauth's compact key list (core's
//! `COMPACT_KEYS_TAG`), the pre-validated form for a key store item that the edge reads
//! with no JSON parsing and no hashing.

use anyhow::{bail, Context as _, Result};
use botauth_core::keys::{compact_keys, parse_compact_keys, parse_jwks};

use crate::input::{emit_line, read_input};
use crate::Outcome;

/// `botauth compact-keys`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A public JWK or JWK Set (`-` = stdin). Every key must be usable: a key core would
    /// skip is an error here, not a silent omission.
    #[arg(value_name = "FILE|-")]
    file: String,
}

/// Print the compact key list of every key of the file, on one line.
pub fn run(args: &Args) -> Result<Outcome> {
    let bytes = read_input(&args.file).with_context(|| format!("cannot read {}", args.file))?;
    let bytes = crate::keys::as_jwks(&bytes).with_context(|| format!("bad JWKS {}", args.file))?;
    let (keys, skipped) = parse_jwks(&bytes).map_err(|e| anyhow::anyhow!("bad JWKS {}: {e}", args.file))?;
    if let Some(s) = skipped.first() {
        let kid = s.kid.as_deref().map(|k| format!(" (kid {k})")).unwrap_or_default();
        bail!("{}: key #{}{kid} is not usable: {}", args.file, s.index + 1, s.reason.code());
    }
    if keys.is_empty() {
        bail!("{}: the JWK Set has no keys", args.file);
    }
    let list = compact_keys(&keys);
    // What is written must read back as exactly these keys.
    if parse_compact_keys(list.as_bytes()).ok().as_deref() != Some(&keys[..]) {
        bail!("{}: the compact list does not read back as the same keys", args.file);
    }
    emit_line(&list)?;
    Ok(Outcome::Ok)
}
