//! Glue to `sfv` (RFC 8941 / RFC 9651): strict parsing and canonical serialisation.
//!
//! RFC 8941 §4.2 lets later duplicates of a dictionary key or parameter silently replace
//! earlier ones. For signature fields that would let one label hide another, so signature
//! fields are parsed in one pass with an `sfv` visitor that keeps every member in order
//! and reports duplicates.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::convert::Infallible;

use sfv::visitor::{DictionaryVisitor, EntryVisitor, InnerListVisitor, ItemVisitor, ParameterVisitor};
use sfv::{BareItem, BareItemFromInput, Item, KeyRef, ListEntry, Parser, Version};

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

/// A dictionary as received: members in order, duplicates rejected.
pub(crate) type Members = Vec<(sfv::Key, ListEntry)>;

/// Parse a Dictionary (RFC 8941 §3.2) in one pass, rejecting duplicate keys and parameters.
pub(crate) fn parse_dictionary_strict(input: &[u8], version: Version) -> Result<Members, Strictness> {
    let found = Cell::new(None);
    let members = Parser::new(input)
        .with_version(version)
        .parse_dictionary_with_visitor(DictBuilder { found: &found, members: Vec::new() })
        .map_err(|_| Strictness::Syntax)?;
    match found.get() {
        Some(dup) => Err(dup),
        None => Ok(members),
    }
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

/// Builds the members of a dictionary while `sfv` parses it.
struct DictBuilder<'s> {
    found: &'s Cell<Option<Strictness>>,
    members: Members,
}

impl<'de, 's> DictionaryVisitor<'de> for DictBuilder<'s> {
    type Out = Members;
    type Error = Infallible;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, Self::Error> {
        if self.members.iter().any(|(k, _)| k.as_ref() == key) {
            note(self.found, Strictness::DuplicateKey);
        }
        self.members.push((key.to_owned(), ListEntry::Item(Item::new(true))));
        Ok(EntryBuilder { found: self.found, slot: self.members.last_mut().map(|(_, entry)| entry) })
    }

    fn finish(self) -> Result<Members, Self::Error> {
        Ok(self.members)
    }
}

fn note(found: &Cell<Option<Strictness>>, what: Strictness) {
    if found.get().is_none() {
        found.set(Some(what));
    }
}

/// One dictionary member's value, written into its slot when complete.
struct EntryBuilder<'a, 's> {
    found: &'s Cell<Option<Strictness>>,
    slot: Option<&'a mut ListEntry>,
}

impl<'de> EntryVisitor<'de> for EntryBuilder<'_, '_> {
    type Error = Infallible;
    fn item(self) -> Result<impl ItemVisitor<'de>, Self::Error> {
        Ok(ItemBuilder { found: self.found, sink: Sink::Entry(self.slot) })
    }
    fn inner_list(self) -> Result<impl InnerListVisitor<'de>, Self::Error> {
        Ok(InnerBuilder { found: self.found, slot: self.slot, items: Vec::new() })
    }
}

/// Where a finished item or inner list goes.
enum Sink<'a> {
    /// A dictionary member's value.
    Entry(Option<&'a mut ListEntry>),
    /// A member of an inner list being built.
    Items(&'a mut Vec<Item>),
    /// The inner list itself (its parameters come last).
    InnerList(Option<&'a mut ListEntry>, Vec<Item>),
}

struct ItemBuilder<'a, 's> {
    found: &'s Cell<Option<Strictness>>,
    sink: Sink<'a>,
}

impl<'de, 'a, 's> ItemVisitor<'de> for ItemBuilder<'a, 's> {
    type Out = ();
    type Error = Infallible;
    fn bare_item(self, bare_item: BareItemFromInput<'de>) -> Result<impl ParameterVisitor<'de, Out = ()>, Self::Error> {
        Ok(ParamsBuilder {
            found: self.found,
            sink: self.sink,
            bare_item: BareItem::from(bare_item),
            params: sfv::Parameters::default(),
            on_dup: Strictness::DuplicateItemParam,
        })
    }
}

struct InnerBuilder<'a, 's> {
    found: &'s Cell<Option<Strictness>>,
    slot: Option<&'a mut ListEntry>,
    items: Vec<Item>,
}

impl<'de> InnerListVisitor<'de> for InnerBuilder<'_, '_> {
    type Error = Infallible;
    fn item(&mut self) -> Result<impl ItemVisitor<'de>, Self::Error> {
        Ok(ItemBuilder { found: self.found, sink: Sink::Items(&mut self.items) })
    }
    fn finish(self) -> Result<impl ParameterVisitor<'de>, Self::Error> {
        Ok(ParamsBuilder {
            found: self.found,
            sink: Sink::InnerList(self.slot, self.items),
            bare_item: BareItem::Boolean(true),
            params: sfv::Parameters::default(),
            on_dup: Strictness::DuplicateListParam,
        })
    }
}

struct ParamsBuilder<'a, 's> {
    found: &'s Cell<Option<Strictness>>,
    sink: Sink<'a>,
    bare_item: BareItem,
    params: sfv::Parameters,
    on_dup: Strictness,
}

impl<'de> ParameterVisitor<'de> for ParamsBuilder<'_, '_> {
    type Out = ();
    type Error = Infallible;
    fn parameter(&mut self, key: &'de KeyRef, value: BareItemFromInput<'de>) -> Result<(), Self::Error> {
        if self.params.insert(key.to_owned(), BareItem::from(value)).is_some() {
            note(self.found, self.on_dup);
        }
        Ok(())
    }
    fn finish(self) -> Result<(), Self::Error> {
        match self.sink {
            Sink::Entry(slot) => {
                if let Some(slot) = slot {
                    *slot = ListEntry::Item(Item::with_params(self.bare_item, self.params));
                }
            }
            Sink::Items(items) => items.push(Item::with_params(self.bare_item, self.params)),
            Sink::InnerList(slot, items) => {
                if let Some(slot) = slot {
                    *slot = ListEntry::InnerList(sfv::InnerList::with_params(items, self.params));
                }
            }
        }
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
        let Some((_, sfv::ListEntry::InnerList(l))) = d.first() else { panic!() };
        assert_eq!(serialize_inner_list(l), "(\"a\" \"b\";sf);created=1");
    }
}
