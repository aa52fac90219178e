//! The verdict authentication (core `verdict_auth`): `check` never panics on any header or
//! request parts, accepts only timestamps inside the window, and what
//! `sign` makes, `check` accepts for the same parts and refuses for another path.
#![no_main]

use botauth_core::verdict_auth::{check, sign, AuthError, Binding, VerdictKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str, &str, &str, &str, u32)| {
    let (header, verdict, method, authority, path, t) = input;
    let Ok(key) = VerdictKey::new("k1", b"fuzz-secret-of-at-least-32-bytes") else { return };
    let binding = Binding { verdict, method, authority, path };
    let now = u64::from(t);
    // An arbitrary header: any outcome but a panic; an accepted one is inside the window.
    if let Ok(ok) = check(header, &binding, std::slice::from_ref(&key), now, 30) {
        assert!(ok.t + 30 >= now && ok.t <= now + 5, "accepted t={} at now={now}", ok.t);
    }
    match sign(&key, &binding, now) {
        Ok(made) => {
            assert!(check(&made, &binding, std::slice::from_ref(&key), now, 30).is_ok(), "round trip: {made}");
            let moved = format!("{path}/x");
            let elsewhere = Binding { path: &moved, ..binding };
            assert_eq!(check(&made, &elsewhere, &[key], now, 30), Err(AuthError::BadMac));
        }
        Err(e) => assert!(matches!(e, AuthError::InvalidBinding(_)), "{e:?}"),
    }
});
