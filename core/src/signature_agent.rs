//! The `Signature-Agent` field (draft-ietf-webbotauth-httpsig-protocol §4.1): the dictionary
//! form (`sig1="https://…"`) signers send, and the legacy sf-string form
//! (`"https://chatgpt.com"`) a verifier may accept as one member.
//!
//! Decisions where the drafts leave room (each recorded as fixtures in `agent.json`):
//! - The legacy form is one member, covered as the whole field (`"signature-agent"`); a
//!   `;key=` on it is `covered_field_not_structured`.
//! - A member that carries parameters is ignored, as the WG editor's copy says: it names no
//!   agent, so the verdict can only name the agent the key is registered for (Cloudflare's
//!   published vectors send `;type=jwks_uri` and still verify with that agent's key).
//! - A member must be an absolute `https` URI (§4.1 MUST): an origin, or a JWK Set URL with a
//!   path. Any other scheme is `signature_agent_not_https`; a text that is no URI, or carries
//!   userinfo or a fragment, is `signature_agent_invalid_uri`.

use alloc::string::String;
use alloc::vec::Vec;

use sfv::{BareItem, ListEntry, Parser, Version};

use crate::agent_uri::AgentUri;
use crate::reason::Reason;
use crate::structured;

/// One `Signature-Agent` member: its URI text as sent, and whether it carried parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The sf-string's content.
    pub uri: String,
    /// Whether the member had parameters (`;type=…`): the WG text ignores such members.
    pub parameters: bool,
}

/// A parsed `Signature-Agent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureAgent {
    /// Legacy form: one sf-string.
    Legacy(Member),
    /// Dictionary form: label → member.
    Dictionary(Vec<(String, Member)>),
}

/// Parse the joined `Signature-Agent` lines.
pub fn parse(value: &[u8]) -> Result<SignatureAgent, Reason> {
    if let Ok(item) = Parser::new(value).with_version(Version::Rfc8941).parse_item::<sfv::Item>() {
        return match item.bare_item {
            BareItem::String(s) => {
                Ok(SignatureAgent::Legacy(Member { uri: s.as_str().into(), parameters: !item.params.is_empty() }))
            }
            _ => Err(Reason::SignatureAgentMalformed),
        };
    }
    let dict =
        structured::parse_dictionary_strict(value, Version::Rfc8941).map_err(|_| Reason::SignatureAgentMalformed)?;
    let members = dict
        .into_iter()
        .map(|(k, v)| match v {
            ListEntry::Item(sfv::Item { bare_item: BareItem::String(s), params }) => {
                Ok((String::from(k.as_str()), Member { uri: String::from(s.as_str()), parameters: !params.is_empty() }))
            }
            _ => Err(Reason::SignatureAgentMalformed),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SignatureAgent::Dictionary(members))
}

impl Member {
    /// The agent this member names, normalised (RFC 3986 §6.2.2–6.2.3): `None` for an
    /// ignored member (one with parameters), an error when the member is unusable.
    pub fn agent(&self) -> Result<Option<AgentUri>, Reason> {
        if self.parameters {
            return Ok(None);
        }
        self.https_uri().map(Some)
    }

    /// The member's URI, normalised, if it is an absolute `https` URI without userinfo or
    /// fragment (§4.1), whether or not the member is ignored.
    fn https_uri(&self) -> Result<AgentUri, Reason> {
        if self.uri.contains('#') {
            return Err(Reason::SignatureAgentInvalidUri);
        }
        let uri = AgentUri::parse(&self.uri).map_err(|_| Reason::SignatureAgentInvalidUri)?;
        if uri.scheme() != "https" {
            return Err(Reason::SignatureAgentNotHttps);
        }
        Ok(uri)
    }
}

impl SignatureAgent {
    /// The member a signature names: `key` is the `;key=` of its covered `signature-agent`
    /// component (`None` when it covers the whole field).
    pub fn member_for(&self, key: Option<&str>) -> Result<&Member, Reason> {
        match (self, key) {
            (Self::Legacy(member), None) => Ok(member),
            (Self::Legacy(_), Some(_)) => Err(Reason::CoveredFieldNotStructured),
            (Self::Dictionary(members), Some(key)) => {
                members.iter().find(|(k, _)| k == key).map(|(_, m)| m).ok_or(Reason::DictionaryMemberMissing)
            }
            (Self::Dictionary(members), None) => match members.as_slice() {
                [(_, member)] => Ok(member),
                _ => Err(Reason::SignatureAgentAmbiguous),
            },
        }
    }

    /// The agent a signature names, normalised: [`Self::member_for`], then [`Member::agent`].
    pub fn agent_for(&self, key: Option<&str>) -> Result<Option<AgentUri>, Reason> {
        self.member_for(key)?.agent()
    }

    /// Every usable agent the field names (members that pass [`Member::agent`]), in order:
    /// the candidates a host looks keys up for before core decides which one is covered.
    pub fn agents(&self) -> Vec<AgentUri> {
        match self {
            Self::Legacy(m) => m.agent().ok().flatten().into_iter().collect(),
            Self::Dictionary(members) => members.iter().filter_map(|(_, m)| m.agent().ok().flatten()).collect(),
        }
    }

    /// [`Self::agents`] plus the https URIs of ignored members (with parameters): the agents
    /// whose keys a host with a partial keyring (one store lookup per agent) must load so
    /// that it finds what core finds in a full keyring, where an ignored member's key is
    /// searched under every agent.
    pub fn key_candidates(&self) -> Vec<AgentUri> {
        match self {
            Self::Legacy(m) => m.https_uri().ok().into_iter().collect(),
            Self::Dictionary(members) => members.iter().filter_map(|(_, m)| m.https_uri().ok()).collect(),
        }
    }

    /// Whether the dictionary has a member keyed `label` (always false for the legacy form).
    pub fn has_member(&self, label: &str) -> bool {
        matches!(self, Self::Dictionary(members) if members.iter().any(|(k, _)| k == label))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(value: &[u8], key: Option<&str>) -> Result<Option<String>, Reason> {
        Ok(parse(value)?.agent_for(key)?.map(|u| String::from(u.as_str())))
    }

    #[test]
    fn both_forms() {
        let legacy = parse(br#""https://chatgpt.com""#).unwrap();
        assert_eq!(legacy, SignatureAgent::Legacy(Member { uri: "https://chatgpt.com".into(), parameters: false }));
        assert_eq!(legacy.agent_for(None).unwrap().unwrap().as_str(), "https://chatgpt.com");
        let d = parse(br#"sig1="https://a.test";type=jwks_uri, sig2="https://b.test""#).unwrap();
        assert_eq!(d.agent_for(Some("sig2")).unwrap().unwrap().as_str(), "https://b.test");
        assert_eq!(d.agent_for(Some("sig1")), Ok(None), "a member with parameters is ignored");
        assert_eq!(d.agent_for(None), Err(Reason::SignatureAgentAmbiguous));
        assert_eq!(d.agent_for(Some("x")), Err(Reason::DictionaryMemberMissing));
        assert_eq!(d.agents().iter().map(AgentUri::as_str).collect::<Vec<_>>(), ["https://b.test"]);
        let all = d.key_candidates();
        assert_eq!(all.iter().map(AgentUri::as_str).collect::<Vec<_>>(), ["https://a.test", "https://b.test"]);
        assert!(d.has_member("sig1") && !d.has_member("x") && !legacy.has_member("sig1"));
        assert_eq!(parse(b"https://chatgpt.com"), Err(Reason::SignatureAgentMalformed));
        assert_eq!(parse(b"sig1=1"), Err(Reason::SignatureAgentMalformed));
        assert_eq!(parse(b"a=\"x\", a=\"y\""), Err(Reason::SignatureAgentMalformed));
    }

    #[test]
    fn members_must_be_https_uris() {
        assert_eq!(agent(br#""http://chatgpt.com""#, None), Err(Reason::SignatureAgentNotHttps));
        assert_eq!(agent(br#"sig1="http://a.test""#, Some("sig1")), Err(Reason::SignatureAgentNotHttps));
        assert_eq!(agent(br#"sig1="ftp://a.test""#, Some("sig1")), Err(Reason::SignatureAgentNotHttps));
        assert_eq!(agent(br#""chatgpt.com""#, None), Err(Reason::SignatureAgentInvalidUri));
        assert_eq!(agent(br#""https://user@a.test""#, None), Err(Reason::SignatureAgentInvalidUri));
        assert_eq!(agent(br#""https://a.test/#x""#, None), Err(Reason::SignatureAgentInvalidUri));
        assert_eq!(agent(br#""""#, None), Err(Reason::SignatureAgentInvalidUri));
        assert_eq!(agent(br#""https://a.test";x=1"#, None), Ok(None));
        assert_eq!(agent(br#""http://a.test";x=1"#, None), Ok(None), "ignored before any other rule");
    }

    #[test]
    fn agents_are_normalised() {
        assert_eq!(agent(br#""HTTPS://ChatGPT.com:443/""#, None), Ok(Some("https://chatgpt.com".into())));
        assert_eq!(
            agent(br#"g="https://Agent.Bot.Goog/.well-known/http-message-signatures-directory""#, Some("g")),
            Ok(Some("https://agent.bot.goog/.well-known/http-message-signatures-directory".into()))
        );
    }
}
