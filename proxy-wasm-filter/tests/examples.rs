//! The shipped examples are valid for the filter: the plugin configurations in
//! `examples/envoy/envoy.yaml` and `examples/kong/kong.yml` are accepted as they are, and
//! the Kong `config_schema` (`examples/kong/botauth.meta.json`) names exactly the members
//! the filter accepts, at every level.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;

use botauth_core::Mode;
use botauth_proxy_wasm::config::{self, Config};
use botauth_proxy_wasm::request::AuthoritySource;
use serde_json::Value;

const ENVOY: &str = include_str!("../../examples/envoy/envoy.yaml");
const KONG_YML: &str = include_str!("../../examples/kong/kong.yml");
const KONG_CONF: &str = include_str!("../../examples/kong/kong.conf");
const META: &str = include_str!("../../examples/kong/botauth.meta.json");

/// The lines between `# botauth-config: begin` and `# botauth-config: end`.
fn block(text: &str) -> String {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim() == "# botauth-config: begin" {
            inside = true;
        } else if line.trim() == "# botauth-config: end" {
            return out.join("\n");
        } else if inside {
            out.push(line);
        }
    }
    panic!("no botauth-config block");
}

fn parse(json: &str) -> Config {
    config::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

#[test]
fn envoy_example_configuration_is_valid() {
    let b = block(ENVOY);
    let json = b.trim_start().strip_prefix("value: |").unwrap_or_else(|| panic!("not a block scalar: {b}"));
    let c = parse(json);
    assert_eq!(c.policy.mode, Mode::Enforce);
    assert_eq!(c.testing_fixed_now, None, "the example must run on the real clock");
    assert!(ENVOY.contains("runtime: envoy.wasm.runtime.v8"));
}

#[test]
fn kong_example_configuration_is_valid() {
    let b = block(KONG_YML);
    let json = b.trim_start().strip_prefix("config:").unwrap_or_else(|| panic!("no config: {b}"));
    let c = parse(json);
    assert_eq!(c.authority, AuthoritySource::Host, "Kong's :authority is not the client's Host");
    assert_eq!(c.testing_fixed_now, None);
    let ns = c.replay.map(|r| r.namespace).unwrap_or_default();
    assert!(
        KONG_CONF.lines().any(|l| l.starts_with(&format!("nginx_wasm_shm_kv_{ns} ="))),
        "kong.conf must define the shared-memory zone of replay.namespace {ns:?}"
    );
    assert!(KONG_CONF.contains("\nwasm = on\n") && KONG_CONF.contains("\nwasm_filters_path = "));
    assert!(KONG_YML.contains("filter_chains:") && KONG_YML.contains("- name: botauth\n"));
}

/// The members the filter accepts in an object, read from serde's "expected one of" list.
fn accepted(make: impl Fn(Value) -> Value) -> BTreeSet<String> {
    let json = make(serde_json::json!({ "zz_unknown": 1 })).to_string();
    let err = config::parse(json.as_bytes()).err().map(|e| e.to_string()).unwrap_or_default();
    let list = err.split("expected one of").nth(1).unwrap_or_else(|| panic!("{err}"));
    list.split('`').skip(1).step_by(2).map(String::from).collect()
}

fn schema_members(schema: &Value) -> BTreeSet<String> {
    schema["properties"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

#[test]
fn kong_schema_matches_the_filter() {
    let meta: Value = serde_json::from_str(META).unwrap_or_else(|e| panic!("{e}"));
    let schema = &meta["config_schema"];
    let keys = serde_json::json!({"*": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}});
    let with = |extra: Value| {
        let mut v = extra;
        if v.get("keys").is_none() {
            v["keys"] = keys.clone();
        }
        v
    };
    let top = accepted(|x| {
        let mut v = with(serde_json::json!({}));
        if let (Some(o), Some(x)) = (v.as_object_mut(), x.as_object()) {
            o.extend(x.clone());
        }
        v
    });
    assert_eq!(schema_members(schema), top, "top level");
    let policy = accepted(|x| with(serde_json::json!({ "policy": x })));
    assert_eq!(schema_members(&schema["properties"]["policy"]), policy, "policy");
    let limits = accepted(|x| with(serde_json::json!({ "policy": { "limits": x } })));
    assert_eq!(schema_members(&schema["properties"]["policy"]["properties"]["limits"]), limits, "policy.limits");
    let replay = accepted(|x| with(serde_json::json!({ "replay": x })));
    assert_eq!(schema_members(&schema["properties"]["replay"]), replay, "replay");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], serde_json::json!(["keys"]));
}
