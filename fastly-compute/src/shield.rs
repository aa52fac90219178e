//! Shielding (`fastly::shielding`): an edge POP verifies (and rejects bad signatures before
//! anything goes upstream), then forwards origin-bound traffic through the shield POP. The
//! shield never trusts a verdict from the network: every POP strips the verdict header on
//! arrival and the shield verifies the unchanged signature again before it adds its own
//! verdict header for the origin.

use fastly::shielding::Shield;
use fastly::Backend;

/// Where this instance sits for this request.
pub enum Role {
    /// No shielding configured (or it is unusable): talk to the origin.
    Direct,
    /// Not the shield POP: forward to the shield through this backend.
    Edge(Backend),
    /// The shield POP: talk to the origin.
    Shield,
}

impl Role {
    /// For logs: `direct`, `edge` or `shield`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Edge(_) => "edge",
            Self::Shield => "shield",
        }
    }
}

/// The role for the configured shield site. A site that cannot be used is logged and the
/// request goes to the origin directly (traffic keeps flowing).
pub fn role(site: Option<&str>) -> Role {
    let Some(site) = site else { return Role::Direct };
    match Shield::new(site) {
        Ok(shield) if shield.running_on() => Role::Shield,
        Ok(shield) => match shield.encrypted_backend() {
            Ok(backend) => Role::Edge(backend),
            Err(e) => {
                crate::log::config_problem(&format!("shield `{site}` has no usable backend ({e:?}); going direct"));
                Role::Direct
            }
        },
        Err(e) => {
            crate::log::config_problem(&format!("shield site `{site}` is unknown ({e:?}); going direct"));
            Role::Direct
        }
    }
}
