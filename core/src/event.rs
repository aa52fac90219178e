//! One JSON object written straight from borrowed values (ARCHITECTURE §4): the log events
//! ([`crate::outcome::log_event`], [`crate::directory::Recorded::log_event`]) and problem
//! documents (RFC 9457). No intermediate `serde_json::Value` map: a log line is written on
//! every logged request.
//!
//! Members are written in key order (the order a `serde_json::Map` prints them in), and a
//! later member replaces an earlier one of the same name, so host fields can add to or
//! override core's.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::verdict::{Rejected, Verified};

/// A member's value.
pub(crate) enum Field<'a> {
    /// A string, or null.
    Text(Option<Cow<'a, str>>),
    /// A number.
    Number(u64),
    /// A list of strings.
    Texts(Vec<&'a str>),
    /// The other signatures that verified (each an object: agent, claimed_agent, keyid, label).
    Also(&'a [Verified]),
    /// The signatures that did not (each an object: agent, keyid, label, reason).
    Discarded(&'a [Rejected]),
}

impl<'a> Field<'a> {
    /// A borrowed string, or null.
    pub(crate) fn text(value: Option<&'a str>) -> Self {
        Self::Text(value.map(Cow::Borrowed))
    }
}

/// A JSON object under construction.
pub(crate) struct Event<'a> {
    fields: Vec<(&'a str, Field<'a>)>,
}

impl<'a> Event<'a> {
    pub(crate) fn new() -> Self {
        Self { fields: Vec::with_capacity(16) }
    }

    /// Add (or, written later, replace) the member `key`.
    pub(crate) fn insert(&mut self, key: &'a str, value: Field<'a>) {
        self.fields.push((key, value));
    }

    /// The object as one line of JSON.
    pub(crate) fn into_json(mut self) -> String {
        // Newest first, a stable sort by key, then the first of each key: the newest wins.
        self.fields.reverse();
        self.fields.sort_by(|a, b| a.0.cmp(b.0));
        self.fields.dedup_by(|later, first| later.0 == first.0);
        serde_json::to_string(&self).unwrap_or_default()
    }
}

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (key, value) in &self.fields {
            match value {
                Field::Text(t) => map.serialize_entry(key, t)?,
                Field::Number(n) => map.serialize_entry(key, n)?,
                Field::Texts(list) => map.serialize_entry(key, list)?,
                Field::Also(list) => map.serialize_entry(key, &Others(list))?,
                Field::Discarded(list) => map.serialize_entry(key, &Others(list))?,
            }
        }
        map.end()
    }
}

/// `also` or `discarded`: a list of objects, each with its members in key order.
struct Others<'a, T>(&'a [T]);

impl Serialize for Others<'_, Verified> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|o| Event {
            fields: alloc::vec![
                ("agent", Field::text(o.agent.as_deref())),
                ("claimed_agent", Field::text(o.claimed_agent.as_deref())),
                ("keyid", Field::text(Some(&o.keyid))),
                ("label", Field::text(Some(&o.label))),
            ],
        }))
    }
}

impl Serialize for Others<'_, Rejected> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|r| Event {
            fields: alloc::vec![
                ("agent", Field::text(r.agent.as_deref())),
                ("keyid", Field::text(r.keyid.as_deref())),
                ("label", Field::text(r.label.as_deref())),
                ("reason", Field::text(Some(r.reason.code()))),
            ],
        }))
    }
}
