//! OpenAI Chat Completions (and Azure OpenAI, and key-less local servers) against recorded
//! exchanges (written from the public API documentation) replayed by a local server.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ghost_agent::{
    run_tool_loop, ApiKey, HttpProvider, LlmError, LlmProvider, LoopOutcome, OpenAiConfig,
    StopReason, ToolCall, Usage,
};
use serde_json::json;
use support::*;

fn provider(base: &str, sleeper: Arc<RecordingSleeper>) -> HttpProvider {
    let mut c = OpenAiConfig::new("gpt-test-model", Some(ApiKey::new(TEST_KEY)));
    c.base_url = format!("{base}/v1");
    HttpProvider::openai(c, settings(sleeper))
}

fn start(name: &str) -> (ReplayServer, HttpProvider, Arc<RecordingSleeper>) {
    let server = ReplayServer::start(load_fixture(&format!("openai/{name}.json")));
    let sleeper = Arc::new(RecordingSleeper::default());
    let p = provider(&server.base_url, sleeper.clone());
    (server, p, sleeper)
}

const TEXT: &str = "The NSG layer: effective rules on both NICs.";

#[test]
fn tool_call_round_trip() {
    let (server, p, _) = start("tool_round_trip");
    let mut calls = Vec::new();
    let report = run_tool_loop(&p, &tool_request(), nsg_executor(&mut calls), 5);
    server.verify();
    assert_eq!(
        report.outcome,
        LoopOutcome::FinalAnswer {
            text: "Root cause: NSG rule deny-443 on nsg-b denies inbound tcp/443.".into(),
            stop_reason: StopReason::EndTurn
        }
    );
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, "call_abc123");
    assert_eq!(
        report.usage,
        Usage {
            input_tokens: 960,
            output_tokens: 50,
            cached_input_tokens: 384,
            cache_write_input_tokens: 0
        }
    );
}

#[test]
fn plain_text_answer() {
    let (server, p, _) = start("text");
    let r = p.chat(&plain_request()).unwrap();
    server.verify();
    assert_eq!(r.text(), TEXT);
    assert_eq!(r.stop_reason, StopReason::EndTurn);
    assert_eq!(
        r.usage,
        Usage {
            input_tokens: 40,
            output_tokens: 12,
            ..Usage::default()
        }
    );
}

#[test]
fn empty_answer_is_retried_once() {
    let (server, p, _) = start("empty_then_text");
    let r = p.chat(&plain_request()).unwrap();
    server.verify();
    assert_eq!(r.text(), TEXT);
    assert_eq!(r.usage.input_tokens, 80);
}

#[test]
fn empty_answer_twice_is_a_typed_error() {
    let (server, p, _) = start("empty_twice");
    let e = p.chat(&plain_request()).unwrap_err();
    server.verify();
    assert_eq!(
        e,
        LlmError::EmptyResponse {
            provider: "openai".into(),
            attempts: 2
        }
    );
}

#[test]
fn rate_limit_then_503_then_success_honours_retry_after_ms() {
    let (server, p, sleeper) = start("rate_limited_then_ok");
    let r = p.chat(&plain_request()).unwrap();
    server.verify();
    assert_eq!(r.text(), TEXT);
    let waits = sleeper.waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 2, "{waits:?}");
    // retry-after-ms (1500) is preferred over retry-after (2 s).
    assert_eq!(waits[0], Duration::from_millis(1500));
    assert!(
        waits[1] >= Duration::from_millis(200) && waits[1] <= Duration::from_millis(400),
        "{waits:?}"
    );
}

#[test]
fn malformed_tool_call_is_fed_back_and_not_executed() {
    let bad = ToolCall {
        id: "call_bad1".into(),
        name: "inspect_nsg".into(),
        arguments: json!("{\"vm\": \"vm-b\", \"direction\""),
    };
    let feedback = bad.arguments_object().unwrap_err().to_string();
    let fixture = with_feedback(load_fixture("openai/malformed_tool_call.json"), &feedback);
    let server = ReplayServer::start(fixture);
    let p = provider(&server.base_url, Arc::new(RecordingSleeper::default()));
    let mut calls = Vec::new();
    let report = run_tool_loop(&p, &tool_request(), nsg_executor(&mut calls), 5);
    server.verify();
    assert!(calls.is_empty());
    assert_eq!(report.malformed_tool_calls, 1);
    assert_eq!(
        report.outcome,
        LoopOutcome::FinalAnswer {
            text: "I could not call the tool; no conclusion yet.".into(),
            stop_reason: StopReason::EndTurn
        }
    );
}

#[test]
fn auth_error_is_typed_and_not_retried() {
    let (server, p, sleeper) = start("auth_error");
    let e = p.chat(&plain_request()).unwrap_err();
    server.verify();
    assert!(
        matches!(&e, LlmError::Auth { status: 401, provider, .. } if provider == "openai"),
        "{e:?}"
    );
    assert!(sleeper.waits.lock().unwrap().is_empty());
}

#[test]
fn azure_uses_deployment_url_api_version_and_api_key_header() {
    let server = ReplayServer::start(load_fixture("openai/azure_text.json"));
    let mut c = OpenAiConfig::azure(
        &server.base_url,
        "gpt4o-prod",
        "gpt-test-model",
        ApiKey::new(TEST_KEY),
    );
    c.base_url = format!("{}/", server.base_url);
    let p = HttpProvider::openai(c, settings(Arc::new(RecordingSleeper::default())));
    assert_eq!(p.name(), "azure-openai");
    let r = p.chat(&plain_request()).unwrap();
    server.verify();
    assert_eq!(r.text(), TEXT);
}

#[test]
fn local_server_without_key_sends_no_authorization() {
    let server = ReplayServer::start(load_fixture("openai/local_no_key.json"));
    let mut c = OpenAiConfig::new("gpt-test-model", None);
    c.base_url = format!("{}/v1", server.base_url);
    let p = HttpProvider::openai(c, settings(Arc::new(RecordingSleeper::default())));
    let r = p.chat(&plain_request()).unwrap();
    server.verify();
    assert_eq!(r.text(), TEXT);
}
