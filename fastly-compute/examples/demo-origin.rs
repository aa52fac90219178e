//! The demo origin of `cargo xtask serve`: testkit's echo origin on 127.0.0.1 (port from the
//! first argument, default 7677), printing each request it receives with its verdict header.
//! It answers 200 with a JSON description of the request. `--quiet` (second argument)
//! prints nothing per request (benchmarks). Stops on Ctrl-C.

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use std::time::Duration;

    let port = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(7677);
    let origin = match botauth_testkit::origin::Origin::start_on(port) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("demo origin: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    println!("demo origin: listening on 127.0.0.1:{}", origin.port());
    let quiet = std::env::args().nth(2).is_some_and(|a| a == "--quiet");
    let mut shown = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if quiet {
            origin.clear();
            continue;
        }
        let seen = origin.seen();
        for req in seen.iter().skip(shown) {
            let verdict = req.header("botauth-verdict").unwrap_or("(none: unsigned)");
            println!("origin <- {} {}  botauth-verdict: {verdict}", req.method, req.target);
        }
        shown = seen.len();
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {}
