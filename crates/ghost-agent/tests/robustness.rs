//! Transport robustness: bounded retries, long retry-after, timeouts, unreachable endpoints,
//! non-JSON answers and request errors.

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ghost_agent::{
    AnthropicConfig, ApiKey, HttpProvider, HttpSettings, LlmError, LlmProvider, RetryPolicy,
};
use support::*;

fn provider(base: &str, settings: HttpSettings) -> HttpProvider {
    let mut c = AnthropicConfig::new("claude-test-model", ApiKey::new(TEST_KEY));
    c.base_url = base.to_string();
    HttpProvider::anthropic(c, settings)
}

#[test]
fn rate_limit_retries_are_bounded_and_back_off_exponentially() {
    let server = ReplayServer::start(load_fixture("anthropic/rate_limited_exhausted.json"));
    let sleeper = Arc::new(RecordingSleeper::default());
    let p = provider(&server.base_url, settings(sleeper.clone()));
    let e = p.chat(&plain_request()).unwrap_err();
    server.verify();
    assert!(
        matches!(
            e,
            LlmError::RateLimited {
                attempts: 4,
                retry_after: None,
                ..
            }
        ),
        "{e:?}"
    );
    let waits = sleeper.waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 3);
    // Equal jitter: retry n waits within [base*2^n/2, base*2^n].
    for (n, w) in waits.iter().enumerate() {
        let full = Duration::from_millis(200 * (1 << n));
        assert!(*w >= full / 2 && *w <= full, "wait {n}: {w:?}");
    }
}

#[test]
fn retry_after_longer_than_max_delay_is_not_waited_for() {
    let server = ReplayServer::start(load_fixture("anthropic/retry_after_too_long.json"));
    let sleeper = Arc::new(RecordingSleeper::default());
    let p = provider(&server.base_url, settings(sleeper.clone()));
    let e = p.chat(&plain_request()).unwrap_err();
    server.verify();
    assert!(
        matches!(e, LlmError::RateLimited { attempts: 1, retry_after: Some(d), .. } if d == Duration::from_secs(3600)),
        "{e:?}"
    );
    assert!(e.to_string().contains("wait at least 3600s"), "{e}");
    assert!(sleeper.waits.lock().unwrap().is_empty());
}

#[test]
fn html_instead_of_json_is_malformed() {
    let server = ReplayServer::start(load_fixture("anthropic/not_json.json"));
    let p = provider(
        &server.base_url,
        settings(Arc::new(RecordingSleeper::default())),
    );
    let e = p.chat(&plain_request()).unwrap_err();
    server.verify();
    assert!(matches!(e, LlmError::Malformed { .. }), "{e:?}");
    assert!(e.to_string().contains("LLM_BASE_URL"), "{e}");
}

#[test]
fn bad_request_is_typed_and_not_retried() {
    let server = ReplayServer::start(load_fixture("anthropic/bad_request.json"));
    let sleeper = Arc::new(RecordingSleeper::default());
    let p = provider(&server.base_url, settings(sleeper.clone()));
    let e = p.chat(&plain_request()).unwrap_err();
    server.verify();
    assert_eq!(
        e,
        LlmError::BadRequest {
            provider: "anthropic".into(),
            status: 400,
            message: "tools.0.input_schema: JSON schema is invalid".into()
        }
    );
    assert!(sleeper.waits.lock().unwrap().is_empty());
}

#[test]
fn a_silent_server_times_out() {
    // Accepts connections (the kernel backlog does) but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sleeper = Arc::new(RecordingSleeper::default());
    let mut s = settings(sleeper.clone());
    s.timeout = Duration::from_millis(300);
    s.retry = RetryPolicy {
        max_retries: 1,
        ..s.retry
    };
    let p = provider(&base, s);
    let t0 = Instant::now();
    let e = p.chat(&plain_request()).unwrap_err();
    assert_eq!(
        e,
        LlmError::Timeout {
            provider: "anthropic".into(),
            after: Duration::from_millis(300)
        }
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(
        sleeper.waits.lock().unwrap().len(),
        1,
        "a timeout is retried once here"
    );
    drop(listener);
}

#[test]
fn an_unreachable_endpoint_is_a_transport_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut s = settings(Arc::new(RecordingSleeper::default()));
    s.retry = RetryPolicy {
        max_retries: 0,
        ..s.retry
    };
    let p = provider(&format!("http://127.0.0.1:{port}"), s);
    let e = p.chat(&plain_request()).unwrap_err();
    assert!(matches!(e, LlmError::Transport { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with("could not reach anthropic"),
        "{e}"
    );
}

#[test]
fn an_invalid_base_url_is_a_config_error_without_retries() {
    let sleeper = Arc::new(RecordingSleeper::default());
    let p = provider("not a url", settings(sleeper.clone()));
    let e = p.chat(&plain_request()).unwrap_err();
    assert!(matches!(e, LlmError::Config(_)), "{e:?}");
    assert!(e.to_string().contains("LLM_BASE_URL"), "{e}");
    assert!(sleeper.waits.lock().unwrap().is_empty());
}
