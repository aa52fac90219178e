//! `--components`: covered component identifiers written plainly (`@authority`,
//! `signature-agent;key=sig1`, `@query-param;name=x`) turned into the sf-strings with
//! parameters of RFC 9421 §2 (`"signature-agent";key="sig1"`).

use anyhow::{bail, Context as _, Result};
use sfv::{ItemSerializer, KeyRef, RefBareItem, StringRef};

/// Parameters without a value (RFC 9421 §2.1.1 `sf`, §2.1.3 `bs`, §2.4 `req`).
const FLAG_PARAMS: [&str; 3] = ["sf", "bs", "req"];

/// One plain component, e.g. `signature-agent;key=sig1`, as an sf item. An entry that
/// already starts with `"` is taken as written (after checking it parses).
pub fn to_identifier(plain: &str) -> Result<String> {
    let plain = plain.trim();
    if plain.is_empty() {
        bail!("empty component name in --components");
    }
    if plain.starts_with('"') {
        sfv::Parser::new(plain.as_bytes())
            .parse_item::<sfv::Item>()
            .map_err(|e| anyhow::anyhow!("component {plain} is not a structured-field item: {e}"))?;
        return Ok(plain.to_owned());
    }
    let mut parts = plain.split(';');
    let name = parts.next().unwrap_or_default().trim();
    // RFC 9421 §2.1: field names are lowercased in component identifiers.
    let name = if name.starts_with('@') { name.to_owned() } else { name.to_ascii_lowercase() };
    let name_ref = StringRef::from_str(&name).map_err(|e| anyhow::anyhow!("component name {name:?}: {e}"))?;
    let mut params: Vec<(String, Option<String>)> = Vec::new();
    for param in parts {
        let param = param.trim();
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => (k.trim(), Some(unquote(v.trim()).to_owned())),
            None => (param, None),
        };
        if value.is_none() && !FLAG_PARAMS.contains(&key) {
            bail!("component parameter {key:?} of {plain:?} needs a value (e.g. key=sig1 or name=q)");
        }
        params.push((key.to_owned(), value));
    }
    let mut ser = ItemSerializer::new().bare_item(name_ref);
    for (key, value) in &params {
        let key_ref =
            KeyRef::from_str(key).with_context(|| format!("component parameter {key:?} of {plain:?} is not a key"))?;
        ser = match value {
            Some(v) => {
                let v = StringRef::from_str(v).map_err(|e| anyhow::anyhow!("parameter value {v:?}: {e}"))?;
                ser.parameter(key_ref, RefBareItem::from(v))
            }
            None => ser.parameter(key_ref, true),
        };
    }
    Ok(ser.finish())
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v)
}

/// A comma-separated `--components` list.
pub fn parse_list(list: &str) -> Result<Vec<String>> {
    list.split(',').map(to_identifier).collect()
}

/// The lowercase field name an identifier covers, `None` for derived components.
pub fn field_name(identifier: &str) -> Option<String> {
    let item = sfv::Parser::new(identifier.as_bytes()).parse_item::<sfv::Item>().ok()?;
    let name = item.bare_item.as_string()?.as_str();
    (!name.starts_with('@')).then(|| name.to_owned())
}

/// Whether the identifier has the `req` parameter (taken from the related request).
pub fn is_req(identifier: &str) -> bool {
    sfv::Parser::new(identifier.as_bytes())
        .parse_item::<sfv::Item>()
        .is_ok_and(|item| item.params.iter().any(|(k, _)| k.as_str() == "req"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_become_sf_items() {
        let cases = [
            ("@authority", r#""@authority""#),
            ("Signature-Agent;key=sig1", r#""signature-agent";key="sig1""#),
            ("signature-agent;key=\"sig1\"", r#""signature-agent";key="sig1""#),
            ("@query-param;name=x", r#""@query-param";name="x""#),
            (" content-digest ", r#""content-digest""#),
            ("@authority;req", r#""@authority";req"#),
            ("example-dict;sf", r#""example-dict";sf"#),
            (r#""date""#, r#""date""#),
        ];
        for (plain, want) in cases {
            assert_eq!(to_identifier(plain).unwrap(), want, "{plain}");
        }
        assert_eq!(parse_list("@method,@path").unwrap(), [r#""@method""#, r#""@path""#]);
        assert_eq!(field_name(r#""signature-agent";key="a""#).as_deref(), Some("signature-agent"));
        assert_eq!(field_name(r#""@path""#), None);
        assert!(is_req(r#""@authority";req"#));
    }

    #[test]
    fn bad_components_are_errors() {
        assert!(to_identifier("").is_err());
        assert!(to_identifier("x;key").is_err());
        assert!(to_identifier("x;Key=a").is_err());
        assert!(to_identifier("caf\u{e9}").is_err());
        assert!(to_identifier("\"unterminated").is_err());
    }
}
