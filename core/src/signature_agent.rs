//! The `Signature-Agent` field (draft-meunier-webbotauth-httpsig-protocol §4): the legacy
//! sf-string form (`"https://chatgpt.com"`) and the dictionary form (`sig1="https://…"`).

use alloc::string::String;
use alloc::vec::Vec;

use sfv::{BareItem, ListEntry, Parser, Version};

use crate::reason::Reason;
use crate::structured;

/// A parsed `Signature-Agent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureAgent {
    /// Legacy form: one sf-string.
    Legacy(String),
    /// Dictionary form: label → URI (parameters such as `type` are accepted and ignored).
    Dictionary(Vec<(String, String)>),
}

/// Parse the joined `Signature-Agent` lines.
pub fn parse(value: &[u8]) -> Result<SignatureAgent, Reason> {
    if let Ok(item) = Parser::new(value).with_version(Version::Rfc8941).parse_item::<sfv::Item>() {
        return match item.bare_item {
            BareItem::String(s) => Ok(SignatureAgent::Legacy(s.as_str().into())),
            _ => Err(Reason::SignatureAgentMalformed),
        };
    }
    let dict =
        structured::parse_dictionary_strict(value, Version::Rfc8941).map_err(|_| Reason::SignatureAgentMalformed)?;
    let members = dict
        .into_iter()
        .map(|(k, v)| match v {
            ListEntry::Item(sfv::Item { bare_item: BareItem::String(s), .. }) => {
                Ok((String::from(k.as_str()), String::from(s.as_str())))
            }
            _ => Err(Reason::SignatureAgentMalformed),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SignatureAgent::Dictionary(members))
}

impl SignatureAgent {
    /// The agent URI a signature names: `key` is the `;key=` of its covered
    /// `signature-agent` component (`None` when it covers the whole field).
    pub fn agent_for(&self, key: Option<&str>) -> Result<&str, Reason> {
        match (self, key) {
            (Self::Legacy(uri), None) => Ok(uri),
            (Self::Legacy(_), Some(_)) => Err(Reason::CoveredFieldNotStructured),
            (Self::Dictionary(members), Some(key)) => {
                members.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).ok_or(Reason::DictionaryMemberMissing)
            }
            (Self::Dictionary(members), None) => match members.as_slice() {
                [(_, uri)] => Ok(uri),
                _ => Err(Reason::SignatureAgentAmbiguous),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        assert_eq!(parse(br#""https://chatgpt.com""#), Ok(SignatureAgent::Legacy("https://chatgpt.com".into())));
        let d = parse(br#"sig1="https://a.test";type=jwks_uri, sig2="https://b.test""#).unwrap();
        assert_eq!(d.agent_for(Some("sig2")), Ok("https://b.test"));
        assert_eq!(d.agent_for(None), Err(Reason::SignatureAgentAmbiguous));
        assert_eq!(d.agent_for(Some("x")), Err(Reason::DictionaryMemberMissing));
        assert_eq!(parse(b"https://chatgpt.com"), Err(Reason::SignatureAgentMalformed));
        assert_eq!(parse(b"sig1=1"), Err(Reason::SignatureAgentMalformed));
        assert_eq!(parse(b"a=\"x\", a=\"y\""), Err(Reason::SignatureAgentMalformed));
    }
}
