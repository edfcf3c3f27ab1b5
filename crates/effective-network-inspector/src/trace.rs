//! Offline reachability traces: source NIC outbound (both gates) → the source NIC's route
//! verdict → destination NIC inbound (both gates) when the destination is a NIC of the
//! snapshot.

use std::collections::HashSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::net::Addr;
use crate::nsg::{Direction, FinalVerdict, Flow, GateVerdict, NicNsgs, NsgVerdict, Proto};
use crate::route::{AnomalyKind, RouteResult, RouteTable, RouteVerdict};
use crate::snapshot::Snapshot;
use crate::state::NicState;
use crate::EniError;

/// `REACHABLE | BLOCKED | INDETERMINATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TraceResult {
    /// Nothing in the state blocks the flow.
    Reachable,
    /// A component blocks it (see `blocking`).
    Blocked,
    /// The state cannot decide (see `blocking`).
    Indeterminate,
}

/// Explanation codes at the first hop that blocks or cannot be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonCode {
    /// The source NIC's own NSG denies the outbound flow.
    NsgDenyNicOutbound,
    /// The source subnet's NSG denies the outbound flow.
    NsgDenySubnetOutbound,
    /// The destination subnet's NSG denies the inbound flow.
    NsgDenySubnetInbound,
    /// The destination NIC's own NSG denies the inbound flow.
    NsgDenyNicInbound,
    /// A rule that might match first uses a tag/ASG the input does not expand.
    NsgRuleUnresolvable,
    /// No rule matched and the NSG's default rules are missing from the input.
    NsgRulesIncomplete,
    /// No active route contains the destination.
    NoRoute,
    /// The winning route's next hop is None.
    RouteBlackhole,
    /// Several non-BGP routes tie (Azure should not produce this).
    RouteTieUnexpected,
    /// The winning route goes to a virtual appliance that does not answer.
    NvaNotResponding,
    /// The winning route goes to a virtual appliance whose forwarding is outside the state.
    NvaForwardingUnknown,
}

/// One hop of the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    /// 1-based.
    pub step: usize,
    /// `source_nsg_outbound`, `source_route`, `destination_nsg_inbound`.
    pub stage: String,
    /// What was evaluated (`nic dest-vm-nic`, `route table of web-nic`).
    pub component: String,
    /// The stage's verdict (`ALLOW`, `DENY`, `WINNER`, …).
    pub verdict: String,
    /// The full engine verdict.
    pub detail: serde_json::Value,
}

/// Where and why the path stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocking {
    /// The component (`nsg web-nsg (nic gate of web-nic)`, `route table of web-nic`).
    pub component: String,
    /// The code.
    pub code: ReasonCode,
    /// One sentence.
    pub reason: String,
}

/// A trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Result.
    pub result: TraceResult,
    /// Source NIC.
    pub from_nic: String,
    /// Source address.
    pub src_ip: String,
    /// Destination address.
    pub destination: String,
    /// Destination port.
    pub port: Option<u16>,
    /// Protocol.
    pub proto: Proto,
    /// The destination NIC, when it is in the snapshot.
    pub destination_nic: Option<String>,
    /// Hops evaluated, in order.
    pub hops: Vec<Hop>,
    /// The first blocking (or undecidable) hop.
    pub blocking: Option<Blocking>,
    /// Notes (e.g. the destination lies outside the snapshot).
    pub notes: Vec<String>,
}

/// What to trace.
#[derive(Debug, Clone)]
pub struct TraceRequest {
    /// Source NIC name.
    pub from_nic: String,
    /// Source address (default: the NIC's first address of the destination's family).
    pub src_ip: Option<Addr>,
    /// Destination.
    pub to: Addr,
    /// Destination port.
    pub port: Option<u16>,
    /// Source port, if known.
    pub src_port: Option<u16>,
    /// Protocol.
    pub proto: Proto,
}

fn nsg_block(v: &NsgVerdict, nic: &str, outbound: bool) -> Option<(TraceResult, Blocking)> {
    let component = |gate: crate::state::Gate, nsg: &Option<String>| {
        format!(
            "nsg {} ({} gate of {nic})",
            nsg.as_deref().unwrap_or("?"),
            gate.as_str()
        )
    };
    match v.final_verdict {
        FinalVerdict::Allow => None,
        FinalVerdict::Deny => {
            let g = if v.gate1.verdict == GateVerdict::Deny {
                &v.gate1
            } else {
                &v.gate2
            };
            let code = match (outbound, g.gate) {
                (true, crate::state::Gate::Nic) => ReasonCode::NsgDenyNicOutbound,
                (true, crate::state::Gate::Subnet) => ReasonCode::NsgDenySubnetOutbound,
                (false, crate::state::Gate::Subnet) => ReasonCode::NsgDenySubnetInbound,
                (false, crate::state::Gate::Nic) => ReasonCode::NsgDenyNicInbound,
            };
            Some((
                TraceResult::Blocked,
                Blocking {
                    component: component(g.gate, &g.nsg),
                    code,
                    reason: v.reason.clone(),
                },
            ))
        }
        FinalVerdict::Indeterminate => {
            let g = if v.gate1.verdict == GateVerdict::Indeterminate {
                &v.gate1
            } else {
                &v.gate2
            };
            let code = if v.unresolvable_rules.is_empty() {
                ReasonCode::NsgRulesIncomplete
            } else {
                ReasonCode::NsgRuleUnresolvable
            };
            Some((
                TraceResult::Indeterminate,
                Blocking {
                    component: component(g.gate, &g.nsg),
                    code,
                    reason: v.reason.clone(),
                },
            ))
        }
    }
}

fn route_block(v: &RouteVerdict, nic: &str) -> Option<(TraceResult, Blocking)> {
    let component = format!("route table of {nic}");
    let mk = |r: TraceResult, code: ReasonCode, reason: String| {
        Some((
            r,
            Blocking {
                component: component.clone(),
                code,
                reason,
            },
        ))
    };
    if v.result == RouteResult::NoRoute {
        return mk(
            TraceResult::Blocked,
            ReasonCode::NoRoute,
            format!("no active route of {nic} contains {}", v.destination),
        );
    }
    if let Some(a) = v
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::Blackhole)
    {
        return mk(
            TraceResult::Blocked,
            ReasonCode::RouteBlackhole,
            a.message.clone(),
        );
    }
    if v.tie_unexpected {
        return mk(
            TraceResult::Indeterminate,
            ReasonCode::RouteTieUnexpected,
            format!(
                "routes of {nic} to {} tie and are not all BGP",
                v.destination
            ),
        );
    }
    if let Some(a) = v.anomalies.iter().find(|a| a.kind == AnomalyKind::Nva) {
        return match a.answers {
            Some(false) => mk(
                TraceResult::Blocked,
                ReasonCode::NvaNotResponding,
                a.message.clone(),
            ),
            _ => mk(
                TraceResult::Indeterminate,
                ReasonCode::NvaForwardingUnknown,
                format!(
                    "{}; what the appliance forwards is outside the effective state",
                    a.message
                ),
            ),
        };
    }
    None
}

fn owner(snap: &Snapshot, ip: Addr) -> Option<&NicState> {
    snap.nics.iter().find(|n| {
        n.ip_addresses
            .iter()
            .any(|a| a.parse::<Addr>().map(|x| x == ip).unwrap_or(false))
    })
}

/// Traces a flow through a snapshot. `dest_snapshot` is where the destination NIC is looked
/// up (the same snapshot by default). `live` lists addresses known to answer.
pub fn trace(
    snap: &Snapshot,
    dest_snapshot: Option<&Snapshot>,
    req: &TraceRequest,
    live: Option<&HashSet<IpAddr>>,
) -> Result<Trace, EniError> {
    let src_nic = snap.nic(&req.from_nic).ok_or_else(|| {
        EniError::Usage(format!(
            "NIC {} is not in the snapshot (it has: {}); pass one of those to --from-nic",
            req.from_nic,
            snap.nics
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let src_ip = match req.src_ip {
        Some(a) => a,
        None => src_nic
            .ip_addresses
            .iter()
            .filter_map(|a| a.parse::<Addr>().ok())
            .find(|a| a.family == req.to.family)
            .ok_or_else(|| {
                EniError::Usage(format!(
                    "the snapshot has no {:?} address for NIC {}; pass --src-ip",
                    req.to.family, req.from_nic
                ))
            })?,
    };
    let mut t = Trace {
        result: TraceResult::Reachable,
        from_nic: src_nic.name.clone(),
        src_ip: src_ip.to_string(),
        destination: req.to.to_string(),
        port: req.port,
        proto: req.proto,
        destination_nic: None,
        hops: Vec::new(),
        blocking: None,
        notes: Vec::new(),
    };
    let flow = |direction| Flow {
        direction,
        src: src_ip,
        dst: req.to,
        src_port: req.src_port,
        dst_port: req.port,
        proto: req.proto,
    };
    // 1. Source NIC outbound.
    let nsgs = NicNsgs::new(&src_nic.nsgs)?;
    let out = nsgs.evaluate(&flow(Direction::Outbound));
    t.hops.push(Hop {
        step: 1,
        stage: "source_nsg_outbound".into(),
        component: format!("NSGs of {}", src_nic.name),
        verdict: serde_json::to_value(out.final_verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        detail: serde_json::to_value(&out).unwrap_or_default(),
    });
    if let Some((r, b)) = nsg_block(&out, &src_nic.name, true) {
        t.result = r;
        t.blocking = Some(b);
        return Ok(t);
    }
    // 2. Route.
    let table = RouteTable::new(&src_nic.routes)?;
    let rv = table.explain(req.to, live);
    t.hops.push(Hop {
        step: 2,
        stage: "source_route".into(),
        component: format!("route table of {}", src_nic.name),
        verdict: serde_json::to_value(rv.result)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        detail: serde_json::to_value(&rv).unwrap_or_default(),
    });
    if let Some((r, b)) = route_block(&rv, &src_nic.name) {
        t.result = r;
        t.blocking = Some(b);
        return Ok(t);
    }
    // 3. Destination NIC inbound.
    let dsnap = dest_snapshot.unwrap_or(snap);
    let Some(dst_nic) = owner(dsnap, req.to) else {
        let hop = rv
            .winning_route
            .as_ref()
            .map(|w| w.next_hop_type.clone())
            .unwrap_or_else(|| "tied BGP paths".into());
        t.notes.push(format!(
            "{} is not an address of any NIC in the snapshot: the path leaves the snapshot via {hop}; nothing in the effective state blocks it up to there",
            req.to
        ));
        return Ok(t);
    };
    t.destination_nic = Some(dst_nic.name.clone());
    let dnsgs = NicNsgs::new(&dst_nic.nsgs)?;
    let inb = dnsgs.evaluate(&flow(Direction::Inbound));
    t.hops.push(Hop {
        step: 3,
        stage: "destination_nsg_inbound".into(),
        component: format!("NSGs of {}", dst_nic.name),
        verdict: serde_json::to_value(inb.final_verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        detail: serde_json::to_value(&inb).unwrap_or_default(),
    });
    if let Some((r, b)) = nsg_block(&inb, &dst_nic.name, false) {
        t.result = r;
        t.blocking = Some(b);
    }
    Ok(t)
}
