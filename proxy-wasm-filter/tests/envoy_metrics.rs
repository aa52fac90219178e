//! The filter's metrics as an operator's Prometheus sees them: a real Envoy (1.40, V8, two
//! workers) started from `examples/envoy/envoy.yaml` (its `stats_tags` included) takes a
//! mixed load — unsigned, verified from a pinned key and from a live directory, tampered,
//! not yet valid, expired, unknown key, replayed, and an agent whose directory is down — and
//! its `/stats/prometheus` is scraped. The scraped counts must match the load, and every
//! metric, label and label value that the shipped alert rules
//! (`examples/prometheus/botauth-alerts.yml`) and dashboard (`examples/grafana/botauth.json`)
//! query must be in that scrape: no rule or panel may reference what the filter does not emit.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use botauth_testkit::directory::{Behaviour, DirectoryServer};
use botauth_testkit::origin::Origin;
use botauth_testkit::raw_http::{self, Response};
use common::{cluster, jwks, ports, render, root, signed, signed_at, unix_now, Envoy, Key, Layout, Listener, EXAMPLE};
use serde_json::{json, Value};

fn get(port: u16, headers: &[(String, String)]) -> Response {
    raw_http::send(port, "GET", "/tickets/42?seat=7", headers, None).unwrap_or_else(|e| panic!("request: {e}"))
}

/// One scraped sample: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The Prometheus text exposition format: `name{k="v",…} value` lines and `#` comments
/// (label values here never hold `",` or escapes: they are labels and reason codes).
fn parse_scrape(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            if let Some((k, v)) = pair.split_once("=\"") {
                map.insert(k.to_string(), v.trim_end_matches('"').to_string());
            }
        }
        out.push(Sample { name: name.into(), labels: map, value: value.parse().unwrap_or(f64::NAN) });
    }
    out
}

/// The value of the one sample of `name` with exactly these labels (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    samples.iter().find(|s| s.name == name && s.labels == want).map_or(0.0, |s| s.value)
}

/// One label matcher of a selector: (label, operator, value).
type Matcher = (String, String, String);

/// What a PromQL expression refers to.
#[derive(Debug, Default, PartialEq)]
struct Refs {
    /// Metric names, each with its label matchers.
    metrics: Vec<(String, Vec<Matcher>)>,
    /// Labels named in `by (…)`, `without (…)`, `on (…)`, `ignoring (…)`.
    grouping: BTreeSet<String>,
}

/// Operators and aggregations (an aggregation may come before `by (…)`, not `(`).
const KEYWORDS: &[&str] = &[
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// A small PromQL scanner: enough of the grammar to find every metric name, its matchers, and
/// the grouping labels (strings, durations, numbers, functions and Grafana `$variables` are
/// skipped).
fn promql_refs(expr: &str) -> Refs {
    let b = expr.as_bytes();
    let mut refs = Refs::default();
    let mut i = 0;
    let ident = |i: usize| {
        let mut j = i;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b':') {
            j += 1;
        }
        j
    };
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != c {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == b'[' {
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
            i += 1;
        } else if c == b'$' || c.is_ascii_digit() || c == b'.' {
            i = ident(i + 1).max(i + 1);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let end = ident(i);
            let word = &expr[i..end];
            let next = skip_ws(end);
            if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&word) {
                // `by (a, b)`: the labels up to the closing parenthesis.
                if b.get(next) == Some(&b'(') {
                    let close = expr[next..].find(')').map_or(b.len(), |k| next + k);
                    for l in expr[next + 1..close].split(',').map(str::trim).filter(|l| !l.is_empty()) {
                        refs.grouping.insert(l.to_string());
                    }
                    i = close + 1;
                    continue;
                }
                i = end;
            } else if KEYWORDS.contains(&word) || b.get(next) == Some(&b'(') {
                i = end; // an operator, or a function / aggregation
            } else {
                let mut matchers = Vec::new();
                i = end;
                if b.get(next) == Some(&b'{') {
                    let close = expr[next..].find('}').map_or(b.len(), |k| next + k);
                    for m in split_matchers(&expr[next + 1..close]) {
                        matchers.push(m);
                    }
                    i = close + 1;
                }
                refs.metrics.push((word.to_string(), matchers));
            }
        } else {
            i += 1;
        }
    }
    refs
}

/// `a="x", b=~"y|z"` into (label, operator, value).
fn split_matchers(inside: &str) -> Vec<Matcher> {
    let mut out = Vec::new();
    let mut rest = inside.trim();
    while !rest.is_empty() {
        let name_end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let name = &rest[..name_end];
        let after = rest[name_end..].trim_start();
        let op_len = if after.starts_with("=~") || after.starts_with("!~") || after.starts_with("!=") { 2 } else { 1 };
        let op = &after[..op_len.min(after.len())];
        let after = after[op.len()..].trim_start();
        let Some(body) = after.strip_prefix('"') else { break };
        let close = body.find('"').unwrap_or(body.len());
        out.push((name.to_string(), op.to_string(), body[..close].to_string()));
        rest = body.get(close + 1..).unwrap_or_default().trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[test]
fn promql_scanner() {
    let r = promql_refs(
        r#"sum by (agent) (rate(botauth_agent{verdict="verified", agent!~"none|other"}[10m])) / ignoring(x) botauth_verdict > 0.9 and on () histogram_quantile(0.99, sum by (le) (rate(botauth_verify_us_bucket[$__rate_interval])))"#,
    );
    assert_eq!(
        r.metrics,
        [
            (
                "botauth_agent".to_string(),
                vec![
                    ("verdict".into(), "=".into(), "verified".into()),
                    ("agent".into(), "!~".into(), "none|other".into())
                ]
            ),
            ("botauth_verdict".to_string(), vec![]),
            ("botauth_verify_us_bucket".to_string(), vec![]),
        ]
    );
    assert_eq!(r.grouping, ["agent", "le", "x"].into_iter().map(String::from).collect());
    assert_eq!(promql_refs("vector(0) or count(x{a=\"}\"}) > 1e3").metrics.len(), 1);
}

/// Every `expr` of a Prometheus rules file (block scalars `expr: |` and inline values).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        if let Some(v) = line.trim_start().strip_prefix("expr:") {
            let v = v.trim();
            if v == "|" || v == ">" {
                let mut block = String::new();
                i += 1;
                while i < lines.len()
                    && (lines[i].trim().is_empty() || lines[i].len() - lines[i].trim_start().len() > indent)
                {
                    block.push_str(lines[i].trim());
                    block.push(' ');
                    i += 1;
                }
                out.push(block);
                continue;
            }
            out.push(v.to_string());
        }
        i += 1;
    }
    out
}

/// Every query of a Grafana dashboard: panel targets (rows included) and template queries
/// (`label_values(metric, label)` as the metric with a grouping label).
fn dashboard_exprs(dash: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(e)) = m.get("expr") {
                    out.push(e.clone());
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    for var in dash["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = var["query"].as_str().and_then(|q| q.strip_prefix("label_values(")) {
            let (metric, label) = q.trim_end_matches(')').split_once(',').unwrap_or((q, ""));
            out.push(format!("sum by ({}) ({})", label.trim(), metric.trim()));
        }
    }
    out
}

/// What `expr` (from `source`) refers to that is not in the scrape.
fn missing(samples: &[Sample], source: &str, expr: &str) -> Vec<String> {
    let refs = promql_refs(expr);
    let mut problems = Vec::new();
    let mut labels_of_expr = BTreeSet::new();
    if refs.metrics.is_empty() {
        problems.push(format!("{source}: no metric in `{expr}`"));
    }
    for (metric, matchers) in &refs.metrics {
        let of_metric: Vec<&Sample> = samples.iter().filter(|s| &s.name == metric).collect();
        if of_metric.is_empty() {
            problems.push(format!("{source}: metric {metric} is not in the scrape"));
            continue;
        }
        labels_of_expr.extend(of_metric.iter().flat_map(|s| s.labels.keys().cloned()));
        for (label, op, val) in matchers {
            let values: BTreeSet<&str> =
                of_metric.iter().filter_map(|s| s.labels.get(label).map(String::as_str)).collect();
            if values.is_empty() {
                problems.push(format!("{source}: {metric} has no label {label}"));
                continue;
            }
            // A positive matcher on literal values: each value must be one the filter emits.
            let literal = !val.contains('$') && !val.contains(".*");
            if literal && (op == "=" || op == "=~") {
                for v in val.split('|') {
                    if !values.contains(v) {
                        problems
                            .push(format!("{source}: {metric}{{{label}=\"{v}\"}} is not in the scrape ({values:?})"));
                    }
                }
            }
        }
    }
    for l in &refs.grouping {
        if !labels_of_expr.contains(l) {
            problems.push(format!("{source}: label {l} (grouping) is on none of its metrics"));
        }
    }
    problems
}

#[test]
fn scrape_after_mixed_load_has_every_metric_the_rules_and_dashboard_use() {
    let (ka, kb) = (Key::rfc(), Key::b());
    let up = DirectoryServer::start(Behaviour::jwks(&jwks(&[&ka]), 3600)).unwrap_or_else(|e| panic!("{e}"));
    let down = DirectoryServer::start(Behaviour::status(500, &[], "down")).unwrap_or_else(|e| panic!("{e}"));
    let origin = Origin::start().unwrap_or_else(|e| panic!("origin: {e}"));
    let (admin, port) = match ports(2)[..] {
        [a, p] => (a, p),
        _ => unreachable!(),
    };
    let (agent_a, agent_c, pinned) = ("https://agent-a.test", "https://agent-c.test", "https://pinned.test");
    let agents: Vec<Value> = [(agent_a, "agent-a", &up, "dir_up"), (agent_c, "agent-c", &down, "dir_down")]
        .iter()
        .map(|(uri, label, server, upstream)| {
            json!({
                "agent": uri,
                "directory": format!("{}/.well-known/http-message-signatures-directory", server.base_url()),
                "upstream": upstream,
                "label": label,
            })
        })
        .collect();
    let config = json!({
        "keys": { pinned: { "keys": [ { "kty": "OKP", "crv": "Ed25519", "x": kb.x } ] } },
        "labels": { pinned: "pinned" },
        "directories": { "agents": agents },
        "directory_cache": { "tick_ms": 50, "max_wait_ms": 1000 },
        "policy": { "allow_test_keys": true },
        "scheme": "https",
    });
    let clusters = cluster("dir_up", up.port()) + &cluster("dir_down", down.port());
    let listeners = [Listener::new(port, config)];
    let yaml = render(&Layout { example: EXAMPLE, admin, origin: origin.port(), listeners: &listeners, clusters });
    let envoy = Envoy::start_with(&yaml, admin, &[port], 2);
    envoy.wait_until(10, "warm-up fetches", || up.fetches() >= 1 && down.fetches() >= 1);

    // The load: (request, expected status).
    let now = unix_now();
    let mut tampered = signed(agent_a, &ka);
    tampered[0].1 = "other.example".into();
    let replayed = signed(pinned, &kb);
    let mut load: Vec<(Vec<(String, String)>, u16)> = Vec::new();
    for _ in 0..3 {
        load.push((vec![("Host".into(), "example.com".into())], 200)); // unsigned
        load.push((signed(agent_a, &ka), 200));
        load.push((signed(pinned, &kb), 200));
    }
    load.push((replayed.clone(), 200));
    load.push((replayed, 429));
    load.push((tampered, 403));
    load.push((signed_at(agent_a, &ka, now + 3600), 403)); // not yet valid
    load.push((signed_at(agent_a, &ka, now - 3600), 403)); // expired
    load.push((signed(agent_a, &kb), 403)); // a keyid agent-a's directory does not have
    load.push((signed(agent_c, &ka), 503)); // directory down, never loaded: fails closed
    for (i, (headers, status)) in load.iter().enumerate() {
        let res = get(port, headers);
        assert_eq!(res.status, *status, "request {i}: {}", res.text());
    }

    // Counters reach /stats at once; histograms after Envoy's stats flush.
    let mut samples = Vec::new();
    envoy.wait_until(20, "the verify-time histogram in the scrape", || {
        let text = envoy.get("/stats/prometheus").map(|r| r.text()).unwrap_or_default();
        samples = parse_scrape(&text);
        value(&samples, "botauth_verify_us_count", &[]) >= 1.0
    });
    let (verified, rejected) = (7.0, 6.0);
    assert_eq!(value(&samples, "botauth_verdict", &[("verdict", "verified")]), verified);
    assert_eq!(value(&samples, "botauth_verdict", &[("verdict", "rejected")]), rejected);
    for (reason, n) in [
        ("replay", 1.0),
        ("signature_invalid", 1.0),
        ("not_yet_valid", 1.0),
        ("expired", 1.0),
        ("unknown_key", 1.0),
        ("directory_unavailable", 1.0),
    ] {
        assert_eq!(value(&samples, "botauth_reason", &[("reason", reason)]), n, "{reason}");
    }
    assert_eq!(value(&samples, "botauth_agent", &[("agent", "agent-a"), ("verdict", "verified")]), 3.0);
    // Tampered and unknown keyid: the agent is known. Not yet valid / expired are rejected
    // before any key is looked up, so no agent is claimed for them (`none`).
    assert_eq!(value(&samples, "botauth_agent", &[("agent", "agent-a"), ("verdict", "rejected")]), 2.0);
    assert_eq!(value(&samples, "botauth_agent", &[("agent", "none"), ("verdict", "rejected")]), 2.0);
    assert_eq!(value(&samples, "botauth_agent", &[("agent", "pinned"), ("verdict", "verified")]), 4.0);
    assert_eq!(value(&samples, "botauth_agent", &[("agent", "pinned"), ("verdict", "rejected")]), 1.0);
    assert_eq!(value(&samples, "botauth_agent", &[("agent", "agent-c"), ("verdict", "rejected")]), 1.0);
    assert_eq!(value(&samples, "botauth_directory", &[("directory", "agent-c"), ("event", "fail_closed")]), 1.0);
    assert!(value(&samples, "botauth_directory", &[("directory", "agent-a"), ("event", "fetch_ok")]) >= 1.0);
    assert!(value(&samples, "botauth_directory", &[("directory", "agent-c"), ("event", "fetch_failed")]) >= 1.0);
    let buckets = samples.iter().filter(|s| s.name == "botauth_verify_us_bucket").count();
    assert!(buckets > 5, "the verify-time histogram has buckets");
    // Bounded labels: nothing from a request (keyids, paths, agent URIs) became a label value.
    for s in samples.iter().filter(|s| s.name.starts_with("botauth_")) {
        for (k, v) in &s.labels {
            assert!(!v.contains("://") && !v.contains('/') && v != &ka.thumbprint, "{}{{{k}={v}}}", s.name);
        }
    }

    let rules_path = root().join("examples/prometheus/botauth-alerts.yml");
    let rules = std::fs::read_to_string(&rules_path).unwrap_or_else(|e| panic!("{}: {e}", rules_path.display()));
    let dash_path = root().join("examples/grafana/botauth.json");
    let dash_text = std::fs::read_to_string(&dash_path).unwrap_or_else(|e| panic!("{}: {e}", dash_path.display()));
    let dash: Value = serde_json::from_str(&dash_text).unwrap_or_else(|e| panic!("{}: {e}", dash_path.display()));
    let (rule_exprs, dash_exprs) = (rule_exprs(&rules), dashboard_exprs(&dash));
    assert_eq!(rule_exprs.len(), rules.matches("- alert:").count(), "one expr per alert");
    assert!(dash_exprs.len() >= 12, "every panel and variable query: {dash_exprs:?}");
    let mut problems = Vec::new();
    for e in &rule_exprs {
        problems.extend(missing(&samples, "botauth-alerts.yml", e));
    }
    for e in &dash_exprs {
        problems.extend(missing(&samples, "botauth.json", e));
    }
    assert!(problems.is_empty(), "queries referring to what the filter does not emit:\n{}", problems.join("\n"));
    // And the check can fail: a renamed metric is caught.
    assert!(!missing(&samples, "self-test", "rate(botauth_verdicts[5m])").is_empty());
    assert!(!missing(&samples, "self-test", r#"botauth_reason{reason="unknown_keys"}"#).is_empty());
    drop(envoy);
}
