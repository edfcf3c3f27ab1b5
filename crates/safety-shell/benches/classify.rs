//! Classification latency of typical commands (target: median ≤ 50 µs each).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use safety_shell::{classify, simple_argv, ClassifyContext};

const COMMANDS: &[(&str, &str)] = &[
    ("ping", "ping -c 3 198.18.1.5"),
    ("az_effective_nsg", "az network nic list-effective-nsg -g rg -n nic"),
    ("ip_route_grep", "ip route show | grep default"),
    ("iptables_sudo", "sudo iptables -L -n -v --line-numbers"),
    (
        "run_command",
        "az vm run-command invoke -g rg -n vm --command-id RunShellScript --scripts 'ip route show' 'ss -tlnp'",
    ),
    ("forbidden_nested", "bash -c 'eval \"rm -rf /\"'"),
];

fn bench(c: &mut Criterion) {
    let ctx = ClassifyContext {
        output_dir: Some(PathBuf::from("/work/out")),
        read_paths: vec![PathBuf::from("/var/log")],
        trusted_programs: vec![],
    };
    let mut group = c.benchmark_group("classify");
    for (name, cmd) in COMMANDS {
        group.bench_function(*name, |b| b.iter(|| classify(black_box(cmd), &ctx)));
    }
    group.bench_function("simple_argv_ping", |b| {
        b.iter(|| simple_argv(black_box("ping -c 3 198.18.1.5")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
