//! Route lookups on a 10,000-route table (IPv4 and IPv6). Target: ≥ 10 million lookups/s.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use effective_network_inspector::net::{Addr, Family};
use effective_network_inspector::route::{Lookup, RouteTable};
use effective_network_inspector::state::RouteEntry;
use rand::{Rng, SeedableRng};

const SOURCES: &[&str] = &["User", "VirtualNetworkGateway", "Default"];
const HOPS: &[&str] = &[
    "VnetLocal",
    "VirtualAppliance",
    "VirtualNetworkGateway",
    "Internet",
    "None",
];

fn table(family: Family, n: usize, rng: &mut impl Rng) -> (RouteTable, Vec<Addr>) {
    let mut routes = Vec::with_capacity(n);
    let w = family.width();
    for i in 0..n {
        let bits: u128 = match family {
            Family::V4 => rng.gen::<u32>() as u128,
            Family::V6 => (0x2001_0db8u128 << 96) | (rng.gen::<u64>() as u128) << 32,
        };
        let len = match family {
            Family::V4 => rng.gen_range(8..=32),
            Family::V6 => rng.gen_range(32..=64),
        };
        let p = effective_network_inspector::net::Prefix::new(Addr { family, bits }, len).unwrap();
        routes.push(RouteEntry {
            address_prefix: vec![p.to_string()],
            source: SOURCES[i % 3].into(),
            state: if i % 17 == 0 {
                "Invalid".into()
            } else {
                "Active".into()
            },
            next_hop_type: HOPS[i % 5].into(),
            next_hop_ip_address: vec![],
            name: Some(format!("r{i}")),
            route_table: None,
            disable_bgp_route_propagation: None,
        });
    }
    let default = if family == Family::V4 {
        "0.0.0.0/0"
    } else {
        "::/0"
    };
    routes.push(RouteEntry {
        address_prefix: vec![default.into()],
        source: "Default".into(),
        state: "Active".into(),
        next_hop_type: "Internet".into(),
        next_hop_ip_address: vec![],
        name: None,
        route_table: None,
        disable_bgp_route_propagation: None,
    });
    let t = RouteTable::new(&routes).unwrap();
    assert!(
        t.is_compiled(),
        "the 10k-route table stays within the compiled bound"
    );
    // Half the probes inside route prefixes, half uniformly random.
    let probes = (0..1 << 16)
        .map(|i| {
            let bits = if i % 2 == 0 {
                let r = &t.routes()[rng.gen_range(0..t.routes().len())];
                let host = if r.prefix.len >= w {
                    0
                } else {
                    rng.gen::<u128>() & ((1u128 << (w - r.prefix.len)) - 1)
                };
                r.prefix.bits | host
            } else {
                match family {
                    Family::V4 => rng.gen::<u32>() as u128,
                    Family::V6 => (0x2001_0db8u128 << 96) | rng.gen::<u128>() >> 32,
                }
            };
            Addr { family, bits }
        })
        .collect();
    (t, probes)
}

fn bench(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for family in [Family::V4, Family::V6] {
        let (t, probes) = table(family, 10_000, &mut rng);
        let mut g = c.benchmark_group(format!("route_lookup_{family:?}_10k"));
        g.throughput(Throughput::Elements(probes.len() as u64));
        g.bench_function("lookup", |b| {
            b.iter(|| {
                let mut winners = 0usize;
                for &a in &probes {
                    if let Lookup::Winner(_) = t.lookup(black_box(a)) {
                        winners += 1;
                    }
                }
                black_box(winners)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
