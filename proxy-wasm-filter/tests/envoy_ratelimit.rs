//! Per-agent limits with Envoy's own engines, in a real Envoy (1.40, V8, two workers):
//! `examples/envoy/local-ratelimit.yaml` as shipped (the filter sets `botauth-agent` when a
//! signature verifies; `envoy.filters.http.local_ratelimit` counts it per agent),
//! `examples/envoy/global-ratelimit.yaml` against an in-process gRPC rate limit service
//! (tonic, `envoy.service.ratelimit.v3` messages declared here with prost derives), and the
//! replay cache shared by the workers of one node.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use botauth_testkit::origin::Origin;
use botauth_testkit::raw_http::{self, Response};
use common::{
    jwks, ports, render, replace_once, seen_headers, signed, values, Envoy, Key, Layout, Listener, GLOBAL_RATELIMIT,
    LOCAL_RATELIMIT,
};
use serde_json::{json, Value};

const DEMO: &str = "https://signature-agent.test";

fn get(port: u16, headers: &[(String, String)]) -> Response {
    raw_http::send(port, "GET", "/resource", headers, None).unwrap_or_else(|e| panic!("request: {e}"))
}

/// The demo agent pinned with the label the example's descriptor names (`demo`).
fn demo_config(replay: bool) -> Value {
    let key = Key::rfc();
    let keys: Value = serde_json::from_str(&jwks(&[&key])).unwrap_or_else(|e| panic!("{e}"));
    json!({
        "keys": { DEMO: keys },
        "labels": { DEMO: "demo" },
        "policy": { "allow_test_keys": true },
        "scheme": "https",
        "replay": { "enabled": replay, "namespace": "rl" },
    })
}

fn start(example: &str, config: Value) -> (Envoy, Origin, u16) {
    start_with(example, config, |yaml| yaml)
}

/// [`start`], with `edit` applied to the rendered configuration.
fn start_with(example: &str, config: Value, edit: impl FnOnce(String) -> String) -> (Envoy, Origin, u16) {
    let origin = Origin::start().unwrap_or_else(|e| panic!("origin: {e}"));
    let (admin, port) = match ports(2)[..] {
        [a, p] => (a, p),
        _ => unreachable!(),
    };
    let listeners = [Listener::new(port, config)];
    let layout = Layout { example, admin, origin: origin.port(), listeners: &listeners, clusters: String::new() };
    let envoy = Envoy::start_with(&edit(render(&layout)), admin, &[port], 2);
    (envoy, origin, port)
}

/// The example's `demo` bucket holds 5: five verified requests pass, the sixth is 429 from
/// Envoy's local rate limiter; unsigned, rejected and forged-header requests are never
/// counted and never limited.
#[test]
fn local_ratelimit_per_verified_agent() {
    let key = Key::rfc();
    let (envoy, origin, port) = start(LOCAL_RATELIMIT, demo_config(true));
    let unsigned = vec![("Host".to_string(), "example.com".to_string())];
    for _ in 0..10 {
        assert_eq!(get(port, &unsigned).status, 200, "unsigned traffic is never limited");
    }
    for i in 0..5 {
        let res = get(port, &signed(DEMO, &key));
        assert_eq!(res.status, 200, "request {i}: {}", res.text());
        assert_eq!(values(&seen_headers(&res), "botauth-agent"), ["demo"]);
    }
    let res = get(port, &signed(DEMO, &key));
    assert_eq!(res.status, 429, "the sixth verified request is over the limit: {}", res.text());
    assert_eq!(res.text(), "local_rate_limited", "Envoy's own answer, not the filter's");
    assert_eq!(res.header("retry-after"), Some("60"), "{:?}", res.headers);
    assert_eq!(origin.seen().len(), 15, "the limited request never reached the origin");

    // After the bucket is empty: unsigned requests, a client claiming the agent header, and
    // a signature that fails still pass the limiter untouched (the filter answers the last).
    for _ in 0..5 {
        assert_eq!(get(port, &unsigned).status, 200);
    }
    let mut forged = unsigned.clone();
    forged.push(("botauth-agent".into(), "demo".into()));
    let res = get(port, &forged);
    assert_eq!(res.status, 200, "a forged agent header is stripped before the limiter: {}", res.text());
    assert!(values(&seen_headers(&res), "botauth-agent").is_empty());
    let mut tampered = signed(DEMO, &key);
    tampered[0].1 = "tampered.example.com".into();
    assert_eq!(get(port, &tampered).status, 403);

    let stat = |name: &str| envoy.stat(&format!("botauth_agents.http_local_rate_limit.{name}"));
    assert_eq!(stat("rate_limited"), 1, "only the sixth verified request");
    assert_eq!(stat("enabled"), 6, "the limiter saw the verified requests only");
}

/// Replay across the workers of one node: the nonce cache is in shared data, so a signed
/// request replayed on another connection (and likely another worker) is refused.
#[test]
fn replay_is_caught_across_workers_of_one_node() {
    let key = Key::rfc();
    let (_envoy, origin, port) = start(common::EXAMPLE, demo_config(true));
    let mut replays = 0;
    for _ in 0..8 {
        let request = signed(DEMO, &key);
        assert_eq!(get(port, &request).status, 200);
        let again = get(port, &request);
        assert_eq!(again.status, 429, "{}", again.text());
        assert_eq!(again.json().ok().map(|p| p["code"].clone()), Some("replay".into()));
        replays += 1;
    }
    assert_eq!(origin.seen().len(), 8);
    assert_eq!(replays, 8);
}

/// A rate limit service (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`):
/// allows `limit` hits per `botauth_agent` value, then answers `OVER_LIMIT`; counts calls.
mod rls {
    use std::collections::BTreeMap;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use tonic::codegen::{http, BoxFuture, Context, Poll, Service};
    use tonic::server::{Grpc, NamedService, UnaryService};

    /// `envoy.service.ratelimit.v3.RateLimitRequest` (the fields read here).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RateLimitRequest {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(message, repeated, tag = "2")]
        pub descriptors: Vec<RateLimitDescriptor>,
        #[prost(uint32, tag = "3")]
        pub hits_addend: u32,
    }

    /// `envoy.extensions.common.ratelimit.v3.RateLimitDescriptor`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RateLimitDescriptor {
        #[prost(message, repeated, tag = "1")]
        pub entries: Vec<Entry>,
    }

    /// `RateLimitDescriptor.Entry`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `envoy.service.ratelimit.v3.RateLimitResponse` (the overall code).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RateLimitResponse {
        #[prost(enumeration = "Code", tag = "1")]
        pub overall_code: i32,
    }

    /// `RateLimitResponse.Code`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum Code {
        Unknown = 0,
        Ok = 1,
        OverLimit = 2,
    }

    /// One call as received: its domain and descriptor entries.
    pub type Call = (String, Vec<(String, String)>);

    #[derive(Default)]
    pub struct State {
        pub calls: AtomicUsize,
        pub seen: Mutex<Vec<Call>>,
        hits: Mutex<BTreeMap<String, usize>>,
    }

    #[derive(Clone)]
    pub struct RateLimitService {
        pub state: Arc<State>,
        pub limit: usize,
    }

    impl RateLimitService {
        fn decide(&self, req: &RateLimitRequest) -> Code {
            self.state.calls.fetch_add(1, Ordering::SeqCst);
            let entries: Vec<(String, String)> = req
                .descriptors
                .iter()
                .flat_map(|d| d.entries.iter().map(|e| (e.key.clone(), e.value.clone())))
                .collect();
            if let Ok(mut seen) = self.state.seen.lock() {
                seen.push((req.domain.clone(), entries.clone()));
            }
            let Some((_, agent)) = entries.iter().find(|(k, _)| k == "botauth_agent") else { return Code::Ok };
            let mut hits = self.state.hits.lock().unwrap_or_else(|e| e.into_inner());
            let n = hits.entry(agent.clone()).or_insert(0);
            *n += 1;
            if *n > self.limit {
                Code::OverLimit
            } else {
                Code::Ok
            }
        }
    }

    struct ShouldRateLimit(RateLimitService);

    impl UnaryService<RateLimitRequest> for ShouldRateLimit {
        type Response = RateLimitResponse;
        type Future = BoxFuture<tonic::Response<RateLimitResponse>, tonic::Status>;

        fn call(&mut self, request: tonic::Request<RateLimitRequest>) -> Self::Future {
            let code = self.0.decide(request.get_ref());
            Box::pin(async move { Ok(tonic::Response::new(RateLimitResponse { overall_code: code as i32 })) })
        }
    }

    impl Service<http::Request<tonic::body::Body>> for RateLimitService {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = BoxFuture<Self::Response, Infallible>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
            let svc = self.clone();
            Box::pin(async move {
                if req.uri().path() != "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit" {
                    return Ok(tonic::Status::unimplemented(req.uri().path().to_string()).into_http());
                }
                let mut grpc = Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(ShouldRateLimit(svc), req).await)
            })
        }
    }

    impl NamedService for RateLimitService {
        const NAME: &'static str = "envoy.service.ratelimit.v3.RateLimitService";
    }

    /// The service on 127.0.0.1:`port`, served from its own thread until `stop` is dropped.
    pub struct Running {
        pub state: Arc<State>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    pub fn start(port: u16, limit: usize) -> Running {
        let state = Arc::new(State::default());
        let svc = RateLimitService { state: state.clone(), limit };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("tokio: {e}"));
            rt.block_on(async move {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                let served = tonic::transport::Server::builder()
                    .add_service(svc)
                    .serve_with_shutdown(addr, async {
                        let _ = rx.await;
                    })
                    .await;
                served.unwrap_or_else(|e| panic!("rate limit service: {e}"));
            });
        });
        botauth_testkit::wait_for_port(port, std::time::Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
        Running { state, stop: Some(tx), thread: Some(thread) }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(tx) = self.stop.take() {
                let _ = tx.send(());
            }
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// `global-ratelimit.yaml` as shipped, against a gRPC rate limit service that allows three
/// hits per agent: the service is asked only about verified requests (domain `botauth`,
/// descriptor `botauth_agent=demo`), the fourth is 429 from Envoy; unsigned, forged-header
/// and rejected requests never reach the service.
#[test]
fn global_ratelimit_per_verified_agent() {
    let key = Key::rfc();
    let rls_port = ports(1).first().copied().unwrap_or(0);
    let service = rls::start(rls_port, 3);
    let (_envoy, origin, port) = start_with(GLOBAL_RATELIMIT, demo_config(true), |yaml| {
        replace_once(&yaml, "port_value: 8081", &format!("port_value: {rls_port}"))
    });
    let unsigned = vec![("Host".to_string(), "example.com".to_string())];
    let mut forged = unsigned.clone();
    forged.push(("botauth-agent".into(), "demo".into()));
    for _ in 0..5 {
        assert_eq!(get(port, &unsigned).status, 200);
        assert_eq!(get(port, &forged).status, 200);
    }
    let mut tampered = signed(DEMO, &key);
    tampered[0].1 = "tampered.example.com".into();
    assert_eq!(get(port, &tampered).status, 403);
    let calls = || service.state.calls.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(calls(), 0, "unsigned, forged and rejected requests never reach the service");
    for i in 0..3 {
        let res = get(port, &signed(DEMO, &key));
        assert_eq!(res.status, 200, "request {i}: {}", res.text());
        assert_eq!(values(&seen_headers(&res), "botauth-agent"), ["demo"]);
    }
    let res = get(port, &signed(DEMO, &key));
    assert_eq!(res.status, 429, "over the service's limit: {}", res.text());
    assert_eq!(calls(), 4);
    let seen = service.state.seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        seen.iter()
            .all(|(domain, entries)| domain == "botauth"
                && entries == &[("botauth_agent".to_string(), "demo".to_string())]),
        "{seen:?}"
    );
    assert_eq!(origin.seen().len(), 13, "10 unsigned + 3 verified reached the origin");
}
