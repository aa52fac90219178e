//! The Proxy-Wasm filter's plugin configuration (`botauth_proxy_wasm::config::parse`, what
//! Envoy and Kong hand the root context): any bytes. Never a panic; an accepted
//! configuration is one the filter can run with (usable keys or directories).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = botauth_proxy_wasm::config::parse(data) {
        assert!(
            !config.keyring.is_empty() || config.directories.is_some(),
            "a configuration with neither keys nor directories is refused"
        );
    }
});
