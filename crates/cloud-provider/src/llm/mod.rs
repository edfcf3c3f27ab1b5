//! # LLM transport shared by the tools that narrate (ghost-agent, netfilter-inspector,
//! pcap-forensics); compiled with the `llm` feature.
//!
//! - a neutral message format ([`Message`], [`Part`], [`ToolSpec`], [`ChatRequest`],
//!   [`ChatResponse`]);
//! - [`LlmProvider`] implemented over real HTTP ([`HttpProvider`]) for the Anthropic Messages
//!   API, OpenAI Chat Completions (also Azure OpenAI, Ollama, vLLM, llama.cpp servers) and
//!   Gemini `generateContent`;
//! - bounded retries with exponential backoff and jitter honouring `retry-after`, recovery
//!   from empty answers, typed errors ([`LlmError`]);
//! - token and cost accounting ([`SessionUsage`], [`PriceTable`]);
//! - the tool-use loop primitive [`run_tool_loop`];
//! - [`provider_from_lookup`]: the provider named by the `LLM_*` keys of `config.env`.
//!
//! An LLM only ever narrates or chooses the next tool call: nothing deterministic (parsing,
//! measurement, verdicts) depends on it.
//!
//! ```no_run
//! use cloud_provider::llm::{ApiKey, AnthropicConfig, ChatRequest, HttpSettings, LlmProvider, Message, HttpProvider};
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
//! # Ok::<(), cloud_provider::llm::LlmError>(())
//! ```

pub mod accounting;
pub mod anthropic;
pub mod config;
pub mod error;
pub mod gemini;
pub mod http;
pub mod openai;
pub mod replay;
pub mod tool_loop;
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
