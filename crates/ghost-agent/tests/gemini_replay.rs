//! Gemini `generateContent` against recorded exchanges (written from the public API
//! documentation) replayed by a local server.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ghost_agent::{
    run_tool_loop, ApiKey, GeminiConfig, HttpProvider, LlmError, LlmProvider, LoopOutcome,
    StopReason, Usage,
};
use support::*;

fn provider(base: &str, sleeper: Arc<RecordingSleeper>) -> HttpProvider {
    let mut c = GeminiConfig::new("gemini-test-model", ApiKey::new(TEST_KEY));
    c.base_url = base.to_string();
    HttpProvider::gemini(c, settings(sleeper))
}

fn start(name: &str) -> (ReplayServer, HttpProvider, Arc<RecordingSleeper>) {
    let server = ReplayServer::start(load_fixture(&format!("gemini/{name}.json")));
    let sleeper = Arc::new(RecordingSleeper::default());
    let p = provider(&server.base_url, sleeper.clone());
    (server, p, sleeper)
}

const TEXT: &str = "The NSG layer: effective rules on both NICs.";
const ROOT_CAUSE: &str = "Root cause: NSG rule deny-443 on nsg-b denies inbound tcp/443.";

#[test]
fn tool_call_round_trip() {
    let (server, p, _) = start("tool_round_trip");
    let mut calls = Vec::new();
    let report = run_tool_loop(&p, &tool_request(), nsg_executor(&mut calls), 5);
    let recorded = server.verify();
    assert_eq!(
        report.outcome,
        LoopOutcome::FinalAnswer {
            text: ROOT_CAUSE.into(),
            stop_reason: StopReason::EndTurn
        }
    );
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].id, "ghost-call-0",
        "an id is synthesized when Gemini gives none"
    );
    assert_eq!(
        report.usage,
        Usage {
            input_tokens: 960,
            output_tokens: 50,
            cached_input_tokens: 384,
            cache_write_input_tokens: 0
        }
    );
    // The key travels only in the header, never in the URL.
    assert!(recorded.iter().all(|r| !r.path.contains(TEST_KEY)));
}

#[test]
fn plain_text_answer() {
    let (server, p, _) = start("text");
    let r = p.chat(&plain_request()).unwrap();
    server.verify();
    assert_eq!(r.text(), TEXT);
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
            provider: "gemini".into(),
            attempts: 2
        }
    );
}

#[test]
fn rate_limit_then_unavailable_then_success_honours_retry_info() {
    let (server, p, sleeper) = start("rate_limited_then_ok");
    let r = p.chat(&plain_request()).unwrap();
    server.verify();
    assert_eq!(r.text(), TEXT);
    let waits = sleeper.waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 2, "{waits:?}");
    assert_eq!(waits[0], Duration::from_secs(3));
    assert!(
        waits[1] >= Duration::from_millis(200) && waits[1] <= Duration::from_millis(400),
        "{waits:?}"
    );
}

#[test]
fn malformed_function_call_is_reported_to_the_model_which_recovers() {
    let (server, p, _) = start("malformed_tool_call");
    let mut calls = Vec::new();
    let report = run_tool_loop(&p, &tool_request(), nsg_executor(&mut calls), 5);
    server.verify();
    assert_eq!(report.malformed_tool_calls, 1);
    assert_eq!(report.turns, 3);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].id, "fc-7");
    assert_eq!(
        report.outcome,
        LoopOutcome::FinalAnswer {
            text: ROOT_CAUSE.into(),
            stop_reason: StopReason::EndTurn
        }
    );
}

#[test]
fn invalid_key_is_an_auth_error() {
    let (server, p, sleeper) = start("auth_error");
    let e = p.chat(&plain_request()).unwrap_err();
    server.verify();
    assert_eq!(
        e,
        LlmError::Auth {
            provider: "gemini".into(),
            status: 400,
            message: "API key not valid. Please pass a valid API key.".into()
        }
    );
    assert!(sleeper.waits.lock().unwrap().is_empty());
}
