//! Why a signed request was rejected: one variant per violation, a stable code, a status.

use core::fmt;

/// The HTTP field a size or syntax violation refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `Signature` (RFC 9421 §4.2).
    Signature,
    /// `Signature-Input` (RFC 9421 §4.1).
    SignatureInput,
    /// `Signature-Agent` (draft-meunier-webbotauth-httpsig-protocol §4).
    SignatureAgent,
    /// A field named by a covered component.
    Covered,
}

impl Field {
    /// The field's lowercase name (or `covered-field` for any covered field).
    pub fn name(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::SignatureInput => "signature-input",
            Self::SignatureAgent => "signature-agent",
            Self::Covered => "covered-field",
        }
    }
}

/// How a rejection is answered in enforce mode (ARCHITECTURE §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// 400: the signature material is malformed.
    BadRequest,
    /// 403: well-formed, but not a valid signature under the policy.
    Forbidden,
    /// 429: a replayed nonce (or a rate limit imposed by the host).
    TooManyRequests,
    /// 503: the keys of this agent cannot be had right now (its directory failed and no
    /// usable copy is left); only this agent's signed requests get it.
    ServiceUnavailable,
}

impl Status {
    /// The numeric HTTP status code.
    pub fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Forbidden => 403,
            Self::TooManyRequests => 429,
            Self::ServiceUnavailable => 503,
        }
    }
}

/// The exact violation that made a signed request fail.
///
/// Each variant has a stable snake_case [`code`](Reason::code) (used in logs, metrics,
/// problem+json `type` URIs and fixtures) and an HTTP [`status`](Reason::status). Variants
/// carry only small, non-secret data; never header values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    // ---- 400: malformed ------------------------------------------------------------
    /// A field is larger than the configured cap.
    FieldTooLarge(Field),
    /// `Signature-Input` is present but `Signature` is not (RFC 9421 §4).
    MissingSignature,
    /// `Signature` is present but `Signature-Input` is not (RFC 9421 §4).
    MissingSignatureInput,
    /// A field is not a valid Structured Field of its type (RFC 8941 §4.2).
    MalformedField(Field),
    /// A field contains characters outside visible ASCII, SP and HTAB.
    NonAscii(Field),
    /// The same label appears twice in one field (RFC 9421 §4.1, §4.2).
    DuplicateLabel,
    /// A label in `Signature` has no partner in `Signature-Input`, or vice versa.
    LabelMismatch,
    /// More signatures in one request than the policy allows.
    TooManySignatures,
    /// A `Signature-Input` member is not an Inner List (RFC 9421 §4.1).
    SignatureInputNotInnerList,
    /// A `Signature` member is not a Byte Sequence (RFC 9421 §4.2).
    SignatureNotByteSequence,
    /// A `Signature` byte sequence is not valid base64 (RFC 8941 §3.3.5).
    SignatureBadBase64,
    /// An Ed25519 signature that is not 64 bytes (RFC 8032 §5.1.6).
    SignatureWrongLength,
    /// A signature parameter appears twice (RFC 9421 §2.3).
    DuplicateSignatureParameter,
    /// A signature parameter this implementation does not know (RFC 9421 §2.3).
    UnknownSignatureParameter,
    /// A signature parameter of the wrong type or out of range (RFC 9421 §2.3).
    InvalidSignatureParameter,
    /// The `keyid` signature parameter is absent.
    KeyidMissing,
    /// A covered component identifier is not a lowercase sf-string (RFC 9421 §2).
    InvalidComponentName,
    /// A covered component starting with `@` that RFC 9421 §2.2 does not define for requests.
    UnknownDerivedComponent,
    /// A component parameter RFC 9421 §2.1/§2.2.8 does not define.
    UnknownComponentParameter,
    /// A component parameter that is defined but not allowed here (e.g. `sf` with `bs`).
    InvalidComponentParameter,
    /// The same component identifier is covered twice (RFC 9421 §2.5).
    DuplicateComponent,
    /// More covered components than the policy allows.
    TooManyComponents,
    /// A covered field is absent from the request (RFC 9421 §2.5).
    CoveredFieldMissing,
    /// A covered field marked `sf`/`key` does not parse as a structured field (RFC 9421 §2.1.1).
    CoveredFieldNotStructured,
    /// `;key=` names a dictionary member that is absent (RFC 9421 §2.1.2).
    DictionaryMemberMissing,
    /// `@query-param;name=` names a parameter the query does not have (RFC 9421 §2.2.8).
    QueryParamMissing,
    /// The request target is not usable for the covered derived components.
    InvalidTarget,
    /// `Signature-Agent` is neither an sf-string nor a dictionary of sf-strings.
    SignatureAgentMalformed,
    /// The signature's `Signature-Agent` member is not an absolute URI without userinfo or
    /// fragment (draft-ietf-webbotauth-httpsig-protocol §4.1).
    SignatureAgentInvalidUri,
    /// The signature's `Signature-Agent` member is not an `https` URI (§4.1: MUST).
    SignatureAgentNotHttps,
    /// A signature covers another's `signature` member but not its `signature-input`
    /// member and every component that one covers (draft-ietf-webbotauth-httpsig-protocol
    /// §4.3).
    CoveredSignatureUnbound,
    /// A covered `content-digest` does not match the body (RFC 9530).
    ContentDigestMismatch,
    /// A covered `content-digest` uses no supported algorithm, or the body is unavailable.
    ContentDigestUnsupported,
    // ---- 403: failed -------------------------------------------------------------------
    /// No signature carries the required `tag` (Web Bot Auth: `web-bot-auth`).
    TagMismatch,
    /// `alg` names an algorithm other than `ed25519` (RFC 9421 §3.3.6).
    UnsupportedAlgorithm,
    /// `created` is required and absent.
    CreatedMissing,
    /// `expires` is required and absent.
    ExpiresMissing,
    /// `created` lies in the future beyond the allowed clock skew.
    NotYetValid,
    /// `expires` lies in the past beyond the allowed clock skew.
    Expired,
    /// `expires` is not after `created`.
    InvalidValidityWindow,
    /// `expires - created` exceeds the policy's maximum (Web Bot Auth: 24 h).
    ValidityTooLong,
    /// A `nonce` is required and absent.
    NonceMissing,
    /// Neither `@authority` nor `@target-uri` is covered.
    AuthorityNotCovered,
    /// `Signature-Agent` is present but this signature does not cover it.
    SignatureAgentNotCovered,
    /// `Signature-Agent` is required and absent.
    SignatureAgentMissing,
    /// The `Signature-Agent` dictionary has no single member for this signature.
    SignatureAgentAmbiguous,
    /// A component the policy requires is not covered.
    RequiredComponentNotCovered,
    /// No trusted key for this agent and keyid.
    UnknownKey,
    /// The key's JWK `nbf` lies in the future.
    KeyNotYetValid,
    /// The key's JWK `exp` lies in the past.
    KeyExpired,
    /// The Ed25519 signature does not verify over the signature base.
    SignatureInvalid,
    /// The `Signature-Agent` names an agent that has no pinned keys and is not on the
    /// operator's directory allow-list: nothing is fetched for it.
    AgentNotAllowed,
    /// An unsigned request claims an agent the operator lists as one that always signs
    /// (by its `User-Agent`, or a `Signature-Agent` without a signature).
    UnverifiedClaim,
    /// The key is a published test key (RFC 9421 B.1.4) and the configuration does not
    /// allow test keys (draft-meunier-web-bot-auth-architecture: verifiers SHOULD reject).
    TestKeyRejected,
    // ---- 503: the agent's keys are unavailable ----------------------------------------
    /// The agent's key directory could not be loaded and no usable copy is cached
    /// (never fetched successfully, or older than `max_stale`).
    DirectoryUnavailable,
    // ---- 429: replay -------------------------------------------------------------------
    /// The nonce was already seen within its validity window.
    Replay,
}

impl Reason {
    /// Stable snake_case code: part of the public interface (logs, metrics, fixtures).
    pub fn code(self) -> &'static str {
        match self {
            Self::FieldTooLarge(_) => "field_too_large",
            Self::MissingSignature => "missing_signature",
            Self::MissingSignatureInput => "missing_signature_input",
            Self::MalformedField(_) => "malformed_field",
            Self::NonAscii(_) => "non_ascii",
            Self::DuplicateLabel => "duplicate_label",
            Self::LabelMismatch => "label_mismatch",
            Self::TooManySignatures => "too_many_signatures",
            Self::SignatureInputNotInnerList => "signature_input_not_inner_list",
            Self::SignatureNotByteSequence => "signature_not_byte_sequence",
            Self::SignatureBadBase64 => "signature_bad_base64",
            Self::SignatureWrongLength => "signature_wrong_length",
            Self::DuplicateSignatureParameter => "duplicate_signature_parameter",
            Self::UnknownSignatureParameter => "unknown_signature_parameter",
            Self::InvalidSignatureParameter => "invalid_signature_parameter",
            Self::KeyidMissing => "keyid_missing",
            Self::InvalidComponentName => "invalid_component_name",
            Self::UnknownDerivedComponent => "unknown_derived_component",
            Self::UnknownComponentParameter => "unknown_component_parameter",
            Self::InvalidComponentParameter => "invalid_component_parameter",
            Self::DuplicateComponent => "duplicate_component",
            Self::TooManyComponents => "too_many_components",
            Self::CoveredFieldMissing => "covered_field_missing",
            Self::CoveredFieldNotStructured => "covered_field_not_structured",
            Self::DictionaryMemberMissing => "dictionary_member_missing",
            Self::QueryParamMissing => "query_param_missing",
            Self::InvalidTarget => "invalid_target",
            Self::SignatureAgentMalformed => "signature_agent_malformed",
            Self::SignatureAgentInvalidUri => "signature_agent_invalid_uri",
            Self::SignatureAgentNotHttps => "signature_agent_not_https",
            Self::CoveredSignatureUnbound => "covered_signature_unbound",
            Self::ContentDigestMismatch => "content_digest_mismatch",
            Self::ContentDigestUnsupported => "content_digest_unsupported",
            Self::TagMismatch => "tag_mismatch",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::CreatedMissing => "created_missing",
            Self::ExpiresMissing => "expires_missing",
            Self::NotYetValid => "not_yet_valid",
            Self::Expired => "expired",
            Self::InvalidValidityWindow => "invalid_validity_window",
            Self::ValidityTooLong => "validity_too_long",
            Self::NonceMissing => "nonce_missing",
            Self::AuthorityNotCovered => "authority_not_covered",
            Self::SignatureAgentNotCovered => "signature_agent_not_covered",
            Self::SignatureAgentMissing => "signature_agent_missing",
            Self::SignatureAgentAmbiguous => "signature_agent_ambiguous",
            Self::RequiredComponentNotCovered => "required_component_not_covered",
            Self::UnknownKey => "unknown_key",
            Self::KeyNotYetValid => "key_not_yet_valid",
            Self::KeyExpired => "key_expired",
            Self::SignatureInvalid => "signature_invalid",
            Self::AgentNotAllowed => "agent_not_allowed",
            Self::UnverifiedClaim => "unverified_claim",
            Self::TestKeyRejected => "test_key_rejected",
            Self::DirectoryUnavailable => "directory_unavailable",
            Self::Replay => "replay",
        }
    }

    /// Whether the request cost a full Ed25519 verify before it was refused: a well-formed
    /// signature over a known key that did not verify, or a valid one replayed. A source
    /// that keeps sending these forces that work on every request, so hosts count them per
    /// source for their platform's rate limiter. Every other rejection is decided before
    /// the verify, in microseconds.
    pub fn spent_a_verify(self) -> bool {
        matches!(self, Self::SignatureInvalid | Self::Replay)
    }

    /// The status an enforcing host answers with.
    pub fn status(self) -> Status {
        use Reason::*;
        match self {
            FieldTooLarge(_)
            | MissingSignature
            | MissingSignatureInput
            | MalformedField(_)
            | NonAscii(_)
            | DuplicateLabel
            | LabelMismatch
            | TooManySignatures
            | SignatureInputNotInnerList
            | SignatureNotByteSequence
            | SignatureBadBase64
            | SignatureWrongLength
            | DuplicateSignatureParameter
            | UnknownSignatureParameter
            | InvalidSignatureParameter
            | KeyidMissing
            | InvalidComponentName
            | UnknownDerivedComponent
            | UnknownComponentParameter
            | InvalidComponentParameter
            | DuplicateComponent
            | TooManyComponents
            | CoveredFieldMissing
            | CoveredFieldNotStructured
            | DictionaryMemberMissing
            | QueryParamMissing
            | InvalidTarget
            | SignatureAgentMalformed
            | SignatureAgentInvalidUri
            | SignatureAgentNotHttps
            | CoveredSignatureUnbound
            | ContentDigestMismatch
            | ContentDigestUnsupported => Status::BadRequest,
            TagMismatch
            | UnsupportedAlgorithm
            | CreatedMissing
            | ExpiresMissing
            | NotYetValid
            | Expired
            | InvalidValidityWindow
            | ValidityTooLong
            | NonceMissing
            | AuthorityNotCovered
            | SignatureAgentNotCovered
            | SignatureAgentMissing
            | SignatureAgentAmbiguous
            | RequiredComponentNotCovered
            | UnknownKey
            | KeyNotYetValid
            | KeyExpired
            | SignatureInvalid
            | AgentNotAllowed
            | UnverifiedClaim
            | TestKeyRejected => Status::Forbidden,
            Replay => Status::TooManyRequests,
            DirectoryUnavailable => Status::ServiceUnavailable,
        }
    }

    /// One sentence for humans (problem+json `title`); never contains request data.
    pub fn title(self) -> &'static str {
        use Reason::*;
        match self {
            FieldTooLarge(_) => "a signature field exceeds the size limit",
            MissingSignature => "Signature-Input without Signature",
            MissingSignatureInput => "Signature without Signature-Input",
            MalformedField(_) => "a field is not a valid structured field",
            NonAscii(_) => "a field contains non-ASCII characters",
            DuplicateLabel => "a signature label appears twice",
            LabelMismatch => "Signature and Signature-Input labels differ",
            TooManySignatures => "too many signatures",
            SignatureInputNotInnerList => "a Signature-Input member is not an inner list",
            SignatureNotByteSequence => "a Signature member is not a byte sequence",
            SignatureBadBase64 => "a signature is not valid base64",
            SignatureWrongLength => "an Ed25519 signature must be 64 bytes",
            DuplicateSignatureParameter => "a signature parameter appears twice",
            UnknownSignatureParameter => "unknown signature parameter",
            InvalidSignatureParameter => "a signature parameter has the wrong type",
            KeyidMissing => "the keyid parameter is missing",
            InvalidComponentName => "a component identifier is not a lowercase string",
            UnknownDerivedComponent => "unknown derived component",
            UnknownComponentParameter => "unknown component parameter",
            InvalidComponentParameter => "component parameter not allowed here",
            DuplicateComponent => "a component is covered twice",
            TooManyComponents => "too many covered components",
            CoveredFieldMissing => "a covered field is missing",
            CoveredFieldNotStructured => "a covered field is not a structured field",
            DictionaryMemberMissing => "a covered dictionary member is missing",
            QueryParamMissing => "a covered query parameter is missing",
            InvalidTarget => "the request target cannot be used",
            SignatureAgentMalformed => "Signature-Agent is malformed",
            SignatureAgentInvalidUri => "the Signature-Agent member is not an absolute URI",
            SignatureAgentNotHttps => "the Signature-Agent member is not an https URI",
            CoveredSignatureUnbound => "a signature covers another signature without its input and components",
            ContentDigestMismatch => "Content-Digest does not match the body",
            ContentDigestUnsupported => "Content-Digest cannot be checked",
            TagMismatch => "no signature with the required tag",
            UnsupportedAlgorithm => "unsupported signature algorithm",
            CreatedMissing => "the created parameter is missing",
            ExpiresMissing => "the expires parameter is missing",
            NotYetValid => "the signature is not yet valid",
            Expired => "the signature has expired",
            InvalidValidityWindow => "expires is not after created",
            ValidityTooLong => "the validity window is too long",
            NonceMissing => "the nonce parameter is missing",
            AuthorityNotCovered => "@authority is not covered",
            SignatureAgentNotCovered => "Signature-Agent is not covered",
            SignatureAgentMissing => "Signature-Agent is missing",
            SignatureAgentAmbiguous => "Signature-Agent does not name one agent",
            RequiredComponentNotCovered => "a required component is not covered",
            UnknownKey => "no trusted key for this agent and keyid",
            KeyNotYetValid => "the key is not yet valid",
            KeyExpired => "the key has expired",
            SignatureInvalid => "the signature does not verify",
            AgentNotAllowed => "this agent is not trusted here",
            UnverifiedClaim => "this agent always signs its requests; this one is unsigned",
            TestKeyRejected => "a published test key is not trusted",
            DirectoryUnavailable => "the agent's key directory is unavailable",
            Replay => "the nonce was already used",
        }
    }

    /// Every variant once (with `Field::Signature` where a field is carried): for docs,
    /// fixture coverage checks and exhaustive tests.
    pub const ALL: &'static [Reason] = &[
        Self::FieldTooLarge(Field::Signature),
        Self::MissingSignature,
        Self::MissingSignatureInput,
        Self::MalformedField(Field::Signature),
        Self::NonAscii(Field::Signature),
        Self::DuplicateLabel,
        Self::LabelMismatch,
        Self::TooManySignatures,
        Self::SignatureInputNotInnerList,
        Self::SignatureNotByteSequence,
        Self::SignatureBadBase64,
        Self::SignatureWrongLength,
        Self::DuplicateSignatureParameter,
        Self::UnknownSignatureParameter,
        Self::InvalidSignatureParameter,
        Self::KeyidMissing,
        Self::InvalidComponentName,
        Self::UnknownDerivedComponent,
        Self::UnknownComponentParameter,
        Self::InvalidComponentParameter,
        Self::DuplicateComponent,
        Self::TooManyComponents,
        Self::CoveredFieldMissing,
        Self::CoveredFieldNotStructured,
        Self::DictionaryMemberMissing,
        Self::QueryParamMissing,
        Self::InvalidTarget,
        Self::SignatureAgentMalformed,
        Self::SignatureAgentInvalidUri,
        Self::SignatureAgentNotHttps,
        Self::CoveredSignatureUnbound,
        Self::ContentDigestMismatch,
        Self::ContentDigestUnsupported,
        Self::TagMismatch,
        Self::UnsupportedAlgorithm,
        Self::CreatedMissing,
        Self::ExpiresMissing,
        Self::NotYetValid,
        Self::Expired,
        Self::InvalidValidityWindow,
        Self::ValidityTooLong,
        Self::NonceMissing,
        Self::AuthorityNotCovered,
        Self::SignatureAgentNotCovered,
        Self::SignatureAgentMissing,
        Self::SignatureAgentAmbiguous,
        Self::RequiredComponentNotCovered,
        Self::UnknownKey,
        Self::KeyNotYetValid,
        Self::KeyExpired,
        Self::SignatureInvalid,
        Self::AgentNotAllowed,
        Self::UnverifiedClaim,
        Self::TestKeyRejected,
        Self::Replay,
        Self::DirectoryUnavailable,
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FieldTooLarge(field) | Self::MalformedField(field) | Self::NonAscii(field) => {
                write!(f, "{} ({}): {}", self.code(), field.name(), self.title())
            }
            _ => write!(f, "{}: {}", self.code(), self.title()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = BTreeSet::new();
        for r in Reason::ALL {
            let code = r.code();
            assert!(seen.insert(code), "duplicate code {code}");
            assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{code}");
        }
    }

    #[test]
    fn statuses_follow_architecture() {
        assert_eq!(Reason::SignatureBadBase64.status().code(), 400);
        assert_eq!(Reason::SignatureInvalid.status().code(), 403);
        assert_eq!(Reason::Replay.status().code(), 429);
        assert_eq!(Reason::AgentNotAllowed.status().code(), 403);
        assert_eq!(Reason::TestKeyRejected.status().code(), 403);
        assert_eq!(Reason::DirectoryUnavailable.status().code(), 503);
    }
}
