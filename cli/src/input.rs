//! Files, stdin and stdout.

use std::io::{Read as _, Write as _};

use anyhow::{Context as _, Result};

/// The bytes of `path`, or of stdin when `path` is `-`.
pub fn read_input(path: &str) -> Result<Vec<u8>> {
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin().lock().read_to_end(&mut buf).context("cannot read stdin")?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(anyhow::Error::from)
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
pub fn emit(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// [`emit`] a line of text.
pub fn emit_line(line: &str) -> Result<()> {
    emit(format!("{line}\n").as_bytes())
}

/// Unix seconds from the system clock.
pub fn now() -> Result<u64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs())
}
