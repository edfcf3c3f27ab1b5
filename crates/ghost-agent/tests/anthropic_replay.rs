//! Anthropic Messages API against recorded exchanges (written from the public API
//! documentation) replayed by a local server.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ghost_agent::{
    run_tool_loop, AnthropicConfig, ApiKey, HttpProvider, LlmError, LlmProvider, LoopOutcome,
    StopReason, ToolCall, Usage,
};
use serde_json::json;
use support::*;

fn provider(base: &str, sleeper: Arc<RecordingSleeper>) -> HttpProvider {
    let mut c = AnthropicConfig::new("claude-test-model", ApiKey::new(TEST_KEY));
    c.base_url = base.to_string();
    HttpProvider::anthropic(c, settings(sleeper))
}

fn start(name: &str) -> (ReplayServer, HttpProvider, Arc<RecordingSleeper>) {
    let server = ReplayServer::start(load_fixture(&format!("anthropic/{name}.json")));
    let sleeper = Arc::new(RecordingSleeper::default());
    let p = provider(&server.base_url, sleeper.clone());
    (server, p, sleeper)
}

#[test]
fn tool_call_round_trip_with_prompt_caching() {
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
    assert_eq!(calls[0].id, "toolu_01");
    assert_eq!(report.turns, 2);
    assert_eq!(report.tool_calls_executed, 1);
    assert_eq!(
        report.usage,
        Usage {
            input_tokens: 450 + 460,
            output_tokens: 50,
            cached_input_tokens: 400,
            cache_write_input_tokens: 400
        }
    );
    assert_eq!(report.transcript.len(), 4);
}

#[test]
fn plain_text_answer() {
    let (server, p, _) = start("text");
    let r = p.chat(&plain_request()).unwrap();
    server.verify();
    assert_eq!(r.text(), "The NSG layer: effective rules on both NICs.");
    assert_eq!(r.stop_reason, StopReason::EndTurn);
    assert!(r.tool_calls().is_empty());
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
fn empty_answer_is_retried_once_and_its_tokens_counted() {
    let (server, p, sleeper) = start("empty_then_text");
    let r = p.chat(&plain_request()).unwrap();
    server.verify();
    assert_eq!(r.text(), "The NSG layer: effective rules on both NICs.");
    assert_eq!(r.usage.input_tokens, 80);
    assert_eq!(r.usage.output_tokens, 13);
    assert!(sleeper.waits.lock().unwrap().is_empty());
}

#[test]
fn empty_answer_twice_is_a_typed_error() {
    let (server, p, _) = start("empty_twice");
    let e = p.chat(&plain_request()).unwrap_err();
    server.verify();
    assert_eq!(
        e,
        LlmError::EmptyResponse {
            provider: "anthropic".into(),
            attempts: 2
        }
    );
}

#[test]
fn rate_limit_then_overload_then_success_honours_retry_after() {
    let (server, p, sleeper) = start("rate_limited_then_ok");
    let r = p.chat(&plain_request()).unwrap();
    server.verify();
    assert_eq!(r.text(), "The NSG layer: effective rules on both NICs.");
    let waits = sleeper.waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 2, "{waits:?}");
    // retry-after: 2 is honoured (the backoff of the first retry is below it).
    assert_eq!(waits[0], Duration::from_secs(2));
    // second retry: equal-jitter backoff of 200ms * 2 = 400ms, so within [200ms, 400ms].
    assert!(
        waits[1] >= Duration::from_millis(200) && waits[1] <= Duration::from_millis(400),
        "{waits:?}"
    );
}

#[test]
fn malformed_tool_call_is_fed_back_and_not_executed() {
    let bad = ToolCall {
        id: "toolu_02".into(),
        name: "inspect_nsg".into(),
        arguments: json!("{\"vm\": \"vm-b\", \"direction\""),
    };
    let feedback = bad.arguments_object().unwrap_err().to_string();
    assert!(
        feedback.starts_with(
            "tool call toolu_02 to `inspect_nsg` was malformed: the arguments are not valid JSON ("
        ),
        "{feedback}"
    );
    let fixture = with_feedback(
        load_fixture("anthropic/malformed_tool_call.json"),
        &feedback,
    );
    let server = ReplayServer::start(fixture);
    let p = provider(&server.base_url, Arc::new(RecordingSleeper::default()));
    let mut calls = Vec::new();
    let report = run_tool_loop(&p, &tool_request(), nsg_executor(&mut calls), 5);
    server.verify();
    assert!(
        calls.is_empty(),
        "a malformed call must not reach the executor"
    );
    assert_eq!(report.malformed_tool_calls, 1);
    assert!(
        matches!(report.outcome, LoopOutcome::FinalAnswer { .. }),
        "{:?}",
        report.outcome
    );
}

#[test]
fn auth_error_is_typed_and_not_retried() {
    let (server, p, sleeper) = start("auth_error");
    let e = p.chat(&plain_request()).unwrap_err();
    server.verify();
    assert_eq!(
        e,
        LlmError::Auth {
            provider: "anthropic".into(),
            status: 401,
            message: "invalid x-api-key".into()
        }
    );
    assert!(e.to_string().contains("check LLM_API_KEY"));
    assert!(!e.to_string().contains(TEST_KEY));
    assert!(sleeper.waits.lock().unwrap().is_empty());
}
