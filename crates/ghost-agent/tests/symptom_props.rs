//! Symptom parsing: every scenario's reported symptom (SCENARIOS.md and the scenario files),
//! the extraction rules, and a property test (never panics, bounded output).

use std::collections::BTreeSet;
use std::path::PathBuf;

use ghost_agent::model::{Protocol, SymptomKind as K};
use ghost_agent::symptom::{
    self, MAX_ADDRESSES, MAX_BASELINES, MAX_COMPLAINTS, MAX_PORTS, MAX_TEXT_BYTES, MAX_VMS,
};
use proptest::prelude::*;

const SRC: &str = "source-vm";
const DST: &str = "dest-vm";

/// What one complaint must be.
struct C {
    kinds: &'static [K],
    /// Kinds it must not have.
    not: &'static [K],
    ports: &'static [u16],
    protocol: Option<Protocol>,
}

/// One scenario: the SCENARIOS.md wording and the complaints expected.
struct Row {
    id: &'static str,
    text: &'static str,
    ports: &'static [u16],
    complaints: Vec<C>,
}

const fn c(kinds: &'static [K], ports: &'static [u16], protocol: Option<Protocol>) -> C {
    C {
        kinds,
        not: &[],
        ports,
        protocol,
    }
}

const TCP: Option<Protocol> = Some(Protocol::Tcp);
const ICMP: Option<Protocol> = Some(Protocol::Icmp);

fn table() -> Vec<Row> {
    vec![
        Row {
            id: "a",
            text: "source cannot reach dest:8080; ping works",
            ports: &[8080],
            complaints: vec![c(&[K::Unreachable], &[8080], TCP)],
        },
        Row {
            id: "b",
            text: "intermittent slowness on 8080; control plane was checked",
            ports: &[8080],
            complaints: vec![c(&[K::Intermittent, K::Slow], &[8080], TCP)],
        },
        Row {
            id: "b2",
            text: "intermittent TCP failures for large transfers, small requests fine",
            ports: &[],
            complaints: vec![C {
                kinds: &[K::Intermittent],
                not: &[K::Throughput],
                ports: &[],
                protocol: TCP,
            }],
        },
        Row {
            id: "c",
            text: "compare what sender and receiver see",
            ports: &[],
            complaints: vec![c(&[], &[], None)],
        },
        Row {
            id: "d",
            text: "both PostgreSQL and Redis unreachable after an NSG change",
            ports: &[5432, 6379],
            complaints: vec![c(&[K::Unreachable, K::AfterChange], &[5432, 6379], TCP)],
        },
        Row {
            id: "e",
            text: "total loss source→dest; NSGs all allow",
            ports: &[],
            complaints: vec![C {
                kinds: &[K::Unreachable],
                not: &[K::Intermittent],
                ports: &[],
                protocol: None,
            }],
        },
        Row {
            id: "f",
            text: "VM cannot write to storage after subnet maintenance",
            ports: &[],
            complaints: vec![c(&[K::Unreachable, K::AfterChange], &[], None)],
        },
        Row {
            id: "g",
            text: "file transfers crawl",
            ports: &[],
            complaints: vec![c(&[K::Throughput, K::Slow], &[], None)],
        },
        Row {
            id: "h",
            text: "responses orders of magnitude slower",
            ports: &[],
            complaints: vec![C {
                kinds: &[K::Latency, K::Slow],
                not: &[K::Throughput],
                ports: &[],
                protocol: None,
            }],
        },
        Row {
            id: "i",
            text: "intermittent resets, retry sometimes works",
            ports: &[],
            complaints: vec![c(&[K::Intermittent], &[], None)],
        },
        Row {
            id: "j",
            text: "iperf to 5001 refused or hangs; NSG allows 5001; OS hardening ran last night",
            ports: &[5001],
            complaints: vec![c(&[K::Refused, K::Hangs, K::AfterChange], &[5001], TCP)],
        },
        Row {
            id: "k",
            text: "transfers 10–20× slower and ping fails",
            ports: &[],
            complaints: vec![
                C {
                    kinds: &[K::Throughput, K::Slow],
                    not: &[K::Unreachable],
                    ports: &[],
                    protocol: None,
                },
                C {
                    kinds: &[K::Unreachable],
                    not: &[K::Throughput],
                    ports: &[],
                    protocol: ICMP,
                },
            ],
        },
        Row {
            id: "l",
            text: "iperf broken after a change window; maybe more than one issue",
            ports: &[5001],
            complaints: vec![c(&[K::Unreachable, K::AfterChange], &[5001], TCP)],
        },
        Row {
            id: "m",
            text: "a partner address cannot SSH; NSG allows 22",
            ports: &[22],
            complaints: vec![c(&[K::Unreachable], &[22], TCP)],
        },
        Row {
            id: "n",
            text: "VM unreachable after CIS scripts; baseline id given",
            ports: &[],
            complaints: vec![c(&[K::Unreachable, K::AfterChange], &[], None)],
        },
        Row {
            id: "o",
            text: "container networking broken after daemon restart",
            ports: &[],
            complaints: vec![c(&[K::Unreachable, K::AfterChange], &[], None)],
        },
        Row {
            id: "p",
            text: "8080 unreachable after a change that was \"rolled back\"",
            ports: &[8080],
            complaints: vec![c(&[K::Unreachable, K::AfterChange], &[8080], TCP)],
        },
        Row {
            id: "q",
            text: "5432 broken and latency spiked",
            ports: &[5432],
            complaints: vec![
                c(&[K::Unreachable], &[5432], TCP),
                C {
                    kinds: &[K::Latency],
                    not: &[K::Unreachable],
                    ports: &[],
                    protocol: None,
                },
            ],
        },
        Row {
            id: "r",
            text: "did the change window change anything? and 9090 failing",
            ports: &[9090],
            complaints: vec![
                c(&[K::AfterChange], &[], None),
                c(&[K::Unreachable], &[9090], TCP),
            ],
        },
        Row {
            id: "s",
            text: "source cannot reach dest, silent hang",
            ports: &[],
            complaints: vec![c(&[K::Hangs, K::Unreachable], &[], None)],
        },
        Row {
            id: "t",
            text:
                "phase 1: all internet lost; phase 2 (after the route fix): HTTPS works, HTTP hangs",
            ports: &[443, 80],
            complaints: vec![
                c(&[K::Unreachable], &[], None),
                c(&[K::Hangs, K::AfterChange], &[80], TCP),
            ],
        },
        Row {
            id: "u",
            text: "cannot reach PostgreSQL; subnet work two hours ago",
            ports: &[5432],
            complaints: vec![c(&[K::Unreachable, K::AfterChange], &[5432], TCP)],
        },
        Row {
            id: "v",
            text: "compliance question: what is this VM exposed to?",
            ports: &[],
            complaints: vec![C {
                kinds: &[K::Compliance],
                not: &[K::Unreachable, K::AfterChange],
                ports: &[],
                protocol: None,
            }],
        },
    ]
}

fn check(id: &str, text: &str, row: &Row) {
    let s = symptom::parse(text, SRC, DST);
    let ctx = format!("scenario {id}: {text:?} parsed as {s:#?}");
    assert_eq!(s.ports, row.ports, "ports, {ctx}");
    assert_eq!(
        s.complaints.len(),
        row.complaints.len(),
        "complaints, {ctx}"
    );
    let mut union = BTreeSet::new();
    for (got, want) in s.complaints.iter().zip(&row.complaints) {
        for k in want.kinds {
            assert!(got.kinds.contains(k), "kind {k:?} missing, {ctx}");
        }
        for k in want.not {
            assert!(!got.kinds.contains(k), "kind {k:?} unexpected, {ctx}");
        }
        assert_eq!(got.ports, want.ports, "complaint ports, {ctx}");
        assert_eq!(got.protocol, want.protocol, "complaint protocol, {ctx}");
        union.extend(got.kinds.iter().copied());
    }
    let kinds: BTreeSet<_> = s.kinds.iter().copied().collect();
    assert_eq!(
        kinds, union,
        "symptom kinds are the complaints' kinds, {ctx}"
    );
}

#[test]
fn every_scenarios_md_symptom_parses() {
    for row in table() {
        check(row.id, row.text, &row);
    }
}

#[test]
fn every_scenario_file_symptom_parses() {
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../demo");
    let rows = table();
    let mut seen = 0;
    for entry in std::fs::read_dir(&demo).expect("demo directory") {
        let dir = entry.expect("dir entry").path();
        let Some(id) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("use_case_"))
            .map(str::to_string)
        else {
            continue;
        };
        let file = dir.join("scenario.toml");
        let doc: toml::Value = toml::from_str(&std::fs::read_to_string(&file).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let Some(sym) = doc.get("symptom") else {
            continue;
        };
        let mut text = sym
            .get("reported")
            .and_then(|v| v.as_str())
            .expect("symptom.reported")
            .to_string();
        if let Some(context) = sym.get("context").and_then(|v| v.as_str()) {
            text = format!("{text}; {context}");
        }
        let row = rows
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("scenario {id} has no row in the symptom table"));
        check(&id, &text, row);
        seen += 1;
    }
    assert!(
        seen >= 20,
        "only {seen} scenario files found under {}",
        demo.display()
    );
}

#[test]
fn k_splits_into_two_threads_with_icmp_apart() {
    let s = symptom::parse("transfers 10-20x slower and ping fails", SRC, DST);
    assert_eq!(s.complaints.len(), 2);
    assert_eq!(s.complaints[0].text, "transfers 10-20x slower");
    assert_eq!(s.complaints[1].text, "ping fails");
    assert_eq!(s.complaints[1].protocol, Some(Protocol::Icmp));
    assert_eq!(
        s.protocol, None,
        "the throughput complaint is not about ICMP"
    );
    assert!(s.ports.is_empty());
}

#[test]
fn vm_names_addresses_baselines() {
    let s = symptom::parse(
        "after the maintenance source-vm (198.18.1.4) cannot reach 198.18.1.5 on port 5432, \
         compare with baseline fw_20261122T091500Z and eni_20261122T091501Z_dest",
        SRC,
        DST,
    );
    assert_eq!(s.vms, vec![SRC]);
    assert_eq!(s.addresses, vec!["198.18.1.4", "198.18.1.5"]);
    assert_eq!(s.ports, vec![5432]);
    assert_eq!(
        s.baseline_ids,
        vec!["fw_20261122T091500Z", "eni_20261122T091501Z_dest"]
    );
    assert!(s.kinds.contains(&K::Unreachable));
    assert!(s.kinds.contains(&K::AfterChange));
    let s = symptom::parse("the client times out talking to the server", SRC, DST);
    assert_eq!(s.vms, vec![SRC, DST]);
    let s = symptom::parse("app01 cannot reach db01 over tcp/5432", "app01", "db01");
    assert_eq!(s.vms, vec!["app01", "db01"]);
    assert_eq!(s.protocol, Some(Protocol::Tcp));
}

#[test]
fn not_addresses_and_blank_text() {
    let s = symptom::parse(
        "198.18.1.4 to 198.18.1.5:5001 fails, not 1.2.3.4.5 nor 300.1.1.1 nor v1.2.3.4",
        SRC,
        DST,
    );
    assert_eq!(s.addresses, vec!["198.18.1.4", "198.18.1.5"]);
    assert_eq!(s.ports, vec![5001]);
    assert!(symptom::parse("   ", SRC, DST).complaints.is_empty());
    assert!(symptom::parse("", SRC, DST).kinds.is_empty());
}

#[test]
fn ports_forms_and_non_ports() {
    let s = symptom::parse(
        "port 443 and dest:8080 and tcp/5001 and 53/udp and ports 5432, 6379 and rdp and qperf",
        SRC,
        DST,
    );
    assert_eq!(s.ports, vec![443, 8080, 5001, 53, 5432, 6379, 3389, 19765]);
    let s = symptom::parse(
        "latency went from 1 ms to 100 ms at 10:45:00, 5000 ms worst, rate 5mbit, phase 2, 1500 bytes, priority 200",
        SRC,
        DST,
    );
    assert!(s.ports.is_empty(), "{:?}", s.ports);
    // A web server with no stated port names no port; "http" names 80.
    assert!(symptom::parse("the web server is slow", SRC, DST)
        .ports
        .is_empty());
    assert_eq!(symptom::parse("http hangs", SRC, DST).ports, vec![80]);
}

#[test]
fn kinds_keyword_sets() {
    let k = |t: &str| symptom::kinds_of(t);
    assert!(k("bandwidth dropped").contains(&K::Throughput));
    assert!(k("responses slower since lunch").contains(&K::Latency));
    assert!(k("latency spiked").contains(&K::Latency));
    assert!(k("connection resets").contains(&K::Intermittent));
    assert!(k("connection refused on 5001").contains(&K::Refused));
    assert!(k("ssh hangs at banner").contains(&K::Hangs));
    assert!(k("broken since the CIS scripts ran").contains(&K::AfterChange));
    assert!(k("what is this VM exposed to?").contains(&K::Compliance));
    assert!(k("it all broke after the daemon restart").contains(&K::AfterChange));
    assert!(!k("everything is fine").contains(&K::Unreachable));
    assert!(k("").is_empty());
    // Most specific first.
    assert_eq!(k("slow transfers"), vec![K::Throughput, K::Slow]);
}

#[test]
fn pairs_and_stated_ports() {
    let s = symptom::parse(
        "throughput between source-vm and dest-vm dropped to 200 Mbit/s after maintenance; latency also up",
        SRC,
        DST,
    );
    assert_eq!(s.vms, vec![SRC, DST]);
    assert_eq!(s.complaints.len(), 2, "{:#?}", s.complaints);
    assert!(s.complaints[0].kinds.contains(&K::Throughput));
    assert!(s.complaints[0].kinds.contains(&K::AfterChange));
    assert_eq!(s.complaints[1].kinds, vec![K::Latency]);
    // A port stated right after a service name replaces the service's default.
    let s = symptom::parse(
        "can't reach redis on dest-vm:6380, but postgres works",
        SRC,
        DST,
    );
    assert_eq!(s.ports, vec![6380, 5432]);
    assert_eq!(s.complaints.len(), 1);
    assert_eq!(s.complaints[0].ports, vec![6380]);
    let s = symptom::parse(
        "http://198.18.1.5:8080/health returns 502 intermittently",
        SRC,
        DST,
    );
    assert_eq!(s.ports, vec![8080]);
}

#[test]
fn same_kind_parts_stay_one_complaint() {
    let s = symptom::parse("ssh times out and http times out", SRC, DST);
    assert_eq!(s.complaints.len(), 1);
    assert_eq!(s.complaints[0].ports, vec![22, 80]);
    let s = symptom::parse("ping fails but ssh is slow", SRC, DST);
    assert_eq!(s.complaints.len(), 2);
    assert_eq!(s.complaints[0].protocol, Some(Protocol::Icmp));
    assert_eq!(s.complaints[1].ports, vec![22]);
}

#[test]
fn long_input_is_cut_and_bounded() {
    let text = "198.18.1.4:5001 refused and ping fails; ".repeat(1000);
    let s = symptom::parse(&text, SRC, DST);
    assert!(s.text.len() <= MAX_TEXT_BYTES);
    assert!(s.complaints.len() <= MAX_COMPLAINTS);
    // Multi-byte characters across the cut do not panic.
    let text = "é".repeat(MAX_TEXT_BYTES);
    let s = symptom::parse(&text, SRC, DST);
    assert!(s.text.len() <= MAX_TEXT_BYTES);
}

fn bounded(s: &ghost_agent::model::Symptom) {
    assert!(s.text.len() <= MAX_TEXT_BYTES);
    assert!(s.vms.len() <= MAX_VMS);
    assert!(s.addresses.len() <= MAX_ADDRESSES);
    assert!(s.ports.len() <= MAX_PORTS);
    assert!(s.baseline_ids.len() <= MAX_BASELINES);
    assert!(s.complaints.len() <= MAX_COMPLAINTS);
    for c in &s.complaints {
        assert!(c.ports.len() <= MAX_PORTS);
        assert!(c.text.len() <= s.text.len());
    }
    // Every kind at most once (SymptomKind has 10 variants).
    assert!(s.kinds.len() <= 10);
}

proptest! {
    // Few cases: the parser runs a dozen regexes per clause and this is a debug build.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC{0,300}", a in "\\PC{0,20}", b in "\\PC{0,20}") {
        let s = symptom::parse(&text, &a, &b);
        bounded(&s);
        // Deterministic.
        prop_assert_eq!(s, symptom::parse(&text, &a, &b));
    }

    #[test]
    fn never_panics_on_symptom_like_text(
        words in proptest::collection::vec(
            prop_oneof![
                Just("port".to_string()), Just("and".to_string()), Just(";".to_string()),
                Just("ping".to_string()), Just("fails".to_string()), Just("slower".to_string()),
                Just("dest:".to_string()), Just("tcp/".to_string()), Just("?".to_string()),
                Just("source".to_string()), Just("dest".to_string()), Just(",".to_string()),
                Just("fw_20261122T091500Z".to_string()), Just("after the fix".to_string()),
                "[0-9]{1,6}".prop_map(|s| s), "[0-9.]{1,20}".prop_map(|s| s),
                "[a-z]{1,8}".prop_map(|s| s),
            ],
            0..150,
        ),
        sep in prop_oneof![Just(""), Just(" "), Just("  ")],
    ) {
        let text = words.join(sep);
        let s = symptom::parse(&text, SRC, DST);
        bounded(&s);
        for vm in &s.vms {
            prop_assert!(vm == SRC || vm == DST);
        }
        for a in &s.addresses {
            prop_assert!(a.parse::<std::net::Ipv4Addr>().is_ok());
        }
        prop_assert!(s.ports.iter().all(|p| *p > 0));
    }
}
