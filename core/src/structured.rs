//! Glue to `sfv` (RFC 8941 / RFC 9651): strict parsing and canonical serialisation.
//!
//! RFC 8941 §4.2 lets later duplicates of a dictionary key or parameter silently replace
//! earlier ones. For signature fields that would let one label hide another, so a first
//! pass with an `sfv` visitor reports duplicates before the typed parse.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::convert::Infallible;

use sfv::visitor::{DictionaryVisitor, EntryVisitor, InnerListVisitor, ItemVisitor, ParameterVisitor};
use sfv::{BareItemFromInput, KeyRef, Parser, Version};

/// A duplicate found by the strict pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// Syntax error (RFC 8941 §4.2 parsing fails).
    Syntax,
    /// The same dictionary key twice.
    DuplicateKey,
    /// The same parameter key twice on an inner list (the member's own parameters).
    DuplicateListParam,
    /// The same parameter key twice on an item.
    DuplicateItemParam,
}

/// Parse a Dictionary (RFC 8941 §3.2) rejecting duplicate keys and parameters.
pub(crate) fn parse_dictionary_strict(input: &[u8], version: Version) -> Result<sfv::Dictionary, Strictness> {
    let found = Cell::new(None);
    Parser::new(input)
        .with_version(version)
        .parse_dictionary_with_visitor(DupDict { found: &found, keys: Vec::new() })
        .map_err(|_| Strictness::Syntax)?;
    if let Some(dup) = found.get() {
        return Err(dup);
    }
    Parser::new(input).with_version(version).parse_dictionary().map_err(|_| Strictness::Syntax)
}

/// Parse any structured field value: Dictionary first, then List (an Item parses and
/// serialises identically as a one-member List).
pub(crate) fn parse_any(input: &[u8]) -> Option<String> {
    if let Ok(dict) = Parser::new(input).parse_dictionary::<sfv::Dictionary>() {
        return serialize_dictionary(&dict);
    }
    let list: sfv::List = Parser::new(input).parse_list().ok()?;
    serialize_list(&list)
}

/// Canonical serialisation of a dictionary (RFC 8941 §4.1.2); `None` if empty.
pub(crate) fn serialize_dictionary(dict: &sfv::Dictionary) -> Option<String> {
    let mut ser = sfv::DictSerializer::new();
    ser.members(dict);
    ser.finish()
}

/// Canonical serialisation of a list (RFC 8941 §4.1.1); `None` if empty.
pub(crate) fn serialize_list(list: &sfv::List) -> Option<String> {
    let mut ser = sfv::ListSerializer::new();
    ser.members(list);
    ser.finish()
}

/// Canonical serialisation of one list entry (an item or inner list with parameters).
pub(crate) fn serialize_entry(entry: &sfv::ListEntry) -> Option<String> {
    let mut ser = sfv::ListSerializer::new();
    ser.members(core::iter::once(entry));
    ser.finish()
}

/// Canonical serialisation of an item with its parameters (RFC 8941 §4.1.3).
pub(crate) fn serialize_item(item: &sfv::Item) -> String {
    sfv::ItemSerializer::new().bare_item(&item.bare_item).parameters(&item.params).finish()
}

/// Canonical serialisation of an inner list (RFC 8941 §4.1.1.1).
pub(crate) fn serialize_inner_list(list: &sfv::InnerList) -> String {
    let mut out = String::new();
    let mut ser = sfv::ListSerializer::with_buffer(&mut out);
    {
        let mut inner = ser.inner_list();
        inner.items(&list.items);
        let _ = inner.finish().parameters(&list.params);
    }
    let _ = ser.finish();
    out
}

struct DupDict<'s, 'de> {
    found: &'s Cell<Option<Strictness>>,
    keys: Vec<&'de KeyRef>,
}

impl<'de> DictionaryVisitor<'de> for DupDict<'_, 'de> {
    type Out = ();
    type Error = Infallible;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, Self::Error> {
        if self.keys.contains(&key) {
            note(self.found, Strictness::DuplicateKey);
        } else {
            self.keys.push(key);
        }
        Ok(DupEntry { found: self.found })
    }

    fn finish(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn note(found: &Cell<Option<Strictness>>, what: Strictness) {
    if found.get().is_none() {
        found.set(Some(what));
    }
}

#[derive(Clone, Copy)]
struct DupEntry<'s> {
    found: &'s Cell<Option<Strictness>>,
}

impl<'de> EntryVisitor<'de> for DupEntry<'_> {
    type Error = Infallible;
    fn item(self) -> Result<impl ItemVisitor<'de>, Self::Error> {
        Ok(self)
    }
    fn inner_list(self) -> Result<impl InnerListVisitor<'de>, Self::Error> {
        Ok(self)
    }
}

impl<'de> ItemVisitor<'de> for DupEntry<'_> {
    type Out = ();
    type Error = Infallible;
    fn bare_item(
        self,
        _bare_item: BareItemFromInput<'de>,
    ) -> Result<impl ParameterVisitor<'de, Out = ()>, Self::Error> {
        Ok(DupParams { found: self.found, keys: Vec::new(), on_dup: Strictness::DuplicateItemParam })
    }
}

impl<'de> InnerListVisitor<'de> for DupEntry<'_> {
    type Error = Infallible;
    fn item(&mut self) -> Result<impl ItemVisitor<'de>, Self::Error> {
        Ok(*self)
    }
    fn finish(self) -> Result<impl ParameterVisitor<'de>, Self::Error> {
        Ok(DupParams { found: self.found, keys: Vec::new(), on_dup: Strictness::DuplicateListParam })
    }
}

struct DupParams<'s, 'de> {
    found: &'s Cell<Option<Strictness>>,
    keys: Vec<&'de KeyRef>,
    on_dup: Strictness,
}

impl<'de> ParameterVisitor<'de> for DupParams<'_, 'de> {
    type Out = ();
    type Error = Infallible;
    fn parameter(&mut self, key: &'de KeyRef, _value: BareItemFromInput<'de>) -> Result<(), Self::Error> {
        if self.keys.contains(&key) {
            note(self.found, self.on_dup);
        } else {
            self.keys.push(key);
        }
        Ok(())
    }
    fn finish(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_dictionary_rejects_duplicates() {
        let v = Version::Rfc8941;
        assert!(parse_dictionary_strict(b"a=1, b=2", v).is_ok());
        assert_eq!(parse_dictionary_strict(b"a=1, a=2", v).err(), Some(Strictness::DuplicateKey));
        assert_eq!(parse_dictionary_strict(b"a=(\"x\");k=1;k=2", v).err(), Some(Strictness::DuplicateListParam));
        assert_eq!(parse_dictionary_strict(b"a=(\"x\";k;k)", v).err(), Some(Strictness::DuplicateItemParam));
        assert_eq!(parse_dictionary_strict(b"a=(", v).err(), Some(Strictness::Syntax));
    }

    #[test]
    fn inner_list_serialises_canonically() {
        let d = parse_dictionary_strict(b"s=( \"a\"   \"b\";sf );created=1", Version::Rfc8941).unwrap();
        let Some(sfv::ListEntry::InnerList(l)) = d.values().next() else { panic!() };
        assert_eq!(serialize_inner_list(l), "(\"a\" \"b\";sf);created=1");
    }
}
