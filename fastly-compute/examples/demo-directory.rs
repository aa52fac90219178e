//! The demo key directory of `cargo xtask serve`: testkit's directory server on 127.0.0.1
//! (port from the first argument, default 7678; the `demo_directory` backend in
//! `fastly.toml`) serving `demo/demo-agent-directory.json` — the public key of the TEST ONLY
//! demo agent key `demo/demo-agent-TEST-ONLY.jwk`, which is in no Config Store — as the
//! directory of `https://demo-agent.test`, with `Cache-Control: max-age=300`. Prints each
//! request it receives. Stops on Ctrl-C.

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use std::time::Duration;

    use botauth_testkit::directory::{Behaviour, DirectoryServer};

    let port = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(7678);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/demo-agent-directory.json");
    let jwks = match std::fs::read_to_string(path) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("demo directory: cannot read {path}: {e}");
            std::process::exit(1);
        }
    };
    let server = match DirectoryServer::start_on(port, Behaviour::jwks(&jwks, 300)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo directory: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    println!("demo directory: serving the demo agent's key on {}", server.base_url());
    let mut shown = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let hits = server.hits();
        for hit in hits.iter().skip(shown) {
            let revalidate = hit.header("if-none-match").map(|e| format!("  if-none-match: {e}")).unwrap_or_default();
            println!(
                "directory <- {} {}  host: {}{revalidate}",
                hit.method,
                hit.target,
                hit.header("host").unwrap_or("-")
            );
        }
        shown = hits.len();
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {}
