//! Typed structured output: ask for JSON matching a Rust type's schema, validate the answer,
//! and ask once more with the validation error when it does not fit.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::chat::{ChatRequest, ChatResponse, Message, ResponseFormat};
use crate::error::{Error, ErrorKind, Result};
use crate::facade::{CallOptions, ChatInput, ExLLM};

/// A typed answer and the response that carried it.
#[derive(Debug, Clone)]
pub struct Structured<T> {
    /// The answer, deserialized.
    pub value: T,
    /// The response whose text held it (usage and cost summed over both attempts when a retry
    /// was needed).
    pub response: ChatResponse,
    /// How many calls it took (1 or 2).
    pub attempts: u32,
}

impl ExLLM {
    /// Asks for an answer of type `T`: the request carries `T`'s JSON schema as its response
    /// format (each provider maps it: OpenAI `json_schema`, Gemini `responseJsonSchema`, Anthropic
    /// a forced tool, Ollama `format`); the answer is validated against the schema and
    /// deserialized. When it does not fit, the model is asked once more with the validation
    /// error; a second misfit is a [`ErrorKind::Decode`] error keeping the answer as raw body.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use exllm_core::*;
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct City { name: String, population: u64 }
    /// # #[derive(Debug)] struct Fixed;
    /// # #[async_trait::async_trait]
    /// # impl ChatProvider for Fixed {
    /// #     fn name(&self) -> &str { "fixed" }
    /// #     async fn chat(&self, r: ChatRequest) -> Result<ChatResponse> {
    /// #         let mut resp = ChatResponse::new("fixed", r.model.clone());
    /// #         resp.content.push(ContentPart::text(r#"{"name":"Edinburgh","population":506520}"#));
    /// #         Ok(resp)
    /// #     }
    /// #     async fn stream(&self, _r: ChatRequest) -> Result<ChatStream> { unreachable!() }
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let exllm = ExLLM::builder().provider(Arc::new(Fixed)).build();
    /// let city = exllm.chat_structured::<City>("fixed/any", "Largest city in Scotland?").await?;
    /// assert_eq!(city.value.name, "Edinburgh");
    /// # Ok::<(), Error>(()) }).unwrap();
    /// ```
    pub async fn chat_structured<T: DeserializeOwned + JsonSchema>(
        &self,
        address: &str,
        input: impl Into<ChatInput>,
    ) -> Result<Structured<T>> {
        self.chat_structured_with(address, input, &CallOptions::default())
            .await
    }

    /// [`ExLLM::chat_structured`] with per-call options.
    pub async fn chat_structured_with<T: DeserializeOwned + JsonSchema>(
        &self,
        address: &str,
        input: impl Into<ChatInput>,
        options: &CallOptions,
    ) -> Result<Structured<T>> {
        let schema = schemars::schema_for!(T).to_value();
        let validator = jsonschema::validator_for(&schema).map_err(|e| {
            Error::validation(
                "response_format",
                format!("the type's JSON schema is invalid: {e}"),
            )
        })?;
        let mut request = match input.into() {
            ChatInput::Request(request) => request,
            ChatInput::Text(text) => ChatRequest::default().user(text),
            ChatInput::Messages(messages) => ChatRequest::default().messages(messages),
        };
        request.response_format = Some(ResponseFormat::JsonSchema {
            name: schema_name::<T>(),
            schema,
            // Strict mode needs every property required and no extra keys, which a Rust type's
            // schema (optional fields, maps) does not always state; validation here is strict.
            strict: false,
        });

        let first = self.chat_with(address, request.clone(), options).await?;
        let problem = match parse::<T>(&validator, &first.text()) {
            Ok(value) => {
                return Ok(Structured {
                    value,
                    response: first,
                    attempts: 1,
                });
            }
            Err(problem) => problem,
        };

        request.messages.push(first.to_message());
        request.messages.push(Message::user(format!(
            "Your reply does not match the required JSON schema: {problem}. \
             Reply again with only a JSON value that matches the schema."
        )));
        let mut second = self.chat_with(address, request, options).await?;
        match parse::<T>(&validator, &second.text()) {
            Ok(value) => {
                second.usage.add(&first.usage);
                if let (Some(total), Some(earlier)) = (second.cost.as_mut(), first.cost.as_ref()) {
                    total.add(earlier);
                }
                Ok(Structured {
                    value,
                    response: second,
                    attempts: 2,
                })
            }
            Err(problem) => Err(Error::new(
                ErrorKind::Decode,
                format!("the model's answer does not match the schema after a retry: {problem}"),
            )
            .with_provider(second.provider.clone())
            .with_raw_body(truncate(&second.text(), 4096))),
        }
    }
}

fn schema_name<T: JsonSchema>() -> String {
    // Providers accept `^[a-zA-Z0-9_-]{1,64}$` for schema and tool names.
    let name: String = T::schema_name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "answer".to_owned()
    } else {
        name
    }
}

/// Parses the answer: the JSON itself, or the JSON inside a Markdown code fence (some models add
/// one even when asked for JSON), validated, then deserialized.
fn parse<T: DeserializeOwned>(
    validator: &jsonschema::Validator,
    text: &str,
) -> std::result::Result<T, String> {
    let json = strip_fence(text.trim());
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("the reply is not JSON ({e})"))?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    serde_json::from_value(value).map_err(|e| format!("the JSON does not fit the type ({e})"))
}

fn strip_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let rest = rest.split_once('\n').map_or("", |(_, body)| body);
    rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
