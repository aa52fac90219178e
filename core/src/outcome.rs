//! What a host does with a verdict (ARCHITECTURE §4), shared by every adapter: the
//! problem+json body (RFC 9457), the verdict header (an RFC 8941 Item) and the log event.

use alloc::string::String;

use sfv::{KeyRef, StringRef, TokenRef};

use crate::event::{Event, Field};
use crate::policy::Mode;
use crate::reason::Reason;
use crate::verdict::{Rejected, Verdict};

/// Default name of the verdict header sent to the origin.
pub const VERDICT_HEADER: &str = "botauth-verdict";
/// Media type of error bodies (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";
/// Prefix of the problem `type` URI; the reason code follows.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:botauth:problem:";
const VERIFIED: &TokenRef = TokenRef::constant("verified");
const REJECTED: &TokenRef = TokenRef::constant("rejected");
const UNVERIFIED_CLAIM: &TokenRef = TokenRef::constant("unverified-claim");

/// `Accept-Signature` (RFC 9421 §5.1) sent with an `unverified_claim` 403: asks for a Web Bot
/// Auth signature covering `@authority` and `signature-agent`, with `created`, `expires` and
/// the `web-bot-auth` tag.
pub const ACCEPT_SIGNATURE: &str = r#"sig1=("@authority" "signature-agent");created;expires;tag="web-bot-auth""#;

/// `Retry-After` seconds for 429 answers.
pub const RETRY_AFTER_SECS: u64 = 60;

/// The RFC 9457 problem document for a rejection. Holds only the code, a fixed title and
/// the status: never request data.
pub fn problem_json(reason: Reason) -> String {
    problem(reason.code(), reason.title(), reason.status().code())
}

/// A problem document for a host-side condition that is not a [`Reason`] (e.g.
/// `configuration_error`, `rate_limited`), in the same shape as [`problem_json`].
pub fn problem(code: &str, title: &str, status: u16) -> String {
    let mut body = Event::new();
    body.insert("type", Field::Text(Some(alloc::format!("{PROBLEM_TYPE_PREFIX}{code}").into())));
    body.insert("title", Field::text(Some(title)));
    body.insert("status", Field::Number(u64::from(status)));
    body.insert("code", Field::text(Some(code)));
    body.into_json()
}

/// The verdict header value, or `None` for unsigned traffic. An RFC 8941 §3.1 List with
/// one Item per verified signature, in `Signature-Input` order (a request may carry several,
/// draft-ietf-webbotauth-httpsig-protocol §4.3; the first Item is the one logs and metrics
/// name), or a single Item otherwise:
/// - `verified;agent="…";keyid="…";label="…"`: the key is one of that agent's (pinned for
///   it or from its directory); `agent` is its canonical URI;
/// - `verified;keyid="…";label="…"` (no `agent`): verified with a key trusted for any agent
///   and no covered agent claim;
/// - `verified;keyid="…";label="…";claimed-agent="…"`: the same key, and the signature covers
///   a `Signature-Agent` naming that agent; the claim is signed but not bound to the key, so
///   an origin must not treat it as `agent`;
/// - `unverified-claim;agent="…"` (monitor mode): unsigned, but claims an agent the operator
///   lists as one that always signs;
/// - `rejected;reason=<code>` (monitor mode).
///
/// Signatures that did not verify beside one that did are not in the header (they prove
/// nothing); the log event lists them.
pub fn verdict_header(verdict: &Verdict) -> Option<String> {
    match verdict {
        Verdict::Unsigned => None,
        Verdict::Verified(first) => {
            let mut out = String::new();
            for v in first.signatures() {
                let params = [
                    ("agent", v.agent.as_deref()),
                    ("keyid", Some(v.keyid.as_str())),
                    ("label", Some(v.label.as_str())),
                    ("claimed-agent", v.claimed_agent.as_deref()),
                ];
                if !out.is_empty() {
                    out.push_str(", ");
                }
                out.push_str(&item_with_strings(VERIFIED, &params));
            }
            Some(out)
        }
        Verdict::Rejected(Rejected { reason: Reason::UnverifiedClaim, agent, .. }) => {
            Some(item_with_strings(UNVERIFIED_CLAIM, &[("agent", agent.as_deref())]))
        }
        Verdict::Rejected(Rejected { reason, .. }) => {
            let mut ser = sfv::ItemSerializer::new().bare_item(REJECTED);
            if let (Ok(key), Ok(code)) = (KeyRef::from_str("reason"), TokenRef::from_str(reason.code())) {
                ser = ser.parameter(key, code);
            }
            Some(ser.finish())
        }
    }
}

/// A token Item with the sf-string parameters that are present (RFC 8941 §3.3).
fn item_with_strings(token: &TokenRef, params: &[(&str, Option<&str>)]) -> String {
    let mut ser = sfv::ItemSerializer::new().bare_item(token);
    for (name, value) in params {
        if let (Some(value), Ok(key)) = (value, KeyRef::from_str(name)) {
            if let Ok(s) = StringRef::from_str(value) {
                ser = ser.parameter(key, s);
            }
        }
    }
    ser.finish()
}

/// One structured log event for a signed request (ARCHITECTURE §4): verdict, reason,
/// agent, keyid, label and verify time; `extra` adds host fields (e.g. `pop`).
pub fn log_event(verdict: &Verdict, verify_us: u64, extra: &[(&str, &str)]) -> String {
    event_fields(verdict, verify_us, extra).into_json()
}

/// The members every log event has.
fn event_fields<'a>(verdict: &'a Verdict, verify_us: u64, extra: &[(&'a str, &'a str)]) -> Event<'a> {
    let (agent, keyid, label) = match verdict {
        Verdict::Verified(v) => (v.agent.as_deref(), Some(v.keyid.as_str()), Some(v.label.as_str())),
        Verdict::Rejected(r) => (r.agent.as_deref(), r.keyid.as_deref(), r.label.as_deref()),
        Verdict::Unsigned => (None, None, None),
    };
    let mut event = Event::new();
    event.insert("verdict", Field::text(Some(verdict_kind(verdict))));
    event.insert("reason", Field::text(verdict.reason().map(Reason::code)));
    event.insert("agent", Field::text(agent));
    event.insert("keyid", Field::text(keyid));
    event.insert("label", Field::text(label));
    event.insert("verify_us", Field::Number(verify_us));
    if let Verdict::Verified(v) = verdict {
        if let Some(claimed) = &v.claimed_agent {
            event.insert("claimed_agent", Field::text(Some(claimed)));
        }
        // The other signatures (draft-ietf-webbotauth-httpsig-protocol §4.3), only when sent.
        if !v.also.is_empty() {
            event.insert("also", Field::Also(&v.also));
        }
        if !v.discarded.is_empty() {
            event.insert("discarded", Field::Discarded(&v.discarded));
        }
    }
    for (k, v) in extra {
        event.insert(k, Field::text(Some(v)));
    }
    event
}

/// Longest `path` a [`request_event`] carries, bytes.
pub const MAX_LOGGED_PATH: usize = 256;

/// What a [`request_event`] says about where and when.
#[derive(Clone, Copy, Debug)]
pub struct EventContext<'a> {
    /// Unix seconds the verdict was reached at (the verifier's clock).
    pub time: u64,
    /// The host's mode: a rejection in monitor mode was forwarded, in enforce mode answered.
    pub mode: Mode,
    /// The request target; only the path is logged (the query is dropped: it may carry
    /// tokens), cut at [`MAX_LOGGED_PATH`] bytes.
    pub target: &'a str,
}

/// [`log_event`] with the context an operator's report needs (`botauth report`): `time`,
/// `mode`, `path` (no query), and `status`, the answer an enforcing host gives (200 when
/// forwarded, else the rejection's status), so monitor-mode logs show what enforce mode
/// would block.
pub fn request_event(verdict: &Verdict, verify_us: u64, ctx: &EventContext<'_>, extra: &[(&str, &str)]) -> String {
    let path = ctx.target.split(['?', '#']).next().unwrap_or_default();
    let mut end = path.len().min(MAX_LOGGED_PATH);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    let status = verdict.reason().map_or(200, |r| r.status().code());
    let mode = match ctx.mode {
        Mode::Enforce => "enforce",
        Mode::Monitor => "monitor",
    };
    let mut event = event_fields(verdict, verify_us, extra);
    event.insert("time", Field::Number(ctx.time));
    event.insert("mode", Field::text(Some(mode)));
    event.insert("path", Field::text(Some(path.get(..end).unwrap_or_default())));
    event.insert("status", Field::Number(u64::from(status)));
    event.into_json()
}

/// `unsigned`, `verified` or `rejected`.
pub fn verdict_kind(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Unsigned => "unsigned",
        Verdict::Verified(_) => "verified",
        Verdict::Rejected(_) => "rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verified;
    use alloc::string::ToString;

    /// The event is the JSON object a `serde_json::Value` map of the same members prints:
    /// members in key order, nulls kept, strings escaped, a host field replacing core's.
    #[test]
    fn events_are_byte_for_byte_the_sorted_json_object() {
        let v = Verdict::Verified(Verified {
            agent: Some("https://agent.test/\"q\"".into()),
            keyid: "k\u{1}".into(),
            label: "sig1".into(),
            claimed_agent: None,
            also: alloc::vec![Verified {
                keyid: "kb".into(),
                label: "b".into(),
                claimed_agent: Some("https://b.test".into()),
                ..Verified::default()
            }],
            discarded: alloc::vec![Rejected { label: Some("p".into()), ..Rejected::new(Reason::UnknownKey) }],
            ..Verified::default()
        });
        let ctx = EventContext { time: 7, mode: Mode::Monitor, target: "/a/ü?x=1" };
        let line = request_event(&v, 42, &ctx, &[("pop", "AMS"), ("mode", "ignored"), ("pop", "FRA")]);
        let expected = serde_json::json!({
            "agent": "https://agent.test/\"q\"", "keyid": "k\u{1}", "label": "sig1", "reason": null,
            "verdict": "verified", "verify_us": 42, "time": 7, "mode": "monitor", "path": "/a/ü",
            "status": 200, "pop": "FRA",
            "also": [{"agent": null, "claimed_agent": "https://b.test", "keyid": "kb", "label": "b"}],
            "discarded": [{"agent": null, "keyid": null, "label": "p", "reason": "unknown_key"}],
        });
        assert_eq!(line, expected.to_string());
        let rejected = log_event(&Verdict::from(Reason::Expired), 3, &[]);
        let expected = serde_json::json!({
            "agent": null, "keyid": null, "label": null, "reason": "expired", "verdict": "rejected", "verify_us": 3,
        });
        assert_eq!(rejected, expected.to_string());
        let problem = problem_json(Reason::Expired);
        let parsed: serde_json::Value = serde_json::from_str(&problem).unwrap();
        assert_eq!(problem, parsed.to_string());
        assert_eq!(parsed["type"], "urn:botauth:problem:expired");
    }

    #[test]
    fn every_verified_signature_is_one_list_item_and_the_discarded_are_logged() {
        let agent = Verified {
            agent: Some("https://agent.test".into()),
            keyid: "ka".into(),
            label: "agent".into(),
            ..Verified::default()
        };
        let browser = Verified {
            keyid: "kb".into(),
            label: "browser".into(),
            claimed_agent: Some("https://b.test".into()),
            ..Verified::default()
        };
        let v = Verdict::Verified(Verified {
            also: alloc::vec![browser],
            discarded: alloc::vec![Rejected { label: Some("proxy".into()), ..Rejected::new(Reason::UnknownKey) }],
            ..agent
        });
        let header = verdict_header(&v).unwrap();
        assert_eq!(
            header,
            r#"verified;agent="https://agent.test";keyid="ka";label="agent", verified;keyid="kb";label="browser";claimed-agent="https://b.test""#
        );
        let list = sfv::Parser::new(&header).parse_list::<sfv::List>().unwrap();
        assert_eq!(list.len(), 2, "an RFC 8941 List");
        let event: serde_json::Value = serde_json::from_str(&log_event(&v, 1, &[])).unwrap();
        assert_eq!((event["agent"].as_str(), event["label"].as_str()), (Some("https://agent.test"), Some("agent")));
        assert_eq!(event["also"][0]["label"], "browser");
        assert_eq!(event["also"][0]["claimed_agent"], "https://b.test");
        assert_eq!(
            (event["discarded"][0]["label"].as_str(), event["discarded"][0]["reason"].as_str()),
            (Some("proxy"), Some("unknown_key"))
        );
        let single: serde_json::Value =
            serde_json::from_str(&log_event(&Verdict::Verified(Verified::default()), 1, &[])).unwrap();
        assert!(single.get("also").is_none() && single.get("discarded").is_none(), "absent unless sent");
    }

    #[test]
    fn problem_has_no_request_data() {
        let p: serde_json::Value = serde_json::from_str(&problem_json(Reason::SignatureInvalid)).unwrap();
        assert_eq!(p["type"], "urn:botauth:problem:signature_invalid");
        assert_eq!(p["status"], 403);
    }

    #[test]
    fn verdict_header_is_a_structured_item() {
        let v = Verdict::Verified(Verified {
            agent: Some("https://chatgpt.com".into()),
            claimed_agent: None,
            keyid: "abc".into(),
            label: "sig1".into(),
            created: None,
            expires: None,
            nonce: None,
            ..Verified::default()
        });
        assert_eq!(verdict_header(&v).unwrap(), r#"verified;agent="https://chatgpt.com";keyid="abc";label="sig1""#);
        let claimed = Verdict::Verified(Verified {
            agent: None,
            claimed_agent: Some("https://claimed.test".into()),
            keyid: "abc".into(),
            label: "sig1".into(),
            created: None,
            expires: None,
            nonce: None,
            ..Verified::default()
        });
        let header = verdict_header(&claimed).unwrap();
        assert_eq!(header, r#"verified;keyid="abc";label="sig1";claimed-agent="https://claimed.test""#);
        assert!(!header.contains(";agent="), "an unbound claim is never `agent`");
        let e: serde_json::Value = serde_json::from_str(&log_event(&claimed, 1, &[])).unwrap();
        assert_eq!((e["agent"].is_null(), e["claimed_agent"].as_str()), (true, Some("https://claimed.test")));
        assert_eq!(verdict_header(&Verdict::from(Reason::Expired)).unwrap(), "rejected;reason=expired");
        assert_eq!(verdict_header(&Verdict::Unsigned), None);
        let claim = Verdict::Rejected(Rejected {
            reason: Reason::UnverifiedClaim,
            label: None,
            agent: Some("https://chatgpt.com".into()),
            keyid: None,
        });
        assert_eq!(verdict_header(&claim).unwrap(), r#"unverified-claim;agent="https://chatgpt.com""#);
        let accept = sfv::Parser::new(ACCEPT_SIGNATURE.as_bytes()).parse_dictionary();
        assert!(accept.is_ok_and(|d: sfv::Dictionary| d.len() == 1), "Accept-Signature is an RFC 8941 dictionary");
        let e: serde_json::Value = serde_json::from_str(&log_event(&v, 42, &[("pop", "AMS")])).unwrap();
        assert_eq!(e["verdict"], "verified");
        assert_eq!(e["pop"], "AMS");
        assert_eq!(e["verify_us"], 42);
        let ctx = EventContext { time: 1_735_689_700, mode: Mode::Monitor, target: "/tickets/42?token=secret" };
        let r: serde_json::Value =
            serde_json::from_str(&request_event(&Verdict::from(Reason::Expired), 7, &ctx, &[("pop", "AMS")])).unwrap();
        assert_eq!(r["time"], 1_735_689_700);
        assert_eq!(r["mode"], "monitor");
        assert_eq!(r["path"], "/tickets/42", "the query is never logged");
        assert_eq!(r["status"], 403, "what enforce mode would answer");
        assert_eq!(
            (r["verdict"].as_str(), r["reason"].as_str(), r["pop"].as_str()),
            (Some("rejected"), Some("expired"), Some("AMS"))
        );
        let long = alloc::format!("/{}", "é".repeat(300));
        let ctx = EventContext { target: &long, ..ctx };
        let r: serde_json::Value = serde_json::from_str(&request_event(&v, 1, &ctx, &[])).unwrap();
        assert!(r["path"].as_str().unwrap().len() <= MAX_LOGGED_PATH);
        assert_eq!(r["status"], 200);
    }
}
