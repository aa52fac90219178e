//! The shipped examples are valid for the filter: the plugin configurations in
//! `examples/envoy/*.yaml` and `examples/kong/kong.yml` are accepted as they are, the Envoy
//! filter chains strip exactly the headers the filter sends, the Kong example fetches its
//! directories over verified TLS, and the Kong `config_schema`
//! (`examples/kong/botauth.meta.json`) names exactly the members the filter accepts, at
//! every level.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;

use botauth_core::Mode;
use botauth_proxy_wasm::config::{self, Config};
use botauth_proxy_wasm::request::AuthoritySource;
use serde_json::Value;

const ENVOY: &str = include_str!("../../examples/envoy/envoy.yaml");
const ENVOY_RATELIMIT: &str = include_str!("../../examples/envoy/local-ratelimit.yaml");
const ENVOY_GLOBAL: &str = include_str!("../../examples/envoy/global-ratelimit.yaml");
const ENVOY_SOURCES: &str = include_str!("../../examples/envoy/source-limits.yaml");
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

fn envoy_config(yaml: &str) -> Config {
    let b = block(yaml);
    let json = b.trim_start().strip_prefix("value: |").unwrap_or_else(|| panic!("not a block scalar: {b}"));
    parse(json)
}

#[test]
fn envoy_example_configuration_is_valid() {
    let c = envoy_config(ENVOY);
    assert_eq!(c.policy.mode, Mode::Enforce);
    assert_eq!(c.testing_fixed_now, None, "the example must run on the real clock");
    assert!(ENVOY.contains("runtime: envoy.wasm.runtime.v8"));
    let dirs = c.directories.as_ref().unwrap_or_else(|| panic!("the example allow-lists a directory"));
    for a in &dirs.agents {
        let upstream = a.upstream.as_deref().unwrap_or_default();
        assert!(ENVOY.contains(&format!("  - name: {upstream}\n")), "no cluster {upstream:?} for {}", a.agent.as_str());
        assert_eq!(a.directory.scheme(), "https");
    }
    // The directory cluster verifies the agent's certificate (SNI, CA bundle, name).
    assert!(
        ENVOY.contains("sni: chatgpt.com")
            && ENVOY.contains("trusted_ca:")
            && ENVOY.contains("matcher: { exact: chatgpt.com }")
    );
    // The rate-limit example runs the same filter configuration.
    assert_eq!(block(ENVOY), block(ENVOY_RATELIMIT), "local-ratelimit.yaml carries the same plugin configuration");
    assert_eq!(block(ENVOY), block(ENVOY_GLOBAL), "global-ratelimit.yaml carries the same plugin configuration");
    assert_eq!(block(ENVOY), block(ENVOY_SOURCES), "source-limits.yaml carries the same plugin configuration");
    // The per-source limiter runs before the filter (that is its point) and skips unsigned requests.
    let limiter = ENVOY_SOURCES.find("# botauth-source-limits: begin").unwrap_or(usize::MAX);
    assert!(limiter < ENVOY_SOURCES.find("# botauth-filter: begin").unwrap_or(0));
    assert!(ENVOY_SOURCES.contains("max_dynamic_descriptors:") && ENVOY_SOURCES.contains("SkipFilter"));
}

/// The early header mutation, before any filter, removes exactly the headers the filter
/// sends upstream; and the rate-limit example's descriptors name labels the filter sets.
#[test]
fn envoy_chains_strip_the_filters_headers() {
    for yaml in [ENVOY, ENVOY_RATELIMIT, ENVOY_GLOBAL, ENVOY_SOURCES] {
        let c = envoy_config(yaml);
        let removed: BTreeSet<&str> = yaml.lines().filter_map(|l| l.trim().strip_prefix("- remove: ")).collect();
        // The verdict authentication is stripped whether or not it is configured.
        let auth = Some(botauth_core::verdict_auth::HEADER);
        let sent: BTreeSet<&str> =
            [Some(c.verdict_header.as_str()), auth, c.agent_header.as_deref()].into_iter().flatten().collect();
        assert_eq!(removed, sent);
        // The connection manager's early header mutation does it, before routing and any
        // filter, in the listener that runs the filter; and nothing else strips them.
        let listener = yaml.find("# botauth-listener: begin").unwrap_or(usize::MAX);
        let early = yaml.find("          early_header_mutation_extensions:\n").unwrap_or(usize::MAX);
        let filters = yaml.find("          http_filters:\n").unwrap_or(0);
        assert!(listener < early && early < filters, "the strip is the listener's early header mutation");
        assert_eq!(yaml.matches("early_header_mutation.header_mutation.v3.HeaderMutation").count(), 1);
        assert!(!yaml.contains("envoy.filters.http.header_mutation"), "one strip, the early one");
    }
    let c = envoy_config(ENVOY_RATELIMIT);
    let labels: BTreeSet<String> = c
        .labels
        .values()
        .cloned()
        .chain(c.directories.iter().flat_map(|d| d.agents.iter().map(|a| a.label.clone())))
        .collect();
    let described: BTreeSet<String> = ENVOY_RATELIMIT
        .lines()
        .filter_map(|l| l.split("{ key: botauth_agent, value: ").nth(1))
        .filter_map(|v| v.split(' ').next().map(String::from))
        .collect();
    assert!(!described.is_empty() && described.is_subset(&labels), "{described:?} vs labels {labels:?}");
    let header = c.agent_header.unwrap_or_default();
    for yaml in [ENVOY_RATELIMIT, ENVOY_GLOBAL] {
        assert!(yaml.contains(&format!("header_name: {header}, descriptor_key: botauth_agent")));
    }
}

#[test]
fn kong_example_configuration_is_valid() {
    let b = block(KONG_YML);
    let json = b.trim_start().strip_prefix("config:").unwrap_or_else(|| panic!("no config: {b}"));
    let c = parse(json);
    assert_eq!(c.authority, AuthoritySource::Host, "Kong's :authority is not the client's Host");
    assert_eq!(c.testing_fixed_now, None);
    for (ns, what) in
        [(c.replay.map(|r| r.namespace).unwrap_or_default(), "replay"), (c.cache.namespace.clone(), "directory_cache")]
    {
        assert!(
            KONG_CONF.lines().any(|l| l.starts_with(&format!("nginx_wasm_shm_kv_{ns} ="))),
            "kong.conf must define the shared-memory zone of {what}.namespace {ns:?}"
        );
    }
    assert!(KONG_CONF.contains("\nwasm = on\n") && KONG_CONF.contains("\nwasm_filters_path = "));
    assert!(KONG_YML.contains("filter_chains:") && KONG_YML.contains("- name: botauth\n"));
    // Directories on Kong: `upstream` is host:port, and Kong's TLS verification (off by
    // default in ngx_wasm_module) is on, with a CA bundle.
    let dirs = c.directories.as_ref().unwrap_or_else(|| panic!("the Kong example allow-lists a directory"));
    for a in &dirs.agents {
        let upstream = a.upstream.as_deref().unwrap_or_default();
        let port = upstream.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
        assert_eq!(port, Some(443), "{upstream:?} must be host:443 for an https directory");
        assert_eq!(upstream.split(':').next(), Some(a.authority()), "the upstream is the directory's host");
        let headers = botauth_proxy_wasm::directory::fetch_headers(a, None);
        assert!(headers.contains(&(":scheme".into(), "https".into())), "Kong takes TLS from :scheme: {headers:?}");
    }
    for line in
        ["nginx_wasm_tls_verify_cert = on", "nginx_wasm_tls_verify_host = on", "nginx_wasm_tls_trusted_certificate = /"]
    {
        assert!(KONG_CONF.lines().any(|l| l.starts_with(line)), "kong.conf must set {line:?}");
    }
}

/// The members the filter accepts in an object, read from serde's "expected one of" list.
fn accepted(make: impl Fn(Value) -> Value) -> BTreeSet<String> {
    let json = make(serde_json::json!({ "zz_unknown": 1 })).to_string();
    let err = config::parse(json.as_bytes()).err().map(|e| e.to_string()).unwrap_or_default();
    // "expected one of `a`, `b`, `c`", or with two members "expected `a` or `b`".
    let list = err.split("expected").nth(1).unwrap_or_else(|| panic!("{err}"));
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
    for member in ["directory_cache", "log", "metrics", "verdict_auth"] {
        let got = accepted(|x| with(serde_json::json!({ member: x })));
        assert_eq!(schema_members(&schema["properties"][member]), got, "{member}");
    }
    let dirs = &schema["properties"]["directories"];
    let got = accepted(|x| with(serde_json::json!({ "directories": x })));
    assert_eq!(schema_members(dirs), got, "directories");
    // `backend` is accepted as another name of `upstream` (the Fastly spelling); the Kong
    // schema advertises `upstream` only.
    let mut got = accepted(|x| with(serde_json::json!({ "directories": { "agents": [x] } })));
    got.remove("backend");
    assert_eq!(schema_members(&dirs["properties"]["agents"]["items"]), got, "directories.agents[]");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["anyOf"], serde_json::json!([{ "required": ["keys"] }, { "required": ["directories"] }]));
}

/// The matcher sends exactly the User-Agents the plugin's `claims` ask about to the filter:
/// one case-insensitive `contains` per pattern, in every Envoy example.
#[test]
fn envoy_matchers_follow_the_claims_patterns() {
    for yaml in [ENVOY, ENVOY_RATELIMIT, ENVOY_GLOBAL, ENVOY_SOURCES] {
        let b = block(yaml);
        let json = b.trim_start().strip_prefix("value: |").unwrap_or_else(|| panic!("not a block scalar: {b}"));
        let config: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        let mut patterns: Vec<String> = config["claims"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["user_agent"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p.as_str().map(str::to_ascii_lowercase))
            .collect();
        let mut matched: Vec<String> = yaml
            .lines()
            .filter_map(|l| l.split("value_match: { contains: \"").nth(1))
            .filter_map(|rest| rest.strip_suffix("\", ignore_case: true }").map(String::from))
            .collect();
        patterns.sort();
        matched.sort();
        assert!(!patterns.is_empty());
        assert_eq!(matched, patterns, "the matcher's User-Agent predicates and the claims' patterns differ");
    }
}
