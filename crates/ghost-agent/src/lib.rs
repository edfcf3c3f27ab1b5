//! # ghost-agent: the network investigator
//!
//! Sessions, tools over every crate of the workspace, the playbook and LLM brains on one
//! engine, evidence-gated conclusions and reports (see docs/ghost-agent.md). The LLM
//! transport is `cloud_provider::llm`, re-exported here:
//!
//! - a neutral message format ([`Message`], [`Part`], [`ToolSpec`], [`ChatRequest`],
//!   [`ChatResponse`]);
//! - [`LlmProvider`] implemented over real HTTP ([`HttpProvider`]) for the Anthropic Messages
//!   API, OpenAI Chat Completions (also Azure OpenAI, Ollama, vLLM, llama.cpp servers) and
//!   Gemini `generateContent`;
//! - bounded retries with exponential backoff and jitter honouring `retry-after`, recovery
//!   from empty answers, typed errors ([`LlmError`]);
//! - token and cost accounting ([`SessionUsage`], [`PriceTable`]);
//! - the tool-use loop primitive [`run_tool_loop`].
//!
//! ```no_run
//! use ghost_agent::{ApiKey, AnthropicConfig, ChatRequest, HttpSettings, LlmProvider, Message, HttpProvider};
//! let provider = HttpProvider::anthropic(
//!     AnthropicConfig::new("claude-sonnet-4-20250514", ApiKey::new("sk-...")),
//!     HttpSettings::default(),
//! );
//! let reply = provider.chat(&ChatRequest {
//!     system: Some("You are a network investigator.".into()),
//!     messages: vec![Message::user("Why can vm-a not reach vm-b on 443?")],
//!     tools: vec![],
//!     max_tokens: 1024,
//!     temperature: Some(0.0),
//! })?;
//! println!("{}", reply.text());
//! # Ok::<(), ghost_agent::LlmError>(())
//! ```

pub mod cli;
pub mod engine;
pub mod eval;
pub mod llm_brain;
pub mod model;
pub mod playbook;
pub mod playbook_storage;
pub mod report;
pub mod rules;
pub mod scoring;
pub mod session;
pub mod symptom;
pub mod tools;

// The LLM transport lives in cloud-provider (feature `llm`) so that the standalone tools can
// narrate too; it is re-exported here under its former paths.
pub use cloud_provider::llm::{
    accounting, anthropic, config, error, gemini, http, openai, tool_loop, types, LlmProvider,
};

pub use accounting::{CostReport, ModelCost, ModelPrice, ModelUsage, PriceTable, SessionUsage};
pub use anthropic::AnthropicConfig;
pub use config::{provider_from_lookup, ProviderKind};
pub use error::LlmError;
pub use gemini::GeminiConfig;
pub use http::{ApiKey, HttpProvider, HttpSettings, RetryPolicy, Sleeper, ThreadSleeper};
pub use openai::{OpenAiConfig, OpenAiFlavor};
pub use tool_loop::{run_tool_loop, LoopOutcome, LoopReport, ToolOutput};
pub use types::{
    ChatRequest, ChatResponse, Message, Part, Role, StopReason, ToolCall, ToolSpec, Usage,
};
