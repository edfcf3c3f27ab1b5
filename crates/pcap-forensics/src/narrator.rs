//! Optional LLM narration behind a trait. The analysis never depends on it: without a
//! narrator the report says "Narrative: not requested" (or why none is available). With the
//! `llm` feature (default), [`llm::LlmNarrator`] narrates over any
//! `cloud_provider::llm::LlmProvider`; other crates can implement [`Narrator`] themselves.

use serde_json::Value;

use crate::error::PcapError;

#[cfg(feature = "llm")]
pub mod llm;

/// Turns the semantic JSON into prose. Implementations must not change any number.
pub trait Narrator {
    /// A short name for the report ("gemini", "anthropic", "test"...).
    fn name(&self) -> &str;
    /// Narrate the semantic JSON.
    fn narrate(&self, semantic: &Value) -> Result<String, PcapError>;
}

/// What the report says about the narrative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Narrative {
    NotRequested,
    /// Requested, but no narrator could be built (the reason says what to set).
    Unavailable {
        reason: String,
    },
    Text {
        provider: String,
        text: String,
    },
    Failed {
        provider: String,
        error: String,
    },
}

/// Run the narrator if there is one; failures become a `Failed` narrative, never an error.
pub fn narrate(narrator: Option<&dyn Narrator>, semantic: &Value) -> Narrative {
    match narrator {
        None => Narrative::NotRequested,
        Some(n) => match n.narrate(semantic) {
            Ok(text) => Narrative::Text {
                provider: n.name().to_string(),
                text,
            },
            Err(e) => Narrative::Failed {
                provider: n.name().to_string(),
                error: e.to_string(),
            },
        },
    }
}
