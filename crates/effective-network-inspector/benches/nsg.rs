//! Dual-gate NSG verdicts with 200-rule NSGs at both gates. Target: ≥ 1 million verdicts/s.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use effective_network_inspector::nsg::{Direction, Flow, NicNsgs, Proto};
use effective_network_inspector::state::{Gate, NsgEntry, RuleEntry};
use rand::{Rng, SeedableRng};

#[allow(clippy::too_many_arguments)]
fn rule(
    name: String,
    prio: u32,
    dir: &str,
    access: &str,
    proto: &str,
    src: String,
    dst: String,
    port: String,
) -> RuleEntry {
    RuleEntry {
        name,
        priority: prio,
        direction: dir.into(),
        access: access.into(),
        protocol: proto.into(),
        source_address_prefix: Some(src),
        source_address_prefixes: vec![],
        expanded_source_address_prefix: None,
        destination_address_prefix: Some(dst),
        destination_address_prefixes: vec![],
        expanded_destination_address_prefix: None,
        source_port_range: Some("0-65535".into()),
        source_port_ranges: vec![],
        destination_port_range: Some(port),
        destination_port_ranges: vec![],
    }
}

fn nsg(gate: Gate, rng: &mut impl Rng) -> NsgEntry {
    let mut rules = Vec::new();
    for i in 0..194u32 {
        let dir = if i % 2 == 0 { "Inbound" } else { "Outbound" };
        let src = if i % 5 == 0 {
            "*".to_string()
        } else {
            format!("198.18.{}.0/24", rng.gen_range(0..=255))
        };
        let dst = if i % 3 == 0 {
            "*".to_string()
        } else {
            format!("10.{}.0.0/16", rng.gen_range(0..=255))
        };
        let port = match i % 4 {
            0 => format!("{}", rng.gen_range(1..=65535)),
            1 => {
                let a = rng.gen_range(1000..=60000);
                format!("{a}-{}", a + rng.gen_range(0..=500))
            }
            2 => format!("{}", [22, 80, 443, 3389, 1433, 5432][rng.gen_range(0..6)]),
            _ => format!("{}", rng.gen_range(1..=1024)),
        };
        rules.push(rule(
            format!("securityRules/r{i}"),
            100 + i * 10,
            dir,
            if i % 3 == 0 { "Deny" } else { "Allow" },
            ["Tcp", "Udp", "*"][i as usize % 3],
            src,
            dst,
            port,
        ));
    }
    for (n, p, d, a, s, t) in [
        (
            "AllowVnetInBound",
            65000,
            "Inbound",
            "Allow",
            "10.0.0.0/8",
            "10.0.0.0/8",
        ),
        (
            "AllowAzureLoadBalancerInBound",
            65001,
            "Inbound",
            "Allow",
            "168.63.129.16/32",
            "0.0.0.0/0",
        ),
        (
            "DenyAllInBound",
            65500,
            "Inbound",
            "Deny",
            "0.0.0.0/0",
            "0.0.0.0/0",
        ),
        (
            "AllowVnetOutBound",
            65000,
            "Outbound",
            "Allow",
            "10.0.0.0/8",
            "10.0.0.0/8",
        ),
        (
            "AllowInternetOutBound",
            65001,
            "Outbound",
            "Allow",
            "0.0.0.0/0",
            "0.0.0.0/0",
        ),
        (
            "DenyAllOutBound",
            65500,
            "Outbound",
            "Deny",
            "0.0.0.0/0",
            "0.0.0.0/0",
        ),
    ] {
        rules.push(rule(
            format!("defaultSecurityRules/{n}"),
            p,
            d,
            a,
            "All",
            s.into(),
            t.into(),
            "0-65535".into(),
        ));
    }
    NsgEntry {
        nsg: format!("{}-nsg", gate.as_str()),
        nsg_id: None,
        association: gate,
        association_id: None,
        tag_map: Default::default(),
        rules,
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let entries = vec![nsg(Gate::Subnet, &mut rng), nsg(Gate::Nic, &mut rng)];
    assert_eq!(entries[0].rules.len(), 200);
    let nsgs = NicNsgs::new(&entries).unwrap();
    let flows: Vec<Flow> = (0..1 << 14)
        .map(|_| Flow {
            direction: if rng.gen() {
                Direction::Inbound
            } else {
                Direction::Outbound
            },
            src: format!(
                "198.18.{}.{}",
                rng.gen_range(0..=255),
                rng.gen_range(1..=254)
            )
            .parse()
            .unwrap(),
            dst: format!(
                "10.{}.{}.{}",
                rng.gen_range(0..=255),
                rng.gen_range(0..=255),
                rng.gen_range(1..=254)
            )
            .parse()
            .unwrap(),
            src_port: Some(rng.gen_range(1024..=65535)),
            dst_port: Some(if rng.gen_bool(0.5) {
                [22, 80, 443, 3389, 1433, 5432][rng.gen_range(0..6)]
            } else {
                rng.gen_range(1..=65535)
            }),
            proto: if rng.gen_bool(0.8) {
                Proto::Tcp
            } else {
                Proto::Udp
            },
        })
        .collect();
    let mut g = c.benchmark_group("nsg_verdict_2x200_rules");
    g.throughput(Throughput::Elements(flows.len() as u64));
    g.bench_function("decide", |b| {
        b.iter(|| {
            let mut allowed = 0usize;
            for f in &flows {
                if nsgs.decide(black_box(f))
                    == effective_network_inspector::nsg::FinalVerdict::Allow
                {
                    allowed += 1;
                }
            }
            black_box(allowed)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
