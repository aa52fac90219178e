//! Cache policy by path pattern (ARCHITECTURE §5): static assets long TTL without
//! revalidation; dynamic content short TTL with stale-while-revalidate; API responses with
//! surrogate keys for purging. Applied as cache overrides on the backend request.
//!
//! Responses that depend on the verdict are never served across verdicts: a request that
//! reaches the origin with a verdict header gets a cache key that includes that verdict, so
//! a verified agent's response can never be a hit for an unsigned visitor (or another
//! agent). Verification errors are synthetic responses with `Cache-Control: no-store`;
//! they never reach the cache at all.

use fastly::experimental::RequestCacheKey as _;
use fastly::http::header::HeaderValue;
use fastly::http::Method;
use fastly::Request;
use serde::Deserialize;

/// The three classes of the seed practice.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Long TTL, no revalidation window.
    Static,
    /// Short TTL with stale-while-revalidate.
    Dynamic,
    /// TTL plus surrogate keys (purgeable, soft purge).
    Api,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Dynamic => "dynamic",
            Self::Api => "api",
        }
    }
}

/// One class: the paths it matches and how they are cached.
///
/// JSON form (the `cache_classes` setting is an array of these, first match wins):
/// `{"kind":"dynamic","match":["/blog/*"],"ttl":60,"swr":300}`. `match` patterns are
/// globs over the path where `*` matches any run of characters (slashes included).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CacheClass {
    /// static | dynamic | api.
    pub kind: Kind,
    /// Path globs.
    #[serde(rename = "match")]
    pub patterns: Vec<String>,
    /// Time to live in the Fastly cache, seconds.
    pub ttl: u32,
    /// stale-while-revalidate, seconds (dynamic only).
    #[serde(default)]
    pub swr: u32,
    /// Fixed surrogate keys (api only); the path and its parent are always added.
    #[serde(default)]
    pub surrogate_keys: Vec<String>,
}

/// What happens to one backend request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not cacheable (method other than GET/HEAD).
    Pass,
    /// No class matched, or the classes are misconfigured: the origin's headers decide.
    Origin,
    /// Cache with these overrides.
    Cache {
        /// The class kind.
        kind: Kind,
        /// TTL seconds.
        ttl: u32,
        /// stale-while-revalidate seconds (0 = none).
        swr: u32,
        /// Space-separated surrogate keys (api only).
        surrogate_keys: Option<String>,
    },
}

/// The built-in classes, used when `cache_classes` is absent.
pub fn default_classes() -> Vec<CacheClass> {
    let globs = |p: &[&str]| p.iter().map(|s| String::from(*s)).collect::<Vec<_>>();
    vec![
        CacheClass {
            kind: Kind::Static,
            patterns: globs(&[
                "/static/*",
                "/assets/*",
                "*.css",
                "*.js",
                "*.png",
                "*.jpg",
                "*.jpeg",
                "*.gif",
                "*.svg",
                "*.webp",
                "*.ico",
                "*.woff",
                "*.woff2",
            ]),
            ttl: 31_536_000,
            swr: 0,
            surrogate_keys: Vec::new(),
        },
        CacheClass { kind: Kind::Api, patterns: globs(&["/api/*"]), ttl: 60, swr: 0, surrogate_keys: globs(&["api"]) },
        CacheClass { kind: Kind::Dynamic, patterns: globs(&["*"]), ttl: 60, swr: 300, surrogate_keys: Vec::new() },
    ]
}

/// Parse and check the `cache_classes` JSON.
pub fn parse_classes(json: &str) -> Result<Vec<CacheClass>, String> {
    let classes: Vec<CacheClass> =
        serde_json::from_str(json).map_err(|e| format!("not a list of cache classes: {e}"))?;
    for (i, c) in classes.iter().enumerate() {
        if c.patterns.is_empty() {
            return Err(format!("class {i} has no `match` patterns"));
        }
        if c.kind == Kind::Static && c.swr != 0 {
            return Err(format!("class {i}: static classes do not revalidate (remove `swr`)"));
        }
        if c.kind != Kind::Api && !c.surrogate_keys.is_empty() {
            return Err(format!("class {i}: `surrogate_keys` belong to api classes"));
        }
        if c.surrogate_keys.iter().any(|k| k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic())) {
            return Err(format!("class {i}: surrogate keys must be visible ASCII without spaces"));
        }
    }
    Ok(classes)
}

/// The decision for `method` and `path` under `classes` (`None` = misconfigured).
pub fn decide(method: &Method, path: &str, classes: Option<&[CacheClass]>) -> Decision {
    if method != Method::GET && method != Method::HEAD {
        return Decision::Pass;
    }
    let Some(class) = classes.and_then(|cs| cs.iter().find(|c| c.patterns.iter().any(|p| glob(p, path)))) else {
        return Decision::Origin;
    };
    let surrogate_keys = (class.kind == Kind::Api).then(|| {
        let mut keys = class.surrogate_keys.clone();
        keys.push(path.into());
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !parent.is_empty() {
                keys.push(parent.into());
            }
        }
        keys.retain(|k| k.bytes().all(|b| b.is_ascii_graphic()));
        keys.join(" ")
    });
    let swr = if class.kind == Kind::Dynamic { class.swr } else { 0 };
    Decision::Cache { kind: class.kind, ttl: class.ttl, swr, surrogate_keys }
}

/// Apply `decision` to the backend request; `verdict` (the verdict header value) keys the
/// cache so responses are never shared across verdicts.
pub fn apply(req: &mut Request, decision: &Decision, verdict: Option<&str>) {
    match decision {
        Decision::Pass => req.set_pass(true),
        Decision::Origin => {}
        Decision::Cache { ttl, swr, surrogate_keys, .. } => {
            req.set_ttl(*ttl);
            if *swr > 0 {
                req.set_stale_while_revalidate(*swr);
            }
            if let Some(keys) = surrogate_keys.as_deref().and_then(|k| HeaderValue::from_str(k).ok()) {
                req.set_surrogate_key(keys);
            }
        }
    }
    if let (Some(verdict), false) = (verdict, matches!(decision, Decision::Pass)) {
        let key = [req.get_header_str("host").unwrap_or(""), req.get_url_str(), verdict].join("\n");
        req.set_cache_key_str(key);
    }
}

/// The debug header value: `static; ttl=…`, `dynamic; ttl=…; swr=…`, `api; ttl=…;
/// keys="…"`, `pass` or `origin`; `; by-verdict` when the cache key includes the verdict.
pub fn describe(decision: &Decision, by_verdict: bool) -> String {
    let mut s = match decision {
        Decision::Pass => "pass".to_owned(),
        Decision::Origin => "origin".to_owned(),
        Decision::Cache { kind, ttl, swr, surrogate_keys } => {
            let mut s = format!("{}; ttl={ttl}", kind.name());
            if *swr > 0 {
                s.push_str(&format!("; swr={swr}"));
            }
            if let Some(k) = surrogate_keys {
                s.push_str(&format!("; keys=\"{k}\""));
            }
            s
        }
    };
    if by_verdict && !matches!(decision, Decision::Pass) {
        s.push_str("; by-verdict");
    }
    s
}

/// Whether `path` matches `pattern`, where `*` matches any run of bytes.
pub fn glob(pattern: &str, path: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), path.as_bytes());
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match (p.get(pi), s.get(si)) {
            (Some(b'*'), _) => {
                star = Some((pi, si));
                pi += 1;
            }
            (Some(a), Some(b)) if a == b => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).is_some_and(|rest| rest.iter().all(|b| *b == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_prefixes_suffixes_and_everything() {
        assert!(glob("/static/*", "/static/a/b.css"));
        assert!(!glob("/static/*", "/staticx"));
        assert!(glob("*.css", "/a/b.css"));
        assert!(!glob("*.css", "/a/b.css.map"));
        assert!(glob("*", "/"));
        assert!(glob("/api/*/items", "/api/v1/items"));
        assert!(!glob("/api/*/items", "/api/v1/items/2"));
        assert!(glob("/exact", "/exact"));
        assert!(!glob("/exact", "/exact/"));
        assert!(glob("a**b", "ab"));
    }

    #[test]
    fn default_classes_cover_the_three_kinds() {
        let classes = default_classes();
        let d = |p: &str| decide(&Method::GET, p, Some(&classes));
        assert_eq!(
            d("/static/app.js"),
            Decision::Cache { kind: Kind::Static, ttl: 31_536_000, swr: 0, surrogate_keys: None }
        );
        assert_eq!(
            d("/logo.png"),
            Decision::Cache { kind: Kind::Static, ttl: 31_536_000, swr: 0, surrogate_keys: None }
        );
        assert_eq!(
            d("/api/v1/users/42"),
            Decision::Cache {
                kind: Kind::Api,
                ttl: 60,
                swr: 0,
                surrogate_keys: Some("api /api/v1/users/42 /api/v1/users".into())
            }
        );
        assert_eq!(d("/blog/post"), Decision::Cache { kind: Kind::Dynamic, ttl: 60, swr: 300, surrogate_keys: None });
        assert_eq!(decide(&Method::POST, "/api/v1/users", Some(&classes)), Decision::Pass);
        assert_eq!(decide(&Method::GET, "/x", None), Decision::Origin);
        assert_eq!(decide(&Method::GET, "/x", Some(&[])), Decision::Origin);
    }

    #[test]
    fn parse_rejects_inconsistent_classes() {
        let ok = r#"[{"kind":"api","match":["/v2/*"],"ttl":30,"surrogate_keys":["v2"]},
                     {"kind":"static","match":["*.css"],"ttl":600}]"#;
        let classes = parse_classes(ok).unwrap();
        assert_eq!(classes.len(), 2);
        assert!(matches!(
            decide(&Method::GET, "/v2/x", Some(&classes)),
            Decision::Cache { kind: Kind::Api, ttl: 30, .. }
        ));
        for bad in [
            "{}",
            r#"[{"kind":"static","match":["*"],"ttl":1,"swr":5}]"#,
            r#"[{"kind":"dynamic","match":["*"],"ttl":1,"surrogate_keys":["a"]}]"#,
            r#"[{"kind":"api","match":[],"ttl":1}]"#,
            r#"[{"kind":"api","match":["*"],"ttl":1,"surrogate_keys":["a b"]}]"#,
            r#"[{"kind":"other","match":["*"],"ttl":1}]"#,
            r#"[{"kind":"api","match":["*"],"ttl":1,"typo":1}]"#,
        ] {
            assert!(parse_classes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn describe_names_class_and_verdict_keying() {
        let d = Decision::Cache { kind: Kind::Dynamic, ttl: 60, swr: 300, surrogate_keys: None };
        assert_eq!(describe(&d, false), "dynamic; ttl=60; swr=300");
        assert_eq!(describe(&d, true), "dynamic; ttl=60; swr=300; by-verdict");
        assert_eq!(describe(&Decision::Pass, true), "pass");
    }
}
