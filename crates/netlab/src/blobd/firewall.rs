//! The storage account firewall, as Azure evaluates it, as a pure function.
//!
//! `default_action` `Allow` admits everybody. With `Deny`, a request is admitted only when
//! its source address matches one of `ip_rules` (an address or a CIDR prefix), or lies in a
//! subnet that is listed in `vnet_rules` AND has the `Microsoft.Storage` (or
//! `Microsoft.Storage.Global`) service endpoint. A VNet rule without the endpoint admits
//! nothing: that is Azure's behaviour, and scenario F.

use std::net::IpAddr;

use crate::storage_state::{StorageAccountState, StorageState};

/// Why a request was admitted or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `default_action` is `Allow`.
    AllowedByDefault,
    /// The source matched this IP rule.
    AllowedByIpRule(String),
    /// The source lies in this subnet, which has a VNet rule and the service endpoint.
    AllowedByVnetRule(String),
    /// Nothing matched; the string explains what was checked.
    Denied(String),
}

impl Verdict {
    /// Whether the request is admitted.
    pub fn allowed(&self) -> bool {
        !matches!(self, Verdict::Denied(_))
    }
}

/// Parses `a.b.c.d`, `a.b.c.d/len` or the IPv6 equivalents.
pub fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let s = s.trim();
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => {
            let l: u8 = l.parse().ok()?;
            if l > max {
                return None;
            }
            l
        }
        None => max,
    };
    Some((addr, len))
}

/// Whether `ip` lies in `prefix` (an address or CIDR). Invalid prefixes match nothing.
pub fn prefix_contains(prefix: &str, ip: IpAddr) -> bool {
    let Some((net, len)) = parse_prefix(prefix) else {
        return false;
    };
    match (net, normalize(ip)) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            (u32::from(n) & mask) == (u32::from(a) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            (u128::from(n) & mask) == (u128::from(a) & mask)
        }
        _ => false,
    }
}

/// IPv4-mapped IPv6 addresses become IPv4.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// `vnet/subnet` from either that form or a full Azure subnet resource id
/// (`…/virtualNetworks/<vnet>/subnets/<subnet>`), lower-cased.
pub fn subnet_key(rule: &str) -> String {
    let lower = rule.trim().to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(i) = parts.iter().position(|p| *p == "virtualnetworks") {
        if let (Some(vnet), Some("subnets"), Some(subnet)) = (
            parts.get(i + 1),
            parts.get(i + 2).copied(),
            parts.get(i + 3),
        ) {
            return format!("{vnet}/{subnet}");
        }
    }
    lower
}

fn has_storage_endpoint(endpoints: &[String]) -> bool {
    endpoints.iter().any(|e| {
        let e = e.trim();
        e.eq_ignore_ascii_case("Microsoft.Storage")
            || e.eq_ignore_ascii_case("Microsoft.Storage.Global")
    })
}

/// Evaluates the firewall of `account` for a request from `peer`.
pub fn evaluate(state: &StorageState, account: &StorageAccountState, peer: IpAddr) -> Verdict {
    let peer = normalize(peer);
    if account.default_action.trim().eq_ignore_ascii_case("Allow") {
        return Verdict::AllowedByDefault;
    }
    if let Some(rule) = account.ip_rules.iter().find(|r| prefix_contains(r, peer)) {
        return Verdict::AllowedByIpRule(rule.clone());
    }
    let mut notes = Vec::new();
    for subnet in state
        .subnets
        .iter()
        .filter(|s| prefix_contains(&s.prefix, peer))
    {
        let key = subnet_key(&subnet.name);
        let listed = account.vnet_rules.iter().any(|r| subnet_key(r) == key);
        let endpoint = has_storage_endpoint(&subnet.service_endpoints);
        if listed && endpoint {
            return Verdict::AllowedByVnetRule(subnet.name.clone());
        }
        notes.push(format!(
            "subnet {} ({}): vnet rule {}, Microsoft.Storage endpoint {}",
            subnet.name,
            subnet.prefix,
            if listed { "present" } else { "absent" },
            if endpoint { "present" } else { "absent" }
        ));
    }
    if notes.is_empty() {
        notes.push("source is in no known subnet".to_string());
    }
    Verdict::Denied(format!(
        "default action Deny, no IP rule matches {peer}; {}",
        notes.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage_state::SubnetState;

    fn state(
        default: &str,
        ip_rules: &[&str],
        vnet_rules: &[&str],
        endpoints: &[&str],
    ) -> StorageState {
        StorageState {
            accounts: vec![StorageAccountState {
                name: "labstore".into(),
                containers: vec!["captures".into()],
                default_action: default.into(),
                vnet_rules: vnet_rules.iter().map(|s| s.to_string()).collect(),
                ip_rules: ip_rules.iter().map(|s| s.to_string()).collect(),
            }],
            subnets: vec![
                SubnetState {
                    name: "vnet1/default".into(),
                    prefix: "198.18.1.0/24".into(),
                    service_endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
                },
                SubnetState {
                    name: "vnet1/other".into(),
                    prefix: "198.18.2.0/24".into(),
                    service_endpoints: vec!["Microsoft.Storage".into()],
                },
            ],
        }
    }

    fn eval(s: &StorageState, ip: &str) -> Verdict {
        evaluate(s, &s.accounts[0], ip.parse().unwrap())
    }

    #[test]
    fn firewall_matrix() {
        let vm = "198.18.1.4";
        // Default Allow.
        assert_eq!(
            eval(&state("Allow", &[], &[], &[]), vm),
            Verdict::AllowedByDefault
        );
        assert_eq!(
            eval(&state("allow", &[], &[], &[]), vm),
            Verdict::AllowedByDefault
        );
        // Deny + IP rule (address and CIDR).
        assert_eq!(
            eval(&state("Deny", &["198.18.1.4"], &[], &[]), vm),
            Verdict::AllowedByIpRule("198.18.1.4".into())
        );
        assert!(eval(&state("Deny", &["198.18.0.0/16"], &[], &[]), vm).allowed());
        assert!(!eval(&state("Deny", &["198.18.1.5"], &[], &[]), vm).allowed());
        // Deny + VNet rule + endpoint present.
        assert_eq!(
            eval(
                &state("Deny", &[], &["vnet1/default"], &["Microsoft.Storage"]),
                vm
            ),
            Verdict::AllowedByVnetRule("vnet1/default".into())
        );
        assert!(eval(
            &state(
                "Deny",
                &[],
                &["vnet1/default"],
                &["Microsoft.Storage.Global"]
            ),
            vm
        )
        .allowed());
        // Deny + VNet rule + endpoint missing (scenario F).
        let v = eval(
            &state("Deny", &[], &["vnet1/default"], &["Microsoft.Sql"]),
            vm,
        );
        assert!(!v.allowed());
        let Verdict::Denied(why) = v else {
            unreachable!()
        };
        assert!(
            why.contains("vnet rule present") && why.contains("endpoint absent"),
            "{why}"
        );
        // Deny + endpoint but no VNet rule.
        let v = eval(&state("Deny", &[], &[], &["Microsoft.Storage"]), vm);
        assert!(!v.allowed());
        // Deny + VNet rule for another subnet (which has the endpoint) does not admit us.
        assert!(!eval(
            &state("Deny", &[], &["vnet1/other"], &["Microsoft.Storage"]),
            vm
        )
        .allowed());
        assert!(eval(&state("Deny", &[], &["vnet1/other"], &[]), "198.18.2.9").allowed());
        // Unknown source.
        assert!(!eval(
            &state("Deny", &[], &["vnet1/default"], &["Microsoft.Storage"]),
            "127.0.0.1"
        )
        .allowed());
    }

    #[test]
    fn vnet_rules_may_be_resource_ids() {
        let id = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/VNet1/subnets/default";
        assert_eq!(subnet_key(id), "vnet1/default");
        assert!(eval(
            &state("Deny", &[], &[id], &["Microsoft.Storage"]),
            "198.18.1.4"
        )
        .allowed());
    }

    #[test]
    fn prefixes() {
        assert!(prefix_contains(
            "198.18.1.0/24",
            "198.18.1.255".parse().unwrap()
        ));
        assert!(!prefix_contains(
            "198.18.1.0/24",
            "198.18.2.0".parse().unwrap()
        ));
        assert!(prefix_contains("0.0.0.0/0", "8.8.8.8".parse().unwrap()));
        assert!(prefix_contains(
            "198.18.1.4",
            "::ffff:198.18.1.4".parse().unwrap()
        ));
        assert!(prefix_contains("fd00::/8", "fd12::1".parse().unwrap()));
        assert!(!prefix_contains(
            "198.18.1.0/33",
            "198.18.1.1".parse().unwrap()
        ));
        assert!(!prefix_contains("garbage", "198.18.1.1".parse().unwrap()));
        assert!(!prefix_contains(
            "198.18.1.0/24",
            "fd12::1".parse().unwrap()
        ));
    }
}
