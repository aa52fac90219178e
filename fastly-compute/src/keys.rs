//! Trusted keys for one signed request, from the `botauth_jwks` Config Store.
//!
//! Only the items the request can use are read: the agents its `Signature-Agent` names
//! (parsed by core; not trusted, only used to pick items) and the any-agent item `*`.
//! A request that names no agent may be signed by any trusted agent's key; a Config Store
//! cannot be listed, so those agents are named in the optional item [`AGENTS_ITEM`] (a JSON
//! array of URIs). Item keys are encoded with [`jwks_item_key`]. An item is a JWK Set, or
//! the compact key list `botauth compact-keys` writes (core's `COMPACT_KEYS_TAG`: no JSON,
//! no hashing at the edge).

use botauth_core::signature_agent;
use botauth_core::{Keyring, Policy, ANY_AGENT};
use fastly::{ConfigStore, Request};

use crate::config::{jwks_item_key, AGENTS_ITEM, JWKS_STORE, MAX_ITEM_KEY_LEN};

/// At most this many agents are looked up for one request (Config Store lookups are
/// limited per request).
const MAX_AGENTS: usize = 8;

/// The keyring for `req`, or the configuration problem that makes verification impossible.
pub fn load(req: &Request, policy: &Policy) -> Result<Keyring, String> {
    let store = ConfigStore::try_open(JWKS_STORE)
        .map_err(|e| format!("config store `{JWKS_STORE}` cannot be opened ({e:?}): no keys are trusted"))?;
    let mut ring = Keyring::new();
    let mut agents = candidate_agents(req, policy);
    if agents.is_empty() && !req.contains_header("signature-agent") {
        agents = listed_agents(&store)?;
    }
    for agent in agents.iter().map(String::as_str).chain([ANY_AGENT]) {
        let key = jwks_item_key(agent);
        if key.len() > MAX_ITEM_KEY_LEN {
            continue;
        }
        let json = store.try_get(&key).map_err(|e| format!("`{JWKS_STORE}.{key}` cannot be read: {e:?}"))?;
        let Some(json) = json else { continue };
        let skipped = ring
            .add_store_item(agent, json.as_bytes())
            .map_err(|e| format!("`{JWKS_STORE}.{key}` (agent {agent}) is invalid: {e}"))?;
        for s in skipped {
            crate::log::warning(&format!(
                "`{JWKS_STORE}.{key}`: key #{} ({}) skipped: {}",
                s.index,
                s.kid.as_deref().unwrap_or("no kid"),
                s.reason.code()
            ));
        }
    }
    Ok(ring)
}

/// The agents of [`AGENTS_ITEM`] (none when the item is absent).
fn listed_agents(store: &ConfigStore) -> Result<Vec<String>, String> {
    let Some(json) =
        store.try_get(AGENTS_ITEM).map_err(|e| format!("`{JWKS_STORE}.{AGENTS_ITEM}` cannot be read: {e:?}"))?
    else {
        return Ok(Vec::new());
    };
    let mut agents: Vec<String> = serde_json::from_str(&json)
        .map_err(|_| format!("`{JWKS_STORE}.{AGENTS_ITEM}` must be a JSON array of agent URIs"))?;
    agents.retain(|a| a != ANY_AGENT);
    agents.truncate(MAX_AGENTS);
    Ok(agents)
}

/// The agent URIs named by `Signature-Agent` (both forms), when it is small enough and
/// parses; core decides later whether the signature covers it.
fn candidate_agents(req: &Request, policy: &Policy) -> Vec<String> {
    let lines: Vec<&[u8]> = req.get_header_all("signature-agent").map(|v| v.as_bytes()).collect();
    let joined = lines.join(&b", "[..]);
    if joined.is_empty() || joined.len() > policy.limits.max_signature_agent_len {
        return Vec::new();
    }
    let mut agents: Vec<String> = signature_agent::parse(&joined)
        .map(|sa| sa.key_candidates().iter().map(|a| String::from(a.as_str())).collect())
        .unwrap_or_default();
    agents.dedup();
    agents.truncate(MAX_AGENTS);
    agents
}
