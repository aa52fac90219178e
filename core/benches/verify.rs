//! `cargo bench -p botauth-core`: what verification costs, and what the peers cost for the
//! same request in the same run.
//!
//! - `unsigned`: an ordinary request (target ≤ 1 µs).
//! - `unsigned_with_claims`: the same visitor where the operator lists agents that always
//!   sign (`claims`): the two lookups, then the `User-Agent` and `Signature-Agent` check.
//! - `claim_rejection`: an unsigned request whose `User-Agent` claims ChatGPT.
//! - `precheck_rejection`: a signed request whose signature is 63 bytes (target ≤ 2 µs).
//! - `parse_and_base`: everything but key lookup and Ed25519 (target ≤ 10 % of `full_verify`).
//! - `full_verify/<backend>`: `verify` with the compiled-in backend (`ed25519-compact` by
//!   default; run again with `--no-default-features --features ed25519-dalek` for the other).
//! - `ed25519/<crate>`: one raw Ed25519 verify of the same base with each backend crate,
//!   side by side, so both backends are compared in one run.
//! - `peer/web-bot-auth`, `peer/httpsig`: the same request verified by Cloudflare's
//!   `web-bot-auth` crate and by `httpsig`, including their parsing and base building.
//!   `httpsig` only verifies signature parameters in its own serialisation order, so it
//!   gets the same signature with the parameters reordered, and core is measured on that
//!   request too (`full_verify_httpsig_order/<backend>`).
//!
//! Every setup first checks that the benchmark measures what its name says (the request
//! verifies, or is rejected for the stated reason) and panics otherwise.

#[cfg(not(target_arch = "wasm32"))]
#[path = "support/peers.rs"]
mod peers;
#[cfg(not(target_arch = "wasm32"))]
#[allow(dead_code)]
#[path = "support/workload.rs"]
mod workload;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::hint::black_box;
    use std::time::Duration;

    use criterion::Criterion;

    use crate::peers;
    use crate::workload::{parse_and_base, verify_with_claims, Workload, NOW};

    pub fn benches(c: &mut Criterion) {
        let w = Workload::new();
        if let Err(e) = w.check() {
            panic!("bench workload is not what it claims: {e}");
        }
        let backend = botauth_core::crypto::BACKEND;

        c.bench_function("unsigned", |b| {
            b.iter(|| botauth_core::verify(black_box(&w.unsigned), &w.keys, &w.policy, NOW))
        });
        c.bench_function("unsigned_with_claims", |b| b.iter(|| verify_with_claims(&w, black_box(&w.unsigned))));
        c.bench_function("claim_rejection", |b| b.iter(|| verify_with_claims(&w, black_box(&w.claiming))));
        c.bench_function("precheck_rejection", |b| {
            b.iter(|| botauth_core::verify(black_box(&w.bad_length), &w.keys, &w.policy, NOW))
        });
        c.bench_function("parse_and_base", |b| b.iter(|| parse_and_base(black_box(&w.signed), &w.policy)));
        c.bench_function(&format!("full_verify/{backend}"), |b| {
            b.iter(|| botauth_core::verify(black_box(&w.signed), &w.keys, &w.policy, NOW))
        });

        let compact_pk = ed25519_compact::PublicKey::new(w.public_key);
        let compact_sig = ed25519_compact::Signature::new(w.signature);
        assert!(compact_pk.verify(w.base.as_bytes(), &compact_sig).is_ok());
        c.bench_function("ed25519/ed25519-compact", |b| {
            b.iter(|| {
                let pk = ed25519_compact::PublicKey::new(black_box(w.public_key));
                pk.verify(black_box(w.base.as_bytes()), &ed25519_compact::Signature::new(w.signature)).is_ok()
            })
        });
        let dalek_sig = ed25519_dalek::Signature::from_bytes(&w.signature);
        let dalek_ok = ed25519_dalek::VerifyingKey::from_bytes(&w.public_key)
            .map(|pk| pk.verify_strict(w.base.as_bytes(), &dalek_sig).is_ok());
        assert_eq!(dalek_ok.ok(), Some(true));
        c.bench_function("ed25519/ed25519-dalek", |b| {
            b.iter(|| {
                ed25519_dalek::VerifyingKey::from_bytes(black_box(&w.public_key))
                    .map(|pk| pk.verify_strict(black_box(w.base.as_bytes()), &dalek_sig).is_ok())
            })
        });

        let wba = peers::WebBotAuth::new(&w);
        if let Err(e) = wba.verify(&w.signed) {
            panic!("web-bot-auth does not verify the bench request: {e}");
        }
        c.bench_function("peer/web-bot-auth", |b| b.iter(|| wba.verify(black_box(&w.signed)).is_ok()));
        // httpsig rebuilds `@signature-params` in its own parameter order, so it cannot
        // verify `signed` (a quirk, checked here); it gets the same signature with its order.
        let hs = peers::HttpSig::new(&w);
        assert!(
            hs.verify(&w.signed).is_err(),
            "httpsig now verifies received parameter order: update BENCHMARKS notes"
        );
        if let Err(e) = hs.verify(&w.signed_params_reordered) {
            panic!("httpsig does not verify the bench request: {e}");
        }
        c.bench_function("peer/httpsig", |b| b.iter(|| hs.verify(black_box(&w.signed_params_reordered)).is_ok()));
        c.bench_function(&format!("full_verify_httpsig_order/{backend}"), |b| {
            b.iter(|| botauth_core::verify(black_box(&w.signed_params_reordered), &w.keys, &w.policy, NOW))
        });
    }

    pub fn config() -> Criterion {
        let secs = std::env::var("BOTAUTH_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
        Criterion::default()
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs_f64(secs))
            .sample_size(50)
            .configure_from_args()
    }
}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_group! {
    name = benches;
    config = native::config();
    targets = native::benches
}
#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(benches);

/// The peers are native dev-dependencies; on wasm the wasip1 bench program (`bench/`) runs
/// core alone.
#[cfg(target_arch = "wasm32")]
fn main() {}
