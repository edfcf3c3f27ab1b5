//! # ghost-agent: the LLM transport of the investigator
//!
//! This crate holds, today, one self-contained part of `ghost-agent`: the "brains"'
//! transport. The investigator itself (sessions, tools, playbook, rules, reports, the CLI)
//! is not written yet.
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

pub mod accounting;
pub mod anthropic;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod eval;
pub mod gemini;
pub mod http;
pub mod llm_brain;
pub mod model;
pub mod openai;
pub mod playbook;
pub mod report;
pub mod rules;
pub mod scoring;
pub mod session;
pub mod symptom;
pub mod tool_loop;
pub mod tools;
pub mod types;

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

/// A chat model behind some API.
pub trait LlmProvider: Send + Sync {
    /// Provider name (`anthropic`, `openai`, `azure-openai`, `gemini`).
    fn name(&self) -> &str;
    /// Model id (for accounting).
    fn model(&self) -> &str;
    /// One request, one reply (retries inside).
    fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
}

impl HttpProvider {
    /// An Anthropic Messages API provider.
    pub fn anthropic(config: AnthropicConfig, settings: HttpSettings) -> HttpProvider {
        HttpProvider::new(Box::new(anthropic::AnthropicWire { config }), settings)
    }

    /// An OpenAI-compatible provider (named `azure-openai` for the Azure flavour).
    pub fn openai(config: OpenAiConfig, settings: HttpSettings) -> HttpProvider {
        let name = match config.flavor {
            OpenAiFlavor::Standard => "openai",
            OpenAiFlavor::Azure { .. } => "azure-openai",
        }
        .to_string();
        HttpProvider::new(Box::new(openai::OpenAiWire { config, name }), settings)
    }

    /// A Gemini provider.
    pub fn gemini(config: GeminiConfig, settings: HttpSettings) -> HttpProvider {
        HttpProvider::new(
            Box::new(gemini::GeminiWire {
                config,
                next_call: Default::default(),
            }),
            settings,
        )
    }
}
