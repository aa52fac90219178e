//! One agent's cached directory: the last good keys and the instants that govern them, in
//! one host-neutral value that both adapters store (Fastly Core Cache / KV, proxy-wasm
//! shared data) and consult. [`record`] folds a fetch result into it; the rules:
//!
//! - a good response replaces the keys (a directory that loads without a key removes it);
//! - a failed fetch never evicts good keys: they stay usable until `stale_until`;
//! - failures are negatively cached with backoff and `Retry-After`, at most 5 minutes.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use super::allow_list::{AgentDirectory, Directories};
use super::document::{parse_document, Document, DocumentError, Finding};
use super::freshness::{self, Freshness};
use super::resolve::FetchReason;
use super::response::check_signatures;
use super::MEDIA_TYPE;
use crate::keys::{KeySkipReason, PublicKey, SkippedKey};
use crate::reason::Reason;
use crate::request::{HttpRequest, Request};

/// Why the transport failed before a whole response arrived (reported by the host).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransportError {
    /// No answer within the fetch timeout.
    Timeout,
    /// The connection could not be made, or was reset.
    Connect,
    /// The body grew past the size cap while being read.
    BodyTooLarge,
    /// Anything else the host reports.
    Other,
}

/// Why a fetch did not yield keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FetchError {
    /// The transport failed.
    Transport(TransportError),
    /// A 3xx: redirects MUST NOT be followed (configure the final URL).
    Redirect(u16),
    /// 404 or 410.
    NotFound(u16),
    /// Another non-200 status.
    Status(u16),
    /// 304 without a cached copy to revalidate.
    NotModifiedWithoutCopy,
    /// The body was refused.
    Document(DocumentErrorCode),
    /// The response is unsigned and the agent requires signed directories.
    Unsigned,
    /// Every directory signature failed (the first failure's reason).
    Signature(SignatureFailure),
}

/// [`DocumentError`] in serialisable form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
#[non_exhaustive]
pub enum DocumentErrorCode {
    BodyTooLarge,
    NotJson,
    NotAJwkSet,
    TooManyKeys,
}

impl From<DocumentError> for DocumentErrorCode {
    fn from(e: DocumentError) -> Self {
        match e {
            DocumentError::BodyTooLarge => Self::BodyTooLarge,
            DocumentError::NotJson => Self::NotJson,
            DocumentError::NotAJwkSet => Self::NotAJwkSet,
            DocumentError::TooManyKeys => Self::TooManyKeys,
        }
    }
}

/// A failed directory signature, by its stable code (serialisable; see [`Reason::code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureFailure(#[serde(with = "reason_code")] pub Reason);

mod reason_code {
    use crate::reason::Reason;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(r: &Reason, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(r.code())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Reason, D::Error> {
        let code = alloc::string::String::deserialize(d)?;
        Ok(Reason::ALL.iter().copied().find(|r| r.code() == code).unwrap_or(Reason::SignatureInvalid))
    }
}

impl FetchError {
    /// Stable snake_case code, for logs and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::Transport(TransportError::Timeout) => "timeout",
            Self::Transport(TransportError::Connect) => "connect_failed",
            Self::Transport(TransportError::BodyTooLarge) => "body_too_large",
            Self::Transport(TransportError::Other) => "transport_error",
            Self::Redirect(_) => "redirect",
            Self::NotFound(_) => "not_found",
            Self::Status(_) => "http_status",
            Self::NotModifiedWithoutCopy => "not_modified_without_copy",
            Self::Document(DocumentErrorCode::BodyTooLarge) => "body_too_large",
            Self::Document(DocumentErrorCode::NotJson) => "not_json",
            Self::Document(DocumentErrorCode::NotAJwkSet) => "not_a_jwk_set",
            Self::Document(DocumentErrorCode::TooManyKeys) => "too_many_keys",
            Self::Unsigned => "unsigned",
            Self::Signature(_) => "signature_invalid",
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(t) => write!(f, "transport failed ({})", self.code()).and_then(|()| {
                if *t == TransportError::Timeout {
                    f.write_str(": no answer within the fetch timeout")
                } else {
                    Ok(())
                }
            }),
            Self::Redirect(s) => write!(f, "HTTP {s}: redirects are not followed (configure the final URL)"),
            Self::NotFound(s) | Self::Status(s) => write!(f, "HTTP {s} (expected 200)"),
            Self::NotModifiedWithoutCopy => f.write_str("HTTP 304 without a cached copy"),
            Self::Document(e) => write!(f, "directory refused: {}", self.code()).and_then(|()| match e {
                DocumentErrorCode::BodyTooLarge => f.write_str(" (over the size cap)"),
                DocumentErrorCode::TooManyKeys => f.write_str(" (over the key-count cap)"),
                _ => Ok(()),
            }),
            Self::Unsigned => {
                f.write_str("the directory response is unsigned and this agent requires signed directories")
            }
            Self::Signature(s) => write!(f, "no directory signature verifies ({})", s.0.code()),
        }
    }
}

/// What the host got back.
pub enum Fetched<'a> {
    /// A whole response. `fields`: its header fields (any method/target; only fields are read).
    Response {
        /// Status code.
        status: u16,
        /// Response header fields.
        fields: &'a dyn Request,
        /// The body (the host stops reading past the size cap and reports
        /// [`TransportError::BodyTooLarge`] instead).
        body: &'a [u8],
    },
    /// No whole response.
    Failed(TransportError),
}

/// One agent's directory state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// The last good keys (empty: none, or the directory lists none).
    pub keys: Vec<PublicKey>,
    /// Whether a good response was ever recorded.
    pub loaded: bool,
    /// When the last good response arrived.
    pub fetched_at: u64,
    /// Fresh until (no refresh before).
    pub fresh_until: u64,
    /// The keys are usable until (stale-if-error bound, then the agent fails closed).
    pub stale_until: u64,
    /// No fetch before this instant (negative caching, early-refetch interval).
    pub retry_after: u64,
    /// Consecutive failures since the last good response.
    pub failures: u32,
    /// The last failure, if the last fetch failed.
    pub last_error: Option<FetchError>,
    /// The last good response's `ETag`, for `If-None-Match`.
    pub etag: Option<String>,
}

/// Where an entry stands at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Never loaded; a fetch is due unless negatively cached.
    Cold,
    /// Fresh keys.
    Fresh,
    /// Past freshness but usable: verify with these keys and refresh.
    Stale,
    /// No usable keys: never loaded and failing, or older than `stale_until`.
    Unavailable,
}

impl Entry {
    /// The keys usable at `now`, if any.
    pub fn usable_keys(&self, now: u64) -> Option<&[PublicKey]> {
        (self.loaded && now < self.stale_until).then_some(self.keys.as_slice())
    }

    /// Where the entry stands at `now`.
    pub fn state(&self, now: u64) -> State {
        match (self.usable_keys(now).is_some(), now < self.fresh_until) {
            (true, true) => State::Fresh,
            (true, false) => State::Stale,
            (false, _) if !self.loaded && self.failures == 0 => State::Cold,
            (false, _) => State::Unavailable,
        }
    }

    /// Whether a fetch may be made at `now` (not negatively cached, not within the
    /// early-refetch interval of the last fetch).
    pub fn may_fetch(&self, now: u64) -> bool {
        now >= self.retry_after
    }

    /// Whether a refresh is due at `now`: not fresh, and a fetch may be made.
    pub fn refresh_due(&self, now: u64) -> bool {
        self.state(now) != State::Fresh && self.may_fetch(now)
    }

    /// The instant from which [`Entry::refresh_due`] holds until the next fetch is recorded
    /// (the end of freshness, or of negative caching and the early-refetch interval,
    /// whichever is later): hosts schedule their next refresh for it (a cache lifetime, a
    /// timer).
    pub fn refresh_at(&self) -> u64 {
        if self.loaded {
            self.fresh_until.min(self.stale_until).max(self.retry_after)
        } else {
            self.retry_after
        }
    }

    /// The value to send as `If-None-Match`, when the entry has usable keys to revalidate.
    pub fn if_none_match(&self) -> Option<&str> {
        self.loaded.then_some(self.etag.as_deref()).flatten()
    }

    /// Compact JSON for host storage.
    pub fn to_json(&self) -> Vec<u8> {
        let stored = Stored {
            k: self.keys.iter().map(StoredKey::from).collect(),
            l: self.loaded,
            f: self.fetched_at,
            fu: self.fresh_until,
            su: self.stale_until,
            ra: self.retry_after,
            n: self.failures,
            e: self.last_error,
            t: self.etag.clone(),
        };
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    /// Read [`Entry::to_json`]; `None` when the bytes are not a stored entry (then hosts
    /// treat the agent as cold).
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        let s: Stored = serde_json::from_slice(bytes).ok()?;
        let keys = s.k.iter().map(StoredKey::to_key).collect::<Option<Vec<_>>>()?;
        Some(Self {
            keys,
            loaded: s.l,
            fetched_at: s.f,
            fresh_until: s.fu,
            stale_until: s.su,
            retry_after: s.ra,
            failures: s.n,
            last_error: s.e,
            etag: s.t,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    k: Vec<StoredKey>,
    l: bool,
    f: u64,
    fu: u64,
    su: u64,
    ra: u64,
    n: u32,
    e: Option<FetchError>,
    t: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    x: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
}

impl From<&PublicKey> for StoredKey {
    fn from(k: &PublicKey) -> Self {
        use base64::Engine as _;
        Self {
            x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(k.key),
            kid: k.kid.clone(),
            nbf: k.nbf,
            exp: k.exp,
        }
    }
}

impl StoredKey {
    fn to_key(&self) -> Option<PublicKey> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&self.x).ok()?;
        let mut key = PublicKey::from_bytes(bytes.try_into().ok()?);
        key.kid.clone_from(&self.kid);
        key.nbf = self.nbf;
        key.exp = self.exp;
        Some(key)
    }
}

/// What [`record`] concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The new entry: store it.
    pub entry: Entry,
    /// The document that was loaded (with skipped keys and findings), or why not.
    pub result: Result<Document, FetchError>,
}

impl Recorded {
    /// One structured log line for this fetch (both adapters log it the same way): the
    /// agent's label and directory URL (operator configuration), why it was fetched, the
    /// result (`ok` or a [`FetchError::code`], with its description), the key counts, the
    /// findings and the entry's instants. Never a response header or body value.
    pub fn log_event(&self, agent: &AgentDirectory, reason: FetchReason, extra: &[(&str, &str)]) -> String {
        use crate::event::{Event, Field};
        let mut event = Event::new();
        event.insert("event", Field::text(Some("directory_fetch")));
        event.insert("agent", Field::text(Some(&agent.label)));
        event.insert("directory", Field::text(Some(agent.directory.as_str())));
        event.insert("reason", Field::text(Some(reason.code())));
        let (result, error, keys, skipped, findings) = match &self.result {
            Ok(doc) => ("ok", None, doc.keys.len(), doc.skipped.len(), doc.findings.iter().map(|f| f.code()).collect()),
            Err(e) => (e.code(), Some(alloc::format!("{e}").into()), self.entry.keys.len(), 0, Vec::new()),
        };
        let count = |n: usize| Field::Number(u64::try_from(n).unwrap_or(u64::MAX));
        event.insert("result", Field::text(Some(result)));
        event.insert("error", Field::Text(error));
        event.insert("keys", count(keys));
        event.insert("skipped", count(skipped));
        event.insert("findings", Field::Texts(findings));
        event.insert("fresh_until", Field::Number(self.entry.fresh_until));
        event.insert("stale_until", Field::Number(self.entry.stale_until));
        event.insert("retry_after", Field::Number(self.entry.retry_after));
        event.insert("failures", Field::Number(u64::from(self.entry.failures)));
        for (k, v) in extra {
            event.insert(k, Field::text(Some(v)));
        }
        event.into_json()
    }
}

/// Fold one fetch of `agent`'s directory at `now` into its `previous` entry.
pub fn record(
    previous: Option<&Entry>,
    directories: &Directories,
    agent: &AgentDirectory,
    allow_test_keys: bool,
    fetched: Fetched<'_>,
    now: u64,
) -> Recorded {
    let bounds = &directories.settings.bounds;
    let (result, fields) = match fetched {
        Fetched::Failed(e) => (Err(FetchError::Transport(e)), None),
        Fetched::Response { status, fields, body } => {
            (evaluate(previous, directories, agent, allow_test_keys, status, fields, body, now), Some(fields))
        }
    };
    match (result, fields) {
        (Ok(doc), Some(fields)) => {
            let Freshness { fresh_until, stale_until, retry_after } = freshness::on_success(fields, now, bounds);
            let etag = first_line(fields, "etag");
            let entry = Entry {
                keys: doc.keys.clone(),
                loaded: true,
                fetched_at: now,
                fresh_until,
                stale_until,
                retry_after,
                failures: 0,
                last_error: None,
                etag,
            };
            Recorded { entry, result: Ok(doc) }
        }
        (result, fields) => {
            let error = match result {
                Err(e) => e,
                Ok(_) => FetchError::Transport(TransportError::Other),
            };
            let mut entry = previous.cloned().unwrap_or_default();
            entry.failures = entry.failures.saturating_add(1);
            entry.last_error = Some(error);
            entry.retry_after = freshness::on_failure(fields, entry.failures, now, bounds);
            Recorded { entry, result: Err(error) }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn evaluate(
    previous: Option<&Entry>,
    directories: &Directories,
    agent: &AgentDirectory,
    allow_test_keys: bool,
    status: u16,
    fields: &dyn Request,
    body: &[u8],
    now: u64,
) -> Result<Document, FetchError> {
    match status {
        200 => {}
        // RFC 9110 §15.4.5: revalidated; the cached keys stay.
        304 => {
            return match previous {
                Some(p) if p.loaded => Ok(Document { keys: p.keys.clone(), ..Document::default() }),
                _ => Err(FetchError::NotModifiedWithoutCopy),
            }
        }
        300..=399 => return Err(FetchError::Redirect(status)),
        404 | 410 => return Err(FetchError::NotFound(status)),
        s => return Err(FetchError::Status(s)),
    }
    let options = directories.parse_options(agent, allow_test_keys);
    let mut doc = parse_document(body, &options).map_err(|e| FetchError::Document(e.into()))?;
    let media_type = first_line(fields, "content-type");
    let media_type = media_type.as_deref().and_then(|m| m.split(';').next()).map(str::trim);
    if !media_type.is_some_and(|m| m.eq_ignore_ascii_case(MEDIA_TYPE)) {
        doc.findings.push(Finding::MediaType);
    }
    let request = HttpRequest::new("GET", agent.directory.scheme(), agent.authority(), agent.path());
    let report = check_signatures(&request, fields, status, body, &doc.keys, now);
    if report.present {
        // Directory draft: ignore keys without a corresponding valid signature.
        if report.signed_by.is_empty() {
            let reason = report.failures.first().map_or(Reason::SignatureInvalid, |(_, r)| *r);
            return Err(FetchError::Signature(SignatureFailure(reason)));
        }
        // Usable keys are in document order: their indices are the ones not skipped.
        let total = doc.keys.len() + doc.skipped.len();
        let indices = (0..total).filter(|i| !doc.skipped.iter().any(|s| s.index == *i));
        let keys: Vec<(usize, PublicKey)> = indices.zip(core::mem::take(&mut doc.keys)).collect();
        for (index, key) in keys {
            if report.signed_by.contains(&key.thumbprint) {
                doc.keys.push(key);
            } else {
                let reason = KeySkipReason::NoValidSignature;
                doc.skipped.push(SkippedKey { index, kid: key.kid.clone(), reason });
            }
        }
        doc.skipped.sort_by_key(|s| s.index);
    } else if agent.require_signed_directory {
        return Err(FetchError::Unsigned);
    } else {
        doc.findings.push(Finding::Unsigned);
    }
    Ok(doc)
}

fn first_line(fields: &dyn Request, name: &str) -> Option<String> {
    let mut lines = Vec::new();
    fields.field_lines(name, &mut lines);
    lines.first().and_then(|l| core::str::from_utf8(l).ok()).map(|s| String::from(s.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn refresh_at_is_when_refresh_due_starts() {
        let loaded = Entry { loaded: true, fresh_until: 100, stale_until: 200, retry_after: 50, ..Entry::default() };
        let failing = Entry { retry_after: 130, failures: 1, ..loaded.clone() };
        let past_stale = Entry { fresh_until: 100, stale_until: 90, retry_after: 80, ..loaded.clone() };
        let cold_failing = Entry { retry_after: 40, failures: 2, ..Entry::default() };
        for (e, at) in [(&loaded, 100), (&failing, 130), (&past_stale, 90), (&cold_failing, 40)] {
            assert_eq!(e.refresh_at(), at, "{e:?}");
            for now in [0, at - 1, at, at + 1, 500] {
                assert_eq!(e.refresh_due(now), now >= at, "{e:?} at {now}");
            }
        }
    }

    #[test]
    fn log_event_names_agent_result_and_instants() {
        let dirs = Directories::from_json(br#"{"agents":[{"agent":"https://chatgpt.com","backend":"b"}]}"#).unwrap();
        let agent = &dirs.agents[0];
        let fields = HttpRequest::new("GET", "https", "chatgpt.com", "/");
        let failed = record(
            None,
            &dirs,
            agent,
            false,
            Fetched::Response { status: 404, fields: &fields, body: b"<secret>" },
            1000,
        );
        let text = failed.log_event(agent, FetchReason::NoKeys, &[("pop", "XXX")]);
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(text, line.to_string(), "members in key order, as a serde_json map prints them");
        assert_eq!(line["event"], "directory_fetch");
        assert_eq!(line["agent"], "chatgpt.com");
        assert_eq!(line["reason"], "no_keys");
        assert_eq!(line["result"], "not_found");
        assert_eq!(line["error"], "HTTP 404 (expected 200)");
        assert_eq!(line["retry_after"], 1010);
        assert_eq!(line["pop"], "XXX");
        assert!(!line.to_string().contains("secret"), "no body value");
        let body = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"7F_3jDlxaquwh291MiACkcS3Opq88NksyHiakzS-Y1g"}]}"#;
        let ok = record(None, &dirs, agent, false, Fetched::Response { status: 200, fields: &fields, body }, 1000);
        let text = ok.log_event(agent, FetchReason::Stale, &[]);
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(text, line.to_string(), "members in key order, as a serde_json map prints them");
        assert_eq!((line["result"].as_str(), line["keys"].as_u64()), (Some("ok"), Some(1)));
        assert_eq!(line["fresh_until"], 1300);
        assert_eq!(line["findings"], serde_json::json!(["no_kid", "media_type", "unsigned"]));
    }
}
