//! Which vsock ports a VM's connections may use, in each direction: the
//! Linux form of a `VirtualMachine.Devices.HvSocket` service table.
//!
//! A Hyper-V socket service is a GUID; the ones of the form
//! `XXXXXXXX-facb-11e6-bd58-64006a7986d3` are vsock port `0xXXXXXXXX`
//! ([`port_of_service_id`]). Connecting (the host to a guest service) and
//! binding (a host listener the guest connects to) are allowed or refused
//! per port, with defaults for the ports not listed.

use std::collections::BTreeMap;

/// The service-GUID template that carries a vsock port in its first 32 bits.
pub const VSOCK_SERVICE_TEMPLATE: &str = "-facb-11e6-bd58-64006a7986d3";

/// The vsock port of a Hyper-V socket service id, when the id follows the
/// vsock template (any case, no braces).
pub fn port_of_service_id(id: &str) -> Option<u32> {
    let (head, tail) = id.split_at_checked(8)?;
    if !tail.eq_ignore_ascii_case(VSOCK_SERVICE_TEMPLATE)
        || !head.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    u32::from_str_radix(head, 16).ok()
}

/// What one port allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRule {
    /// Host connections to the guest's service on this port (`CONNECT <port>`).
    pub connect: bool,
    /// Guest connections to a host listener on this port (`<socket>_<port>`).
    pub bind: bool,
}

/// Per-port allow rules with defaults; the default policy allows everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsockPolicy {
    /// Host connections to ports not in `ports`.
    pub default_connect: bool,
    /// Guest connections to host listeners on ports not in `ports`.
    pub default_bind: bool,
    /// Rules of the listed ports.
    pub ports: BTreeMap<u32, PortRule>,
}

impl Default for VsockPolicy {
    fn default() -> Self {
        VsockPolicy {
            default_connect: true,
            default_bind: true,
            ports: BTreeMap::new(),
        }
    }
}

impl VsockPolicy {
    /// May a host client connect to the guest's `port`?
    pub fn allows_connect(&self, port: u32) -> bool {
        self.ports
            .get(&port)
            .map_or(self.default_connect, |r| r.connect)
    }

    /// May the guest connect to a host listener on `port`?
    pub fn allows_bind(&self, port: u32) -> bool {
        self.ports.get(&port).map_or(self.default_bind, |r| r.bind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids_of_the_vsock_template_are_ports() {
        assert_eq!(
            port_of_service_id("40000000-facb-11e6-bd58-64006a7986d3"),
            Some(0x4000_0000)
        );
        assert_eq!(
            port_of_service_id("0000ABCD-FACB-11E6-BD58-64006A7986D3"),
            Some(0xabcd)
        );
        for bad in [
            "",
            "40000000",
            "4000000g-facb-11e6-bd58-64006a7986d3",
            "+4000000-facb-11e6-bd58-64006a7986d3",
            "40000000-facb-11e6-bd58-64006a7986d4",
            "{40000000-facb-11e6-bd58-64006a7986d3}",
            "é0000000-facb-11e6-bd58-64006a7986d3",
        ] {
            assert_eq!(port_of_service_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn listed_ports_override_the_defaults() {
        let mut p = VsockPolicy {
            default_connect: false,
            default_bind: true,
            ports: BTreeMap::new(),
        };
        p.ports.insert(
            5,
            PortRule {
                connect: true,
                bind: false,
            },
        );
        assert!(p.allows_connect(5) && !p.allows_bind(5));
        assert!(!p.allows_connect(6) && p.allows_bind(6));
        assert!(VsockPolicy::default().allows_connect(1) && VsockPolicy::default().allows_bind(1));
    }
}
