//! `botauth keygen`: a new Ed25519 key (RFC 8032 §5.1.5) as a private JWK (RFC 8037 §2)
//! with `kid` = its RFC 7638 thumbprint, and optionally the public JWK Set.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};

use crate::input::emit_line;
use crate::keys::{public_jwks, SigningKey};
use crate::Outcome;

/// `botauth keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the private JWK to FILE (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Also write the public JWK Set to FILE (what verifiers and directories publish).
    #[arg(long, value_name = "FILE")]
    jwks_out: Option<PathBuf>,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

/// Generate, then print or write.
pub fn run(args: &Args) -> Result<Outcome> {
    for path in [&args.out, &args.jwks_out].into_iter().flatten() {
        if path.exists() && !args.force {
            bail!("{} exists; pass --force to overwrite", path.display());
        }
    }
    let key = SigningKey::generate()?;
    let private = key.private_jwk()? + "\n";
    if let Some(path) = &args.jwks_out {
        let jwks = public_jwks(std::slice::from_ref(&key))? + "\n";
        std::fs::write(path, jwks).with_context(|| format!("cannot write {}", path.display()))?;
    }
    match &args.out {
        Some(path) => {
            write_private(path, private.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("botauth: wrote private key {} (keyid {})", path.display(), key.thumbprint);
        }
        None => emit_line(private.trim_end())?,
    }
    Ok(Outcome::Ok)
}

/// Private keys are readable by their owner only.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}
