//! The tool-use loop primitive: send, run the tool calls the model asks for, append their
//! results, repeat until a final answer or the turn limit.

use serde::{Deserialize, Serialize};

use crate::llm::error::LlmError;
use crate::llm::types::{ChatRequest, Message, Part, Role, StopReason, ToolCall, Usage};
use crate::llm::LlmProvider;

/// What a tool returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// Compact text (or JSON text) for the model.
    pub content: String,
    /// True when the tool failed or refused.
    pub is_error: bool,
}

impl ToolOutput {
    /// A successful result.
    pub fn ok(content: impl Into<String>) -> ToolOutput {
        ToolOutput {
            content: content.into(),
            is_error: false,
        }
    }

    /// A failed result.
    pub fn error(content: impl Into<String>) -> ToolOutput {
        ToolOutput {
            content: content.into(),
            is_error: true,
        }
    }
}

/// How the loop ended.
#[derive(Debug, Clone, PartialEq)]
pub enum LoopOutcome {
    /// The model answered without calling a tool.
    FinalAnswer {
        /// The answer text.
        text: String,
        /// Why it stopped (`MaxTokens` means the answer may be cut short).
        stop_reason: StopReason,
    },
    /// `turn_limit` model calls were made and the model still wanted tools.
    TurnLimitReached,
    /// A provider error ended the loop (the transcript and usage so far are kept).
    Failed(LlmError),
}

/// The loop's result.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopReport {
    /// How it ended.
    pub outcome: LoopOutcome,
    /// The request's messages followed by every assistant reply and tool result.
    pub transcript: Vec<Message>,
    /// Model calls that returned a reply.
    pub turns: u32,
    /// Tokens over all those calls.
    pub usage: Usage,
    /// Tool calls executed (malformed ones are not executed).
    pub tool_calls_executed: u32,
    /// Malformed tool calls answered with an error result.
    pub malformed_tool_calls: u32,
}

/// Runs the loop. Each model reply counts as one turn. Every well-formed tool call goes
/// through `execute`; a call with unusable arguments is not executed but answered with an
/// error tool result carrying [`LlmError::MalformedToolCall`]'s sentence, so the model can
/// correct itself; a provider-reported malformed call (no call to answer) is answered with a
/// user message saying so.
pub fn run_tool_loop<F>(
    provider: &dyn LlmProvider,
    request: &ChatRequest,
    mut execute: F,
    turn_limit: u32,
) -> LoopReport
where
    F: FnMut(&ToolCall) -> ToolOutput,
{
    let mut req = request.clone();
    let mut report = LoopReport {
        outcome: LoopOutcome::TurnLimitReached,
        transcript: Vec::new(),
        turns: 0,
        usage: Usage::default(),
        tool_calls_executed: 0,
        malformed_tool_calls: 0,
    };
    while report.turns < turn_limit {
        let response = match provider.chat(&req) {
            Ok(r) => r,
            Err(e) => {
                report.outcome = LoopOutcome::Failed(e);
                break;
            }
        };
        report.turns += 1;
        report.usage += response.usage;
        if response.stop_reason == StopReason::MalformedToolCall && response.tool_calls().is_empty()
        {
            if !response.parts.is_empty() {
                req.messages.push(response.to_message());
            }
            report.malformed_tool_calls += 1;
            req.messages.push(Message::user(
                "Your last function call was malformed and could not be parsed; call the tool again with a JSON object matching its input schema.",
            ));
            continue;
        }
        let calls: Vec<ToolCall> = response.tool_calls().into_iter().cloned().collect();
        req.messages.push(response.to_message());
        if calls.is_empty() {
            report.outcome = LoopOutcome::FinalAnswer {
                text: response.text(),
                stop_reason: response.stop_reason.clone(),
            };
            report.transcript = req.messages;
            return report;
        }
        let mut results = Vec::with_capacity(calls.len());
        for call in &calls {
            let output = match call.arguments_object() {
                Ok(_) => {
                    report.tool_calls_executed += 1;
                    execute(call)
                }
                Err(e) => {
                    report.malformed_tool_calls += 1;
                    ToolOutput::error(e.to_string())
                }
            };
            results.push(Part::ToolResult {
                call_id: call.id.clone(),
                content: output.content,
                is_error: output.is_error,
            });
        }
        req.messages.push(Message {
            role: Role::Tool,
            content: results,
        });
    }
    report.transcript = req.messages;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::types::{ChatResponse, Part};
    use serde_json::json;
    use std::sync::Mutex;

    /// A provider that replays scripted replies and records the requests.
    struct Scripted {
        replies: Mutex<Vec<Result<ChatResponse, LlmError>>>,
        seen: Mutex<Vec<ChatRequest>>,
    }

    impl LlmProvider for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        fn model(&self) -> &str {
            "m"
        }
        fn chat(&self, r: &ChatRequest) -> Result<ChatResponse, LlmError> {
            self.seen.lock().unwrap().push(r.clone());
            self.replies.lock().unwrap().remove(0)
        }
    }

    fn call_reply(id: &str) -> Result<ChatResponse, LlmError> {
        Ok(ChatResponse {
            parts: vec![Part::ToolCall(ToolCall {
                id: id.into(),
                name: "t".into(),
                arguments: json!({"n": 1}),
            })],
            stop_reason: StopReason::ToolUse,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 1,
                ..Usage::default()
            },
        })
    }

    fn request() -> ChatRequest {
        ChatRequest {
            system: None,
            messages: vec![Message::user("go")],
            tools: vec![],
            max_tokens: 10,
            temperature: None,
        }
    }

    #[test]
    fn stops_at_the_turn_limit_with_usage_and_transcript() {
        let p = Scripted {
            replies: Mutex::new(vec![call_reply("a"), call_reply("b"), call_reply("c")]),
            seen: Mutex::new(vec![]),
        };
        let mut n = 0;
        let r = run_tool_loop(
            &p,
            &request(),
            |_| {
                n += 1;
                ToolOutput::ok(format!("result {n}"))
            },
            2,
        );
        assert_eq!(r.outcome, LoopOutcome::TurnLimitReached);
        assert_eq!(r.turns, 2);
        assert_eq!(r.tool_calls_executed, 2);
        assert_eq!(r.usage.input_tokens, 20);
        let mut session = crate::llm::SessionUsage::default();
        session.record_loop(p.model(), &r);
        session.record_loop(p.model(), &r);
        assert_eq!(session.per_model["m"].calls, 4);
        assert_eq!(session.total().input_tokens, 40);
        // user, assistant, tool, assistant, tool
        assert_eq!(r.transcript.len(), 5);
        assert_eq!(
            r.transcript[4].content,
            vec![Part::ToolResult {
                call_id: "b".into(),
                content: "result 2".into(),
                is_error: false
            }]
        );
        // The second request carried the first call's result.
        let seen = p.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].messages.len(), 3);
    }

    #[test]
    fn a_provider_error_ends_the_loop_keeping_what_was_done() {
        let err = LlmError::Auth {
            provider: "scripted".into(),
            status: 401,
            message: "no".into(),
        };
        let p = Scripted {
            replies: Mutex::new(vec![call_reply("a"), Err(err.clone())]),
            seen: Mutex::new(vec![]),
        };
        let r = run_tool_loop(&p, &request(), |_| ToolOutput::error("denied"), 5);
        assert_eq!(r.outcome, LoopOutcome::Failed(err));
        assert_eq!(r.turns, 1);
        assert_eq!(r.usage.input_tokens, 10);
        assert_eq!(r.transcript.len(), 3);
    }

    #[test]
    fn zero_turns_makes_no_call() {
        let p = Scripted {
            replies: Mutex::new(vec![]),
            seen: Mutex::new(vec![]),
        };
        let r = run_tool_loop(&p, &request(), |_| ToolOutput::ok(""), 0);
        assert_eq!(r.outcome, LoopOutcome::TurnLimitReached);
        assert!(p.seen.lock().unwrap().is_empty());
        assert_eq!(r.transcript, request().messages);
    }
}
