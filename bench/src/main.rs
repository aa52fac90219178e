//! The core verify loop as a WASI command: `cargo xtask bench` builds it for wasm32-wasip1
//! once per Ed25519 backend (`--features compact` / `--features dalek`) and runs it under
//! Viceroy (`viceroy run -C fastly.toml -- botauth-bench-wasm.wasm [SECONDS]`).
//!
//! It measures the same workload as the criterion bench (`core/benches/support/workload.rs`)
//! in interleaved rounds and prints one JSON line per benchmark (median of the rounds):
//! `{"backend":"ed25519-dalek","bench":"full_verify","ns_per_iter":123.4,"iters":10000}`.
//! The clock is the host's WASI monotonic clock.

use std::hint::black_box;
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../../core/benches/support/workload.rs"]
mod workload;

use workload::{parse_and_base, Workload, NOW};

/// Rounds per benchmark: the benchmarks take turns, round by round, and each reports the
/// median of its rounds, so that load from other processes hits all of them alike.
const ROUNDS: u32 = 10;

/// One benchmark's body.
type Bench<'a> = Box<dyn FnMut() -> bool + 'a>;

/// Run `f` in doubling batches until `budget` has passed; ns per iteration and iterations.
fn measure<T>(budget: Duration, f: &mut dyn FnMut() -> T) -> (f64, u64) {
    let mut batch = 1u64;
    let mut iters = 0u64;
    let start = Instant::now();
    loop {
        for _ in 0..batch {
            black_box(f());
        }
        iters += batch;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return (elapsed.as_nanos() as f64 / iters as f64, iters);
        }
        batch = (batch * 2).min(1 << 16);
    }
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let round = Duration::from_secs_f64(secs) / ROUNDS;
    let w = Workload::new();
    if let Err(e) = w.check() {
        eprintln!("bench workload is not what it claims: {e}");
        std::process::exit(1);
    }
    let backend = botauth_core::crypto::BACKEND;
    let mut benches: Vec<(&str, Bench<'_>)> = vec![
        ("unsigned", Box::new(|| botauth_core::verify(black_box(&w.unsigned), &w.keys, &w.policy, NOW).is_verified())),
        (
            "precheck_rejection",
            Box::new(|| botauth_core::verify(black_box(&w.bad_length), &w.keys, &w.policy, NOW).is_verified()),
        ),
        ("parse_and_base", Box::new(|| parse_and_base(black_box(&w.signed), &w.policy).is_some())),
        ("full_verify", Box::new(|| botauth_core::verify(black_box(&w.signed), &w.keys, &w.policy, NOW).is_verified())),
        (
            "ed25519",
            Box::new(|| botauth_core::crypto::verify(black_box(&w.public_key), w.base.as_bytes(), &w.signature)),
        ),
    ];
    // Warm-up: one short round, not recorded.
    for (_, f) in benches.iter_mut() {
        measure(round / 4, f.as_mut());
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); benches.len()];
    let mut iters = vec![0u64; benches.len()];
    for _ in 0..ROUNDS {
        for (i, (_, f)) in benches.iter_mut().enumerate() {
            let (ns, n) = measure(round, f.as_mut());
            samples[i].push(ns);
            iters[i] += n;
        }
    }
    for (i, (bench, _)) in benches.iter().enumerate() {
        let s = &mut samples[i];
        s.sort_by(f64::total_cmp);
        let median = (s[s.len() / 2] + s[(s.len() - 1) / 2]) / 2.0;
        println!(
            r#"{{"backend":"{backend}","bench":"{bench}","ns_per_iter":{median:.1},"iters":{},"rounds":{ROUNDS}}}"#,
            iters[i]
        );
    }
}
