//! The `Signature-Input` and `Signature` fields (RFC 9421 §4.1, §4.2) and signature
//! parameters (RFC 9421 §2.3).

use alloc::string::String;
use alloc::vec::Vec;

use sfv::{BareItem, ListEntry, Version};

use crate::components::ComponentId;
use crate::crypto::SIGNATURE_LEN;
use crate::reason::{Field, Reason};
use crate::structured::{self, Strictness};

/// One `Signature-Input` member before interpretation: a label and its inner list.
#[derive(Clone, Debug)]
pub struct Member {
    /// The signature label (dictionary key).
    pub label: String,
    inner: sfv::InnerList,
}

/// Signature parameters (RFC 9421 §2.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureParams {
    /// `created`: unix seconds.
    pub created: Option<u64>,
    /// `expires`: unix seconds.
    pub expires: Option<u64>,
    /// `nonce`.
    pub nonce: Option<String>,
    /// `alg`.
    pub alg: Option<String>,
    /// `keyid`.
    pub keyid: Option<String>,
    /// `tag`.
    pub tag: Option<String>,
}

/// One interpreted signature: what it covers, its parameters, and the exact
/// `@signature-params` value (RFC 9421 §2.3).
#[derive(Clone, Debug)]
pub struct SignatureInput {
    /// The label.
    pub label: String,
    /// The covered components, in order.
    pub components: Vec<ComponentId>,
    /// The parameters.
    pub params: SignatureParams,
    /// The canonical serialisation of the inner list with its parameters.
    pub signature_params: String,
}

/// Parse `Signature-Input` (joined field lines) into members (RFC 9421 §4.1).
pub fn parse_members(value: &[u8]) -> Result<Vec<Member>, Reason> {
    let dict = structured::parse_dictionary_strict(value, Version::Rfc8941).map_err(|e| match e {
        Strictness::Syntax => Reason::MalformedField(Field::SignatureInput),
        Strictness::DuplicateKey => Reason::DuplicateLabel,
        Strictness::DuplicateListParam => Reason::DuplicateSignatureParameter,
        Strictness::DuplicateItemParam => Reason::InvalidComponentParameter,
    })?;
    dict.into_iter()
        .map(|(label, entry)| match entry {
            ListEntry::InnerList(inner) => Ok(Member { label: label.as_str().into(), inner }),
            ListEntry::Item(_) => Err(Reason::SignatureInputNotInnerList),
        })
        .collect()
}

/// Parse `Signature` (joined field lines) into (label, signature bytes) (RFC 9421 §4.2).
pub fn parse_signatures(value: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Reason> {
    let dict = structured::parse_dictionary_strict(value, Version::Rfc8941).map_err(|e| match e {
        Strictness::Syntax => Reason::MalformedField(Field::Signature),
        Strictness::DuplicateKey => Reason::DuplicateLabel,
        Strictness::DuplicateListParam | Strictness::DuplicateItemParam => Reason::MalformedField(Field::Signature),
    })?;
    dict.into_iter()
        .map(|(label, entry)| match entry {
            ListEntry::Item(sfv::Item { bare_item: BareItem::ByteSequence(bytes), .. }) => {
                Ok((label.as_str().into(), bytes))
            }
            _ => Err(Reason::SignatureNotByteSequence),
        })
        .collect()
}

/// An Ed25519 signature from its byte sequence (RFC 8032 §5.1.6: 64 bytes).
pub fn ed25519_signature(bytes: &[u8]) -> Result<[u8; SIGNATURE_LEN], Reason> {
    bytes.try_into().map_err(|_| Reason::SignatureWrongLength)
}

impl Member {
    /// The `tag` parameter, if present and a string; `Err` if present with another type.
    pub fn tag(&self) -> Result<Option<&str>, Reason> {
        match self.inner.params.iter().find(|(k, _)| k.as_str() == "tag") {
            None => Ok(None),
            Some((_, BareItem::String(s))) => Ok(Some(s.as_str())),
            Some(_) => Err(Reason::InvalidSignatureParameter),
        }
    }

    /// Interpret the member: components (RFC 9421 §2) and parameters (§2.3).
    pub fn interpret(&self, max_components: usize) -> Result<SignatureInput, Reason> {
        if self.inner.items.len() > max_components {
            return Err(Reason::TooManyComponents);
        }
        let params = signature_params(&self.inner.params)?;
        let mut components: Vec<ComponentId> = Vec::with_capacity(self.inner.items.len());
        for item in &self.inner.items {
            let id = ComponentId::from_item(item)?;
            // §2.5: "a component identifier ... MUST NOT appear more than once".
            if components.iter().any(|c| c.same_as(&id)) {
                return Err(Reason::DuplicateComponent);
            }
            components.push(id);
        }
        Ok(SignatureInput {
            label: self.label.clone(),
            components,
            params,
            signature_params: structured::serialize_inner_list(&self.inner),
        })
    }
}

/// Signature parameters (RFC 9421 §2.3); unknown parameters are errors.
fn signature_params(params: &sfv::Parameters) -> Result<SignatureParams, Reason> {
    let mut out = SignatureParams::default();
    for (key, value) in params {
        match key.as_str() {
            "created" => out.created = Some(timestamp(value)?),
            "expires" => out.expires = Some(timestamp(value)?),
            "nonce" => out.nonce = Some(string(value)?),
            "alg" => out.alg = Some(string(value)?),
            "keyid" => out.keyid = Some(string(value)?),
            "tag" => out.tag = Some(string(value)?),
            _ => return Err(Reason::UnknownSignatureParameter),
        }
    }
    Ok(out)
}

/// §2.3: `created`/`expires` are Integers (UNIX timestamps); negative values are invalid.
fn timestamp(value: &BareItem) -> Result<u64, Reason> {
    match value {
        BareItem::Integer(i) => u64::try_from(i64::from(*i)).map_err(|_| Reason::InvalidSignatureParameter),
        _ => Err(Reason::InvalidSignatureParameter),
    }
}

fn string(value: &BareItem) -> Result<String, Reason> {
    match value {
        BareItem::String(s) => Ok(s.as_str().into()),
        _ => Err(Reason::InvalidSignatureParameter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_params() {
        let m = parse_members(br#"sig1=("@authority" "signature-agent";key="a");created=1;expires=2;keyid="k";tag="web-bot-auth";alg="ed25519";nonce="n""#).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].tag(), Ok(Some("web-bot-auth")));
        let si = m[0].interpret(32).unwrap();
        assert_eq!(si.params.created, Some(1));
        assert_eq!(si.params.keyid.as_deref(), Some("k"));
        assert_eq!(si.components.len(), 2);
        assert_eq!(si.components[1].identifier(), "\"signature-agent\";key=\"a\"");
    }

    #[test]
    fn malformed_inputs_have_exact_reasons() {
        let cases: &[(&[u8], Reason)] = &[
            (b"sig1=(\"@authority\");created=1, sig1=(\"@path\")", Reason::DuplicateLabel),
            (b"sig1=(\"@authority\");created=1;created=2", Reason::DuplicateSignatureParameter),
            (b"sig1=\"@authority\"", Reason::SignatureInputNotInnerList),
            (b"sig1=(\"@authority\"", Reason::MalformedField(Field::SignatureInput)),
            (b"Sig1=(\"@authority\")", Reason::MalformedField(Field::SignatureInput)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_members(input).err(), Some(*want), "{}", String::from_utf8_lossy(input));
        }
        let interp = |s: &[u8]| parse_members(s).unwrap()[0].interpret(32).err();
        assert_eq!(interp(b"s=(\"@authority\");foo=1"), Some(Reason::UnknownSignatureParameter));
        assert_eq!(interp(b"s=(\"@authority\");created=-1"), Some(Reason::InvalidSignatureParameter));
        assert_eq!(interp(b"s=(\"@authority\");created=\"1\""), Some(Reason::InvalidSignatureParameter));
        assert_eq!(interp(b"s=(\"@authority\" \"@authority\")"), Some(Reason::DuplicateComponent));
        assert_eq!(interp(b"s=(authority)"), Some(Reason::InvalidComponentName));
        assert_eq!(
            parse_members(b"s=(\"a\" \"b\" \"c\")").unwrap()[0].interpret(2).err(),
            Some(Reason::TooManyComponents)
        );
    }

    #[test]
    fn signatures() {
        let s = parse_signatures(b"sig1=:AAAA:").unwrap();
        assert_eq!(s, [("sig1".into(), alloc::vec![0, 0, 0])]);
        assert_eq!(parse_signatures(b"sig1=\"x\"").err(), Some(Reason::SignatureNotByteSequence));
        assert_eq!(parse_signatures(b"sig1=:AA:, sig1=:AA:").err(), Some(Reason::DuplicateLabel));
        assert_eq!(ed25519_signature(&[0; 63]).err(), Some(Reason::SignatureWrongLength));
    }
}
