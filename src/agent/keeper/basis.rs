//! Which side initiates a connection: the role, and under `auto` the lower address.

use super::*;

/// Why this side does or does not initiate a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// `--role initiator`.
    RoleInitiator,
    /// `--role responder`.
    RoleResponder,
    /// `auto`, and this side has the lower address.
    AutoLocalLower,
    /// `auto`, and the peer has the lower address.
    AutoPeerLower,
    /// `auto`, but the addresses are unknown or equal: initiate rather than risk nobody doing it.
    AutoUnknown,
}

impl Basis {
    /// Whether this side initiates.
    pub fn initiates(self) -> bool {
        !matches!(self, Basis::RoleResponder | Basis::AutoPeerLower)
    }
}

impl fmt::Display for Basis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Basis::RoleInitiator => "role initiator",
            Basis::RoleResponder => "role responder: the peer initiates",
            Basis::AutoLocalLower => "role auto: this side has the lower address",
            Basis::AutoPeerLower => "role auto: the peer has the lower address and initiates",
            Basis::AutoUnknown => "role auto, endpoints unknown: initiating",
        })
    }
}

/// Whether an address says nothing about one endpoint (`%any`, a subnet, a range, empty).
pub(super) fn is_vague(addr: &str) -> bool {
    let addr = addr.trim();
    if addr.is_empty() || addr.starts_with('%') || addr.contains('/') || addr.contains(',') {
        return true;
    }
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return ip.is_unspecified();
    }
    match addr.split_once('-') {
        Some((a, b)) => a.trim().parse::<IpAddr>().is_ok() && b.trim().parse::<IpAddr>().is_ok(),
        None => false,
    }
}

/// Orders two endpoints: as parsed IP addresses when both parse, else as text.
pub(super) fn address_order(local: &str, remote: &str) -> Ordering {
    match (
        local.trim().parse::<IpAddr>(),
        remote.trim().parse::<IpAddr>(),
    ) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => local.trim().as_bytes().cmp(remote.trim().as_bytes()),
    }
}

/// The side that initiates under `Role::Auto`, from this side's view of the two endpoints.
pub fn auto_basis(local: &str, remote: &str) -> Basis {
    if is_vague(local) || is_vague(remote) {
        return Basis::AutoUnknown;
    }
    match address_order(local, remote) {
        Ordering::Less => Basis::AutoLocalLower,
        Ordering::Greater => Basis::AutoPeerLower,
        Ordering::Equal => Basis::AutoUnknown,
    }
}

impl Keeper {
    /// Configured endpoints of a connection (from `list-conns`), used by `Role::Auto` until an
    /// IKE_SA shows the real ones. Returns `false` when no watched child uses that connection.
    pub fn set_endpoints(&mut self, ike: &str, local: &str, remote: &str) -> bool {
        let Some(e) = self.ikes.iter_mut().find(|e| e.name == ike) else {
            return false;
        };
        if !e.from_sa {
            e.local = lossy_truncated(local.as_bytes());
            e.remote = lossy_truncated(remote.as_bytes());
        }
        true
    }

    /// Whether, and why, this side initiates connection `ike` (for `status` and `check`).
    pub fn basis(&self, ike: &str) -> Option<Basis> {
        let i = self.ikes.iter().position(|e| e.name == ike)?;
        Some(self.decide(i))
    }

    pub(super) fn learn_endpoints(&mut self, ike: &IkeSa) {
        if is_vague(&ike.local_host) || is_vague(&ike.remote_host) {
            return;
        }
        if let Some(e) = self.ikes.iter_mut().find(|e| e.name == ike.name) {
            e.local = ike.local_host.clone();
            e.remote = ike.remote_host.clone();
            e.from_sa = true;
        }
    }

    pub(super) fn decide(&self, ike: usize) -> Basis {
        match self.settings.role {
            Role::Initiator => Basis::RoleInitiator,
            Role::Responder => Basis::RoleResponder,
            Role::Auto => match self.ikes.get(ike) {
                Some(e) => auto_basis(&e.local, &e.remote),
                None => Basis::AutoUnknown,
            },
        }
    }
}
