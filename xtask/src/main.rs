//! `cargo xtask <task>`: the project's tasks in Rust, so they run the same everywhere.
//!
//! - `test`: every test of the workspace (the README's test command; `.ci/run` calls it).
//! - `bench`: criterion and end-to-end benchmarks, written to `BENCHMARKS.md`.
//! - `fuzz [--seconds N] [--runs M] [--parallel J]`: every `cargo fuzz` target for N seconds
//!   or M execs each, J at a time (nightly).
//! - `soak [--seconds N]`: the mixed-traffic soak through Viceroy and Envoy (default 60 s each),
//!   written to `RELIABILITY.md`.
//! - `fixtures [--check]`: regenerate `fixtures/cases/*.json` (or check they are current).
//! - `interop`: only the interop step of `test` (npm `web-bot-auth`, PyPI
//!   `http-message-signatures`).
//! - `serve`: the edge service under Viceroy with demo keys and a demo origin.

mod bench;
mod envoy;
mod fastly;
mod fixtures;
mod fuzz;
mod interop;
mod soak;
mod util;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, r)) => (t.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match task {
        "test" => test(rest),
        "bench" => bench::run(rest),
        "fuzz" => fuzz::run(rest),
        "soak" => soak::run(rest),
        "fixtures" => fixtures::run(rest),
        "interop" => interop::test(),
        "serve" => fastly::serve(rest),
        "help" | "--help" | "-h" => {
            println!("usage: cargo xtask <test [--quick] | bench | fuzz [--seconds N] [--runs M] [--parallel J] | soak [--seconds N] | fixtures [--check] | interop | serve [--bench]>");
            Ok(())
        }
        other => Err(format!("unknown task `{other}` (try `cargo xtask help`)")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

type StepFn = fn() -> Result<(), String>;
type Step = (&'static str, StepFn);

/// Every test: lints, native tests on both Ed25519 backends, fixtures, wasm, interop and
/// the real hosts (Viceroy, Envoy). Each step prints its name; the first failure stops.
fn test(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut steps: Vec<Step> = vec![
        ("rustfmt", util::fmt_check),
        ("clippy", util::clippy),
        ("fixtures are current", fixtures::check),
        ("fuzz targets compile", fuzz::check_targets),
        ("native tests (ed25519-compact)", util::native_tests),
        ("core tests (ed25519-dalek)", util::dalek_tests),
    ];
    if quick {
        steps.push(("adapter tests that need no host (Kong shapes, examples)", util::adapter_native_tests));
    } else {
        steps.extend([
            ("core conformance in wasm32-unknown-unknown (node)", util::wasm_tests as StepFn),
            ("interop with independent implementations", interop::test),
            ("fastly compute service under Viceroy", fastly::test),
            ("proxy-wasm filter in Envoy", envoy::test),
        ]);
    }
    for (name, step) in steps {
        util::banner(name);
        step().map_err(|e| format!("{name}: {e}"))?;
    }
    println!("\nxtask test: all steps passed");
    Ok(())
}
