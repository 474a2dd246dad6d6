//! The JSON objects of the CLI contract (DESIGN §5), shared by every front end.

use exllm_core::{ChatResponse, Error, ErrorBody};
use serde_json::{Value, json};

/// The `exllm chat --json` object: `id`, `provider`, `model`, `content`, `tool_calls`,
/// `finish_reason`, `usage`, `cost`.
pub fn response_json(response: &ChatResponse) -> Value {
    let tool_calls: Vec<Value> = response
        .tool_calls()
        .into_iter()
        .map(|call| json!({"id": call.id, "name": call.name, "arguments": call.arguments}))
        .collect();
    let usage = &response.usage;
    json!({
        "id": response.id,
        "provider": response.provider,
        "model": response.model,
        "content": response.text(),
        "tool_calls": tool_calls,
        "finish_reason": response.finish_reason.map(|r| r.as_str()),
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "total_tokens": usage.total_tokens(),
        },
        "cost": response.cost,
    })
}

/// The error object: `{"error": {"kind", "message", "status", "provider", "retry_after_ms"}}`.
pub fn error_json(error: &Error) -> Value {
    json!({ "error": ErrorBody::from(error) })
}
