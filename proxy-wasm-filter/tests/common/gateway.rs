//! An Envoy (two workers) from `examples/envoy/envoy.yaml` whose filter allow-lists agents
//! served by local directory servers, shared by `envoy_directories.rs` and
//! `envoy_faults.rs`, with the assertions they make on answers.

use botauth_testkit::directory::{Behaviour, DirectoryServer};
use botauth_testkit::origin::Origin;
use botauth_testkit::raw_http::{self, Response};
use serde_json::{json, Value};

use super::{cluster, ports, render, seen_headers, values, Envoy, Layout, Listener, EXAMPLE};

pub fn get(port: u16, headers: &[(String, String)]) -> Response {
    raw_http::send(port, "GET", "/resource", headers, None).unwrap_or_else(|e| panic!("request: {e}"))
}

pub fn code(res: &Response) -> String {
    res.json().ok().and_then(|p| p["code"].as_str().map(String::from)).unwrap_or_default()
}

/// A request that verified: the origin saw the filter's verdict and agent headers.
pub fn assert_verified(res: &Response, agent: &str, label: &str) {
    assert_eq!(res.status, 200, "{}", res.text());
    let seen = seen_headers(res);
    let verdict = values(&seen, "botauth-verdict");
    assert_eq!(verdict.len(), 1, "{seen:?}");
    assert!(verdict[0].starts_with(&format!("verified;agent=\"{agent}\"")), "{verdict:?}");
    assert_eq!(values(&seen, "botauth-agent"), [label]);
}

pub fn assert_rejected(res: &Response, status: u16, reason: &str) {
    assert_eq!((res.status, code(res).as_str()), (status, reason), "{}", res.text());
}

/// One allow-listed agent served by a local directory server.
pub struct Agent {
    pub uri: &'static str,
    pub label: &'static str,
    pub server: DirectoryServer,
}

impl Agent {
    pub fn new(uri: &'static str, label: &'static str, behaviour: Behaviour) -> Self {
        let server = DirectoryServer::start(behaviour).unwrap_or_else(|e| panic!("directory server: {e}"));
        Self { uri, label, server }
    }
}

/// A running Envoy, its echo origin and its listener port.
pub struct Gateway {
    pub envoy: Envoy,
    pub origin: Origin,
    pub port: u16,
}

/// An Envoy (two workers) whose filter allow-lists `agents`, with `directories` and
/// `directory_cache` members merged in.
pub fn gateway(agents: &[&Agent], directories: Value, cache: Value) -> Gateway {
    gateway_with(agents, directories, cache, json!({}), |yaml| yaml)
}

/// [`gateway`] with more top-level members of the plugin configuration (`extra`) and a last
/// edit of the rendered Envoy configuration (`edit`).
pub fn gateway_with(
    agents: &[&Agent],
    directories: Value,
    cache: Value,
    extra: Value,
    edit: impl FnOnce(String) -> String,
) -> Gateway {
    let origin = Origin::start().unwrap_or_else(|e| panic!("origin: {e}"));
    let (admin, port) = match ports(2)[..] {
        [a, p] => (a, p),
        _ => unreachable!(),
    };
    let mut list = Vec::new();
    let mut clusters = String::new();
    for (i, a) in agents.iter().enumerate() {
        let upstream = format!("directory_{i}");
        list.push(json!({
            "agent": a.uri,
            "directory": format!("{}/.well-known/http-message-signatures-directory", a.server.base_url()),
            "upstream": upstream,
            "label": a.label,
        }));
        clusters.push_str(&cluster(&upstream, a.server.port()));
    }
    let mut dirs = json!({ "agents": list });
    merge(&mut dirs, directories);
    let mut cache_config = json!({ "tick_ms": 50 });
    merge(&mut cache_config, cache);
    let mut config = json!({
        "directories": dirs,
        "directory_cache": cache_config,
        "policy": { "allow_test_keys": true },
        "scheme": "https",
    });
    merge(&mut config, extra);
    botauth_proxy_wasm::config::parse(config.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let listeners = [Listener::new(port, config)];
    let yaml =
        edit(render(&Layout { example: EXAMPLE, admin, origin: origin.port(), listeners: &listeners, clusters }));
    let envoy = Envoy::start_with(&yaml, admin, &[port], 2);
    Gateway { envoy, origin, port }
}

pub fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}
