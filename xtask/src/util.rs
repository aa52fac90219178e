//! Small helpers shared by the tasks: running commands, locating tools and the workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Where tools installed by the tasks live (gitignored): `.tools/`.
pub fn tools_dir() -> PathBuf {
    root().join(".tools")
}

/// Print a step header.
pub fn banner(name: &str) {
    println!("\n==> {name}");
}

/// Run `cmd`, inheriting stdio; error if it fails.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}

/// `cargo` with the workspace root as working directory.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Whether `bin` is on PATH (or is an existing path).
pub fn have(bin: &str) -> bool {
    if bin.contains('/') {
        return Path::new(bin).exists();
    }
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file())).unwrap_or(false)
}

pub fn fmt_check() -> Result<(), String> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))
}

/// Clippy with warnings denied: the native workspace, core on the other backend, the two
/// adapters for their real target, and the filter's `bench-phases` build (bench-only code
/// that no test compiles).
pub fn clippy() -> Result<(), String> {
    ensure_target("wasm32-wasip1")?;
    let scopes: [&[&str]; 4] = [
        &["--workspace", "--exclude", "botauth-fastly", "--exclude", "botauth-proxy-wasm"],
        &["-p", "botauth-core", "--no-default-features", "--features", "ed25519-dalek"],
        &["--target", "wasm32-wasip1", "-p", "botauth-fastly", "-p", "botauth-proxy-wasm"],
        &["--target", "wasm32-wasip1", "-p", "botauth-proxy-wasm", "--features", "bench-phases"],
    ];
    for scope in scopes {
        run(cargo().arg("clippy").args(scope).args(["--all-targets", "--", "-D", "warnings"]))?;
    }
    Ok(())
}

pub fn native_tests() -> Result<(), String> {
    run(cargo().args(["test", "--workspace", "--exclude", "botauth-fastly", "--exclude", "botauth-proxy-wasm"]))
}

pub fn dalek_tests() -> Result<(), String> {
    run(cargo().args(["test", "-p", "botauth-core", "--no-default-features", "--features", "ed25519-dalek"]))
}

/// The conformance suite compiled to wasm32-unknown-unknown and run by
/// `wasm-bindgen-test-runner` under node, with each backend.
pub fn wasm_tests() -> Result<(), String> {
    ensure_target("wasm32-unknown-unknown")?;
    ensure_wasm_bindgen()?;
    for features in
        [&["--features", "ed25519-compact"][..], &["--no-default-features", "--features", "ed25519-dalek"][..]]
    {
        run(cargo()
            .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", "wasm-bindgen-test-runner")
            .args(["test", "-p", "botauth-core", "--target", "wasm32-unknown-unknown", "--test", "conformance"])
            .args(features))?;
    }
    Ok(())
}

/// The version of package `name` in a Cargo.lock.
fn lock_version(lock: &str, name: &str) -> Option<String> {
    let header = format!("name = \"{name}\"");
    let mut lines = lock.lines().skip_while(|l| *l != header);
    lines.next()?;
    lines.next()?.strip_prefix("version = \"")?.strip_suffix('"').map(String::from)
}

/// `rustup target add` when the target is missing.
pub fn ensure_target(target: &str) -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == target))
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    banner(&format!("installing the {target} target (rustup)"));
    run(Command::new("rustup").args(["target", "add", target]))
}

/// wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock (the test runner and
/// the library must match), installed with `cargo install` when missing or different.
fn ensure_wasm_bindgen() -> Result<(), String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let version = lock_version(&lock, "wasm-bindgen").ok_or("Cargo.lock has no wasm-bindgen package")?;
    let current = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().nth(1).map(String::from))
        .ok()
        .flatten();
    if have("wasm-bindgen-test-runner") && current.as_deref() == Some(version.as_str()) {
        return Ok(());
    }
    banner(&format!("installing wasm-bindgen-cli {version} (matches Cargo.lock)"));
    // --locked first; the registry here may lack a locked transitive version.
    run(Command::new("cargo").args(["install", "wasm-bindgen-cli", "--locked", "--version", &version]))
        .or_else(|_| run(Command::new("cargo").args(["install", "wasm-bindgen-cli", "--version", &version])))
}

/// The filter's request-reading layer fed Kong-shaped input, and the shipped examples:
/// no Envoy needed (the full run covers them inside `envoy::test`).
pub fn adapter_native_tests() -> Result<(), String> {
    run(cargo().args(["test", "-p", "botauth-proxy-wasm", "--lib", "--test", "kong_shape", "--test", "examples"]))
}

/// `wrk` (the load tool of the adapter benches), installed with apt-get when missing.
pub fn ensure_wrk() -> Result<(), String> {
    if have("wrk") {
        return Ok(());
    }
    banner("installing wrk (apt-get)");
    run(Command::new("apt-get").args(["install", "-y", "-q", "wrk"]))
        .map_err(|e| format!("{e}; install wrk (Debian/Ubuntu: apt-get install wrk)"))
}

/// `bin` from Debian's package `package`, installed with apt-get when missing (the package
/// lists are refreshed first when the install fails, as on a fresh machine).
pub fn ensure_apt(bin: &str, package: &str) -> Result<(), String> {
    if have(bin) {
        return Ok(());
    }
    banner(&format!("installing {bin} (apt-get install {package})"));
    let install = || run(Command::new("apt-get").args(["install", "-y", "-q", "--no-install-recommends", package]));
    install()
        .or_else(|_| run(Command::new("apt-get").args(["update", "-q"])).and_then(|()| install()))
        .map_err(|e| format!("{e}; install {bin} (Debian/Ubuntu: apt-get install {package})"))?;
    if have(bin) {
        Ok(())
    } else {
        Err(format!("{bin} is not on PATH after apt-get install {package}"))
    }
}

/// A command's trimmed standard output (empty when it cannot run), for machine notes.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::lock_version;

    #[test]
    fn reads_a_locked_version() {
        let lock = "[[package]]\nname = \"wasm-bindgen-shared\"\nversion = \"9.9.9\"\n\n[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n";
        assert_eq!(lock_version(lock, "wasm-bindgen").as_deref(), Some("0.2.130"));
        assert_eq!(lock_version(lock, "serde"), None);
    }
}
