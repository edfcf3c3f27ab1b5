//! Application response times: slow responses found, and placed (server or path) by the
//! sender/receiver comparison.

mod support;

use pcap_forensics::compare::{compare, Mode};
use pcap_forensics::semantic::Meta;
use pcap_forensics::testsupport::{Capture, TcpConv};
use support::*;

fn meta() -> Meta {
    Meta::at(chrono::DateTime::from_timestamp(1_767_225_600, 0).expect("time"))
}

/// Four request/response exchanges on four connections; `think_ms[i]` is the time between
/// the request and the response in this capture.
fn http(think_ms: &[f64], rtt_ms: f64) -> Capture {
    let mut cap = Capture::new();
    for (i, think) in think_ms.iter().enumerate() {
        let mut c = TcpConv::new(v4(CLIENT), 41000 + i as u16, v4(SERVER), 8080);
        c.handshake(&mut cap, rtt_ms);
        c.send_c(&mut cap, 120);
        cap.wait_ms(*think);
        c.send_s(&mut cap, 900);
        cap.wait_ms(rtt_ms / 2.0);
        c.ack_c(&mut cap);
        c.close(&mut cap);
        cap.wait_ms(50.0);
    }
    cap
}

#[test]
fn a_slow_response_is_a_finding_with_its_frames() {
    let a = analyze(&http(&[1.0, 1.2, 1500.0, 0.9], 0.2));
    let t = a
        .responses
        .servers
        .values()
        .next()
        .expect("the server's response times");
    assert_eq!(t.responses, 4);
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "tcp.slow_response")
        .expect("slow response finding");
    assert!(f.title.contains("198.18.201.2:8080"), "{}", f.title);
    assert!(f.title.contains("1 of 4"), "{}", f.title);
    assert!((f.value - 1500.0).abs() < 1.0, "max {}", f.value);
    assert_eq!(f.sample_frames.len(), 1);
    assert!(f.flows[0].contains("-> 198.18.201.2:8080"), "{:?}", f.flows);
}

#[test]
fn uniform_responses_are_not_slow() {
    let a = analyze(&http(&[300.0, 310.0, 305.0, 320.0], 0.2));
    assert!(!rules(&a).contains(&"tcp.slow_response"), "{:?}", rules(&a));
}

#[test]
fn sender_and_receiver_place_the_delay() {
    // The client sees think time + round trip, the server its think time only.
    let client = analyze(&http(&[2.0, 2.0, 802.0, 2.0], 2.0));
    let server = analyze(&http(&[0.1, 0.1, 800.1, 0.1], 0.01));
    let c = compare(&client, &server, Mode::Endpoint, 5, &meta());
    assert_eq!(
        c.json["response_times"][0]["delay_made_at"], "server",
        "{}",
        c.json
    );
    assert!(c.json["response_verdict"]
        .as_str()
        .unwrap()
        .contains("the server makes the delay"));
    assert!(c.markdown.contains("Response times:"));
    // Fast where the server is, slow where the client is: the path adds it.
    let fast_server = analyze(&http(&[0.1, 0.1, 0.1, 0.1], 0.01));
    let c = compare(&client, &fast_server, Mode::Endpoint, 5, &meta());
    assert_eq!(c.json["response_times"][0]["delay_made_at"], "network");
}
