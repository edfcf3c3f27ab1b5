//! Building a provider from the shared configuration keys `LLM_PROVIDER`, `LLM_MODEL`,
//! `LLM_API_KEY` and `LLM_BASE_URL` (the keys of `cloud-provider`'s `config.env`; pass
//! `|k| settings.get(k)` as the lookup).

use crate::llm::anthropic::AnthropicConfig;
use crate::llm::error::LlmError;
use crate::llm::gemini::GeminiConfig;
use crate::llm::http::{ApiKey, HttpProvider, HttpSettings};
use crate::llm::openai::{OpenAiConfig, OpenAiFlavor, DEFAULT_AZURE_API_VERSION};

/// Which API `LLM_PROVIDER` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// `anthropic`
    Anthropic,
    /// `openai` (any OpenAI-compatible endpoint; Azure when the base URL is an
    /// `*.openai.azure.com` endpoint)
    OpenAi,
    /// `azure-openai` (explicit)
    AzureOpenAi,
    /// `gemini`
    Gemini,
}

impl std::str::FromStr for ProviderKind {
    type Err = LlmError;

    fn from_str(s: &str) -> Result<ProviderKind, LlmError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "anthropic" | "claude" => Ok(ProviderKind::Anthropic),
            "openai" | "openai-compatible" => Ok(ProviderKind::OpenAi),
            "azure" | "azure-openai" => Ok(ProviderKind::AzureOpenAi),
            "gemini" | "google" => Ok(ProviderKind::Gemini),
            other => Err(LlmError::Config(format!(
                "LLM_PROVIDER `{other}` is not one of anthropic, openai, azure-openai, gemini"
            ))),
        }
    }
}

fn is_azure_endpoint(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host.ends_with(".openai.azure.com")
}

/// Builds the configured provider. `Ok(None)` when `LLM_PROVIDER` is unset or empty (the
/// investigator then uses its deterministic playbook).
pub fn provider_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
    settings: HttpSettings,
) -> Result<Option<HttpProvider>, LlmError> {
    let get = |k: &str| {
        lookup(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let Some(kind) = get("LLM_PROVIDER") else {
        return Ok(None);
    };
    let kind: ProviderKind = kind.parse()?;
    let model = get("LLM_MODEL").ok_or_else(|| {
        LlmError::Config(
            "LLM_MODEL is not set; set it to the model (or Azure deployment) name".into(),
        )
    })?;
    let key = get("LLM_API_KEY").map(ApiKey::new);
    let base = get("LLM_BASE_URL");
    let need_key = |key: Option<ApiKey>| {
        key.ok_or_else(|| {
            LlmError::Config(format!(
                "LLM_API_KEY is not set; the {} provider needs an API key",
                match kind {
                    ProviderKind::Anthropic => "anthropic",
                    ProviderKind::Gemini => "gemini",
                    _ => "azure-openai",
                }
            ))
        })
    };
    let azure = kind == ProviderKind::AzureOpenAi
        || (kind == ProviderKind::OpenAi && base.as_deref().is_some_and(is_azure_endpoint));
    let provider = match kind {
        ProviderKind::Anthropic => {
            let mut c = AnthropicConfig::new(model, need_key(key)?);
            if let Some(b) = base {
                c.base_url = b;
            }
            HttpProvider::anthropic(c, settings)
        }
        ProviderKind::Gemini => {
            let mut c = GeminiConfig::new(model, need_key(key)?);
            if let Some(b) = base {
                c.base_url = b;
            }
            HttpProvider::gemini(c, settings)
        }
        ProviderKind::OpenAi | ProviderKind::AzureOpenAi if azure => {
            let Some(b) = base else {
                return Err(LlmError::Config(
                    "LLM_BASE_URL is not set; Azure OpenAI needs the resource endpoint, e.g. https://NAME.openai.azure.com".into(),
                ));
            };
            let mut c = OpenAiConfig::new(model.clone(), Some(need_key(key)?));
            c.base_url = b;
            c.flavor = OpenAiFlavor::Azure {
                deployment: model,
                api_version: DEFAULT_AZURE_API_VERSION.to_string(),
            };
            HttpProvider::openai(c, settings)
        }
        ProviderKind::OpenAi | ProviderKind::AzureOpenAi => {
            let mut c = OpenAiConfig::new(model, key);
            if let Some(b) = base {
                c.base_url = b;
            }
            HttpProvider::openai(c, settings)
        }
    };
    Ok(Some(provider))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::LlmProvider;
    use std::collections::BTreeMap;

    fn build(pairs: &[(&str, &str)]) -> Result<Option<HttpProvider>, LlmError> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        provider_from_lookup(|k| m.get(k).cloned(), HttpSettings::default())
    }

    #[test]
    fn unset_provider_means_no_llm() {
        assert!(build(&[]).unwrap().is_none());
        assert!(build(&[("LLM_PROVIDER", " ")]).unwrap().is_none());
    }

    #[test]
    fn kinds_and_azure_detection() {
        let p = build(&[
            ("LLM_PROVIDER", "anthropic"),
            ("LLM_MODEL", "m"),
            ("LLM_API_KEY", "k"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((p.name(), p.model()), ("anthropic", "m"));
        let p = build(&[
            ("LLM_PROVIDER", "openai"),
            ("LLM_MODEL", "llama3"),
            ("LLM_BASE_URL", "http://127.0.0.1:11434/v1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(p.name(), "openai");
        let p = build(&[
            ("LLM_PROVIDER", "openai"),
            ("LLM_MODEL", "gpt4o-prod"),
            ("LLM_API_KEY", "k"),
            ("LLM_BASE_URL", "https://contoso.openai.azure.com/"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(p.name(), "azure-openai");
        let p = build(&[
            ("LLM_PROVIDER", "Gemini"),
            ("LLM_MODEL", "g"),
            ("LLM_API_KEY", "k"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(p.name(), "gemini");
    }

    #[test]
    fn missing_pieces_are_one_sentence_config_errors() {
        let e = build(&[("LLM_PROVIDER", "anthropic"), ("LLM_MODEL", "m")]).unwrap_err();
        assert!(e.to_string().contains("LLM_API_KEY is not set"), "{e}");
        let e = build(&[("LLM_PROVIDER", "anthropic")]).unwrap_err();
        assert!(e.to_string().contains("LLM_MODEL is not set"), "{e}");
        let e = build(&[("LLM_PROVIDER", "palm"), ("LLM_MODEL", "m")]).unwrap_err();
        assert!(e.to_string().contains("not one of"), "{e}");
        let e = build(&[
            ("LLM_PROVIDER", "azure-openai"),
            ("LLM_MODEL", "d"),
            ("LLM_API_KEY", "k"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("LLM_BASE_URL is not set"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let p = build(&[
            ("LLM_PROVIDER", "gemini"),
            ("LLM_MODEL", "g"),
            ("LLM_API_KEY", "sekrit-123"),
        ])
        .unwrap()
        .unwrap();
        assert!(!format!("{p:?}").contains("sekrit-123"));
        assert_eq!(
            format!("{:?}", ApiKey::new("sekrit-123")),
            "ApiKey(<redacted>)"
        );
        let c = AnthropicConfig::new("m", ApiKey::new("sekrit-123"));
        assert!(!format!("{c:?}").contains("sekrit-123"));
    }
}
