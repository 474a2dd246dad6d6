//! Context windows: counting a request's tokens and fitting a conversation into a model's window.
//!
//! A [`TokenCounter`] says how many tokens a message or request costs; [`EstimateCounter`] is the
//! provider-neutral estimate (about four characters per token) and exact counters for a
//! provider's encoding live in `exllm-infrastructure` (tiktoken for OpenAI models). [`fit`] turns
//! a conversation that outgrew the window into one that fits, by a [`ContextStrategy`], without
//! ever separating a tool call from its result or dropping the system prompt or the newest user
//! message. Everything here is pure: no IO, no tokenizer data.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::chat::{ChatRequest, ContentPart, Message, Role, ToolDefinition};
use crate::error::{Error, ErrorKind, Result};

/// Framing tokens every chat message costs besides its role and content: 3 in OpenAI's chat
/// format (the markers around role and content), per the OpenAI cookbook's "How to count
/// tokens with tiktoken"
/// (<https://github.com/openai/openai-cookbook/blob/main/examples/How_to_count_tokens_with_tiktoken.ipynb>).
pub const TOKENS_PER_MESSAGE: u64 = 3;

/// Tokens every request pays once because the reply is primed with
/// `<|start|>assistant<|message|>` (same cookbook).
pub const REPLY_PRIMING_TOKENS: u64 = 3;

/// About four characters per token: a deliberately generous average (English prose runs nearer
/// 4.5, code and JSON nearer 3). The same rate as the facade's pre-flight check.
pub const CHARS_PER_TOKEN: u64 = 4;

/// What a low-detail image costs on OpenAI models: a flat 85 tokens
/// (<https://platform.openai.com/docs/guides/images-vision#calculating-costs>).
pub const IMAGE_TOKENS_LOW_DETAIL: u64 = 85;

/// What an image of unknown size is counted at otherwise: a 1024×1024 image at high detail on
/// tile-priced OpenAI models (85 + 4 tiles × 170). The true cost depends on the image's size and
/// the model, which a counter cannot know without decoding the image.
pub const IMAGE_TOKENS_DEFAULT: u64 = 765;

/// Counts the tokens of messages and requests for one model's encoding.
///
/// Counts are additive: a list of messages costs the sum of its messages plus the reply priming
/// ([`count_messages`]), which is what [`fit`] relies on to drop messages without re-counting.
pub trait TokenCounter: Send + Sync + fmt::Debug {
    /// The tokens of one message as sent, its framing ([`TOKENS_PER_MESSAGE`] and the role)
    /// included.
    fn count_message(&self, message: &Message) -> u64;

    /// The tokens the tool definitions add to the prompt. The default is the estimate.
    fn count_tools(&self, tools: &[ToolDefinition]) -> u64 {
        EstimateCounter.count_tools(tools)
    }

    /// The prompt tokens of a whole request: its messages (see [`count_messages`]) and its
    /// tool definitions.
    fn count_request(&self, request: &ChatRequest) -> u64 {
        count_messages(self, &request.messages).saturating_add(self.count_tools(&request.tools))
    }

    /// Whether counts are exact for the model's encoding (true) or an estimate (false). Error
    /// messages say which, so that nobody mistakes an estimate for the provider's count.
    fn is_exact(&self) -> bool;
}

/// The tokens of messages sent as one prompt: each message's [`TokenCounter::count_message`]
/// plus [`REPLY_PRIMING_TOKENS`] once. This is the sum [`fit`] keeps under its budget.
pub fn count_messages<C: TokenCounter + ?Sized>(counter: &C, messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| counter.count_message(m))
        .fold(REPLY_PRIMING_TOKENS, u64::saturating_add)
}

/// The provider-neutral estimate: about [`CHARS_PER_TOKEN`] characters per token, plus the
/// chat framing. **An estimate**, labelled so ([`TokenCounter::is_exact`] is false); used for
/// every model whose encoding ExLLM does not ship.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EstimateCounter;

impl EstimateCounter {
    /// The estimated tokens of a text.
    pub fn count_text(text: &str) -> u64 {
        chars_to_tokens(text.chars().count())
    }

    /// The estimated tokens of the messages' content alone: their text at
    /// [`CHARS_PER_TOKEN`], without framing, images or tool definitions. A deliberate lower
    /// bound, for checks that must not refuse a request that would fit (the facade's
    /// pre-flight check, rate-limit reservations); [`TokenCounter::count_request`] is the
    /// full estimate.
    pub fn count_content(messages: &[Message]) -> u64 {
        chars_to_tokens(messages.iter().map(content_chars).sum())
    }
}

/// The characters of a message's content as the estimate counts them: text, refusals, tool
/// results, tool calls (name and JSON arguments) and reasoning. Reasoning counts although some
/// providers strip it from earlier turns: over-counting a little keeps a fitted conversation
/// inside the window.
fn content_chars(message: &Message) -> usize {
    message
        .content
        .iter()
        .map(|part| match part {
            ContentPart::Text { text } | ContentPart::Refusal { text } => text.chars().count(),
            ContentPart::ToolResult(result) => result.content.chars().count(),
            ContentPart::ToolCall(call) => {
                call.name.chars().count() + call.arguments.to_string().chars().count()
            }
            ContentPart::Reasoning(reasoning) => reasoning.text.chars().count(),
            ContentPart::Image { .. } => 0,
        })
        .sum()
}

impl TokenCounter for EstimateCounter {
    fn count_message(&self, message: &Message) -> u64 {
        let images = message
            .content
            .iter()
            .filter_map(|part| match part {
                ContentPart::Image { detail, .. } => Some(image_tokens(detail.as_deref())),
                _ => None,
            })
            .fold(0, u64::saturating_add);
        // The role is one token in every chat encoding ExLLM knows.
        (TOKENS_PER_MESSAGE + 1)
            .saturating_add(chars_to_tokens(content_chars(message)))
            .saturating_add(images)
    }

    fn count_tools(&self, tools: &[ToolDefinition]) -> u64 {
        if tools.is_empty() {
            return 0;
        }
        // Shaped like the cookbook's count for tools (a start per function, an end for the
        // block), with the schema's JSON text estimated like any other text.
        let per_tool: u64 = tools
            .iter()
            .map(|tool| {
                let chars = tool.name.chars().count()
                    + tool.description.as_deref().map_or(0, |d| d.chars().count())
                    + tool.parameters.to_string().chars().count();
                TOOL_START_TOKENS.saturating_add(chars_to_tokens(chars))
            })
            .fold(0, u64::saturating_add);
        per_tool.saturating_add(TOOLS_END_TOKENS)
    }

    fn is_exact(&self) -> bool {
        false
    }
}

/// Tokens the tool block starts each function with, and ends with once, on current OpenAI
/// models (the cookbook's `func_init` and `func_end` for gpt-4o).
pub const TOOL_START_TOKENS: u64 = 7;
/// See [`TOOL_START_TOKENS`].
pub const TOOLS_END_TOKENS: u64 = 12;

/// What an image is counted at: [`IMAGE_TOKENS_LOW_DETAIL`] for `detail: "low"`, else
/// [`IMAGE_TOKENS_DEFAULT`].
pub fn image_tokens(detail: Option<&str>) -> u64 {
    if detail.is_some_and(|d| d.eq_ignore_ascii_case("low")) {
        IMAGE_TOKENS_LOW_DETAIL
    } else {
        IMAGE_TOKENS_DEFAULT
    }
}

fn chars_to_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(CHARS_PER_TOKEN)
}

/// How to make a conversation fit a model's context window.
///
/// Read from configuration as `none`, `sliding_window` or `keep_system_and_newest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextStrategy {
    /// Send the conversation as it is; when it does not fit, fail with
    /// [`ErrorKind::ContextLengthExceeded`] before calling the provider.
    None,
    /// Drop the oldest turns until the conversation fits, so that what remains starts at a
    /// user message: whole exchanges go, never half of one.
    #[default]
    SlidingWindow,
    /// Keep every system message plus as many of the newest messages as fit, message by
    /// message (tool calls and their results still as one).
    KeepSystemAndNewest,
}

impl ContextStrategy {
    /// Every strategy, in documentation order.
    pub const ALL: [Self; 3] = [Self::None, Self::SlidingWindow, Self::KeepSystemAndNewest];

    /// The configuration name (`none`, `sliding_window`, `keep_system_and_newest`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SlidingWindow => "sliding_window",
            Self::KeepSystemAndNewest => "keep_system_and_newest",
        }
    }
}

impl fmt::Display for ContextStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContextStrategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim().replace('-', "_").to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|strategy| strategy.as_str() == wanted)
            .ok_or_else(|| {
                Error::validation(
                    "context_strategy",
                    format!(
                        "unknown context strategy {s:?}; known: none, sliding_window, keep_system_and_newest"
                    ),
                )
            })
    }
}

/// The prompt tokens a request may use: the context window less the output it may generate and
/// a safety reserve (for the estimate's error, or provider framing no counter knows). Zero when
/// the output and reserve alone fill the window.
pub fn budget(window: u64, max_output: u64, reserve: u64) -> u64 {
    window.saturating_sub(max_output).saturating_sub(reserve)
}

/// Fits `messages` into `budget` prompt tokens (as [`count_messages`] counts them, reply
/// priming included) by `strategy`.
///
/// A conversation that already fits comes back unchanged, whatever the strategy. Otherwise
/// [`ContextStrategy::None`] fails, and the dropping strategies remove messages with these
/// guarantees: the order is kept; every system message is kept; the newest user message is
/// kept, and so is the newest user message with content of its own (the question a tool loop
/// is answering); an assistant message with tool calls and the tool results after it are kept
/// or dropped together, so the kept history never starts with a tool result whose call is gone;
/// the result fits the budget. When even those must-keep messages do not fit, the error is
/// [`ErrorKind::ContextLengthExceeded`] with the counts in its message.
///
/// Tool definitions are not messages: subtract [`TokenCounter::count_tools`] from the budget
/// (or use [`fit_request`], which does).
pub fn fit(
    messages: &[Message],
    budget: u64,
    strategy: ContextStrategy,
    counter: &dyn TokenCounter,
) -> Result<Vec<Message>> {
    let costs: Vec<u64> = messages.iter().map(|m| counter.count_message(m)).collect();
    let total = costs
        .iter()
        .copied()
        .fold(REPLY_PRIMING_TOKENS, u64::saturating_add);
    if total <= budget {
        return Ok(messages.to_vec());
    }
    let how = if counter.is_exact() {
        "counted exactly"
    } else {
        "estimated"
    };
    let exceeded = |why: String| {
        Error::new(
            ErrorKind::ContextLengthExceeded,
            format!(
                "the conversation needs {total} prompt tokens ({how}), more than the budget of {budget} (the context window less the output and reserve){why}"
            ),
        )
        .with_field("messages")
    };
    let units = units(messages);
    let unit_costs: Vec<u64> = units
        .iter()
        .map(|unit| {
            unit.members
                .iter()
                .map(|&i| costs[i])
                .fold(0, u64::saturating_add)
        })
        .collect();
    let protected = protected_units(messages, &units);
    let must_keep = |u: usize| units[u].system || protected.contains(&u);
    let required = (0..units.len())
        .filter(|&u| must_keep(u))
        .map(|u| unit_costs[u])
        .fold(REPLY_PRIMING_TOKENS, u64::saturating_add);

    let keep: Vec<bool> = match strategy {
        ContextStrategy::None => {
            return Err(exceeded(
                "; the `none` context strategy drops nothing: choose `sliding_window` or `keep_system_and_newest`, or start a shorter conversation".to_owned(),
            ));
        }
        _ if required > budget => {
            return Err(exceeded(format!(
                ", and even the system messages and the newest user message (with the tool calls they answer) need {required}: shorten them, choose a model with a larger window or lower the output limit"
            )));
        }
        ContextStrategy::SlidingWindow => {
            // Drop oldest-first until it fits and the history begins at a user's own message
            // (a turn boundary), or at something that must stay.
            let mut keep = vec![true; units.len()];
            let mut used = total;
            for (u, unit) in units.iter().enumerate() {
                if unit.system {
                    continue;
                }
                if protected.contains(&u) || (used <= budget && unit.starts_with_question) {
                    break;
                }
                keep[u] = false;
                used = used.saturating_sub(unit_costs[u]);
            }
            // Still over: the overflow sits after the question (a long tool loop); drop those
            // units oldest-first too. `required <= budget` guarantees this ends fitting.
            for u in 0..units.len() {
                if used <= budget {
                    break;
                }
                if keep[u] && !must_keep(u) {
                    keep[u] = false;
                    used = used.saturating_sub(unit_costs[u]);
                }
            }
            keep
        }
        ContextStrategy::KeepSystemAndNewest => {
            // Add the newest units while they fit and stop at the first that does not, so the
            // kept history is the newest stretch rather than a patchwork.
            let mut keep: Vec<bool> = (0..units.len()).map(must_keep).collect();
            let mut used = required;
            for u in (0..units.len()).rev() {
                if keep[u] {
                    continue;
                }
                if used.saturating_add(unit_costs[u]) > budget {
                    break;
                }
                keep[u] = true;
                used += unit_costs[u];
            }
            // A tool result whose call is gone cannot open the kept history.
            for u in 0..units.len() {
                if !keep[u] || units[u].system {
                    continue;
                }
                if !units[u].orphan || protected.contains(&u) {
                    break;
                }
                keep[u] = false;
            }
            keep
        }
    };

    let mut kept_messages = vec![false; messages.len()];
    for (unit, kept) in units.iter().zip(&keep) {
        if *kept {
            for &i in &unit.members {
                kept_messages[i] = true;
            }
        }
    }
    Ok(messages
        .iter()
        .zip(kept_messages)
        .filter(|(_, kept)| *kept)
        .map(|(message, _)| message.clone())
        .collect())
}

/// Fits a request into a model's window: the budget is `window` less `max_output` and
/// `reserve` (see [`budget`]) and less the request's tool definitions, and the messages are
/// fitted by [`fit`]. Everything else in the request is kept.
pub fn fit_request(
    mut request: ChatRequest,
    window: u64,
    max_output: u64,
    reserve: u64,
    strategy: ContextStrategy,
    counter: &dyn TokenCounter,
) -> Result<ChatRequest> {
    let for_messages =
        budget(window, max_output, reserve).saturating_sub(counter.count_tools(&request.tools));
    request.messages = fit(&request.messages, for_messages, strategy, counter)?;
    Ok(request)
}

/// Messages that are kept or dropped together, in order of their first message.
#[derive(Debug)]
struct Unit {
    /// Indices into the messages, ascending.
    members: Vec<usize>,
    /// A system message (always kept).
    system: bool,
    /// Starts with a user message that is not (only) a tool result: a turn boundary.
    starts_with_question: bool,
    /// A tool result whose call is not right before it: it may be dropped but never open the
    /// kept history.
    orphan: bool,
}

/// Whether a message carries tool results: a `tool` message, or a user message holding
/// `tool_result` parts as Anthropic's format has them.
fn carries_tool_result(message: &Message) -> bool {
    message.role == Role::Tool
        || message
            .content
            .iter()
            .any(|p| matches!(p, ContentPart::ToolResult(_)))
}

/// Whether a user message says something of its own beyond tool results.
fn is_question(message: &Message) -> bool {
    message.role == Role::User
        && message
            .content
            .iter()
            .any(|p| !matches!(p, ContentPart::ToolResult(_)))
}

/// Whether `message` holds a result for one of the calls made in `unit`.
fn answers(message: &Message, unit: &Unit, messages: &[Message]) -> bool {
    message.content.iter().any(|part| match part {
        ContentPart::ToolResult(result) => unit
            .members
            .iter()
            .flat_map(|&i| messages[i].tool_calls())
            .any(|call| call.id == result.call_id),
        _ => false,
    })
}

/// Groups messages into units: each system message alone; an assistant message with tool
/// calls together with the tool-result messages after it that answer those calls (providers
/// require the results right after the call); every other message alone. A tool result that
/// answers no call just before it is an orphan unit of its own.
fn units(messages: &[Message]) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    // The newest unit a tool result may still join: the last non-system, non-orphan one.
    let mut open: Option<usize> = None;
    for (i, message) in messages.iter().enumerate() {
        let system = message.role == Role::System;
        if !system && carries_tool_result(message) {
            if let Some(u) = open
                && answers(message, &units[u], messages)
            {
                units[u].members.push(i);
                continue;
            }
            units.push(Unit {
                members: vec![i],
                system: false,
                starts_with_question: false,
                orphan: true,
            });
            continue;
        }
        if !system {
            open = Some(units.len());
        }
        units.push(Unit {
            members: vec![i],
            system,
            starts_with_question: is_question(message),
            orphan: false,
        });
    }
    units
}

/// The units that must survive any fitting: the one holding the newest user message and the
/// one holding the newest user message with content of its own; with no user message at all,
/// the one holding the newest message that is not an orphan tool result.
fn protected_units(messages: &[Message], units: &[Unit]) -> Vec<usize> {
    let unit_of = |index: usize| units.iter().position(|u| u.members.contains(&index));
    let newest_user = messages.iter().rposition(|m| m.role == Role::User);
    let newest_question = messages.iter().rposition(is_question);
    let mut protected: Vec<usize> = [newest_user, newest_question]
        .into_iter()
        .flatten()
        .filter_map(unit_of)
        .collect();
    if protected.is_empty()
        && let Some(newest) = messages
            .iter()
            .enumerate()
            .rev()
            .filter_map(|(i, m)| (m.role != Role::System).then_some(i))
            .filter_map(unit_of)
            .find(|&u| !units[u].orphan)
    {
        protected.push(newest);
    }
    protected.sort_unstable();
    protected.dedup();
    protected
}

#[cfg(test)]
mod tests {
    //! Unit tests of the counters and strategies, and property tests of `fit`'s guarantees over
    //! generated conversations.

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::chat::{ToolCall, ToolResult};

    /// One token per character plus one per message, so that expected counts are easy to read.
    #[derive(Debug)]
    struct CharCounter;

    impl TokenCounter for CharCounter {
        fn count_message(&self, message: &Message) -> u64 {
            1 + message
                .content
                .iter()
                .map(|p| match p {
                    ContentPart::Text { text } => text.len() as u64,
                    ContentPart::ToolResult(r) => r.content.len() as u64,
                    ContentPart::ToolCall(c) => c.name.len() as u64,
                    _ => 0,
                })
                .sum::<u64>()
        }
        fn is_exact(&self) -> bool {
            true
        }
    }

    fn call(id: &str) -> ContentPart {
        ContentPart::ToolCall(ToolCall::new(id, "lookup", json!({"q": id})))
    }

    fn calls(ids: &[&str]) -> Message {
        Message::new(Role::Assistant, ids.iter().map(|id| call(id)).collect())
    }

    fn texts(messages: &[Message]) -> Vec<String> {
        messages
            .iter()
            .map(|m| match m.content.first() {
                Some(ContentPart::ToolResult(r)) => format!("result:{}", r.call_id),
                Some(ContentPart::ToolCall(c)) => format!("call:{}", c.id),
                _ => m.text(),
            })
            .collect()
    }

    #[test]
    fn the_estimate_is_labelled_and_counts_framing_text_images_and_tools() {
        assert!(!EstimateCounter.is_exact());
        // 4 framing tokens (3 + the role) and ceil(11 / 4) = 3 for "hello world".
        assert_eq!(
            EstimateCounter.count_message(&Message::user("hello world")),
            7
        );
        let request = ChatRequest::new("m").system("be brief").user("hello world");
        assert_eq!(
            EstimateCounter.count_request(&request),
            (4 + 2) + 7 + REPLY_PRIMING_TOKENS
        );
        let look = Message::user("").with_part(ContentPart::image_url("https://x/a.png"));
        assert_eq!(
            EstimateCounter.count_message(&look),
            4 + IMAGE_TOKENS_DEFAULT
        );
        let low = Message::user("").with_part(ContentPart::Image {
            source: crate::chat::ImageSource::Url { url: "u".into() },
            detail: Some("low".into()),
        });
        assert_eq!(
            EstimateCounter.count_message(&low),
            4 + IMAGE_TOKENS_LOW_DETAIL
        );
        // Base64 image data is not text: it never counts by its length.
        let inline = Message::user("")
            .with_part(ContentPart::image_base64("image/png", "A".repeat(100_000)));
        assert_eq!(
            EstimateCounter.count_message(&inline),
            4 + IMAGE_TOKENS_DEFAULT
        );

        let tool = ToolDefinition::new("get", "gets", json!({"type": "object"}));
        let with_tool = request.clone().tool(tool);
        // "get" + "gets" + {"type":"object"} = 24 characters = 6 tokens, plus start and end.
        assert_eq!(
            EstimateCounter.count_request(&with_tool) - EstimateCounter.count_request(&request),
            TOOL_START_TOKENS + 6 + TOOLS_END_TOKENS
        );
        // The facade's lower-bound helper is the same estimate without framing and tools.
        assert_eq!(
            crate::facade::estimate_prompt_tokens(&with_tool),
            EstimateCounter::count_content(&with_tool.messages)
        );
        // "be brief" and "hello world": 19 characters, 5 tokens.
        assert_eq!(EstimateCounter::count_content(&with_tool.messages), 5);
    }

    #[test]
    fn budget_is_window_less_output_and_reserve_never_below_zero() {
        assert_eq!(budget(128_000, 4_096, 1_000), 122_904);
        assert_eq!(budget(1_000, 4_096, 0), 0);
        assert_eq!(budget(1_000, 0, 2_000), 0);
    }

    #[test]
    fn strategies_read_from_config_names() {
        for strategy in ContextStrategy::ALL {
            let json = serde_json::to_string(&strategy).unwrap();
            assert_eq!(json, format!("\"{}\"", strategy.as_str()));
            assert_eq!(
                serde_json::from_str::<ContextStrategy>(&json).unwrap(),
                strategy
            );
            assert_eq!(
                strategy.as_str().parse::<ContextStrategy>().unwrap(),
                strategy
            );
        }
        assert_eq!(
            "keep-system-and-newest".parse::<ContextStrategy>().unwrap(),
            ContextStrategy::KeepSystemAndNewest
        );
        let err = "newest".parse::<ContextStrategy>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(err.message().contains("sliding_window"), "{err}");
        assert!(serde_json::from_str::<ContextStrategy>("\"newest\"").is_err());
    }

    fn chat() -> Vec<Message> {
        vec![
            Message::system("sys"),   // 4
            Message::user("u1"),      // 3
            Message::assistant("a1"), // 3
            Message::user("u2"),      // 3
            Message::assistant("a2"), // 3
            Message::user("u3"),      // 3
        ]
    }

    #[test]
    fn a_conversation_that_fits_comes_back_unchanged() {
        let total = count_messages(&CharCounter, &chat());
        assert_eq!(total, 19 + REPLY_PRIMING_TOKENS);
        for strategy in ContextStrategy::ALL {
            assert_eq!(fit(&chat(), total, strategy, &CharCounter).unwrap(), chat());
        }
    }

    #[test]
    fn none_fails_before_the_call_with_the_counts() {
        let err = fit(&chat(), 10, ContextStrategy::None, &CharCounter).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded);
        assert_eq!(err.field(), Some("messages"));
        assert!(err.message().contains("22 prompt tokens"), "{err}");
        assert!(err.message().contains("budget of 10"), "{err}");
        assert!(err.message().contains("counted exactly"), "{err}");
        let err = fit(&chat(), 10, ContextStrategy::None, &EstimateCounter).unwrap_err();
        assert!(err.message().contains("estimated"), "{err}");
    }

    #[test]
    fn sliding_window_drops_whole_turns_oldest_first() {
        // 22 tokens; a budget of 19 would allow dropping just u1, but a1 would then open the
        // history: the whole first turn goes.
        let kept = fit(&chat(), 19, ContextStrategy::SlidingWindow, &CharCounter).unwrap();
        assert_eq!(texts(&kept), ["sys", "u2", "a2", "u3"]);
        let kept = fit(&chat(), 10, ContextStrategy::SlidingWindow, &CharCounter).unwrap();
        assert_eq!(texts(&kept), ["sys", "u3"]);
    }

    #[test]
    fn keep_system_and_newest_keeps_the_newest_messages_that_fit() {
        let kept = fit(
            &chat(),
            19,
            ContextStrategy::KeepSystemAndNewest,
            &CharCounter,
        )
        .unwrap();
        assert_eq!(texts(&kept), ["sys", "a1", "u2", "a2", "u3"]);
        let kept = fit(
            &chat(),
            13,
            ContextStrategy::KeepSystemAndNewest,
            &CharCounter,
        )
        .unwrap();
        assert_eq!(texts(&kept), ["sys", "a2", "u3"]);
    }

    #[test]
    fn a_system_prompt_and_question_that_cannot_fit_fail_with_the_counts() {
        for strategy in [
            ContextStrategy::SlidingWindow,
            ContextStrategy::KeepSystemAndNewest,
        ] {
            let err = fit(&chat(), 9, strategy, &CharCounter).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded);
            assert!(err.message().contains("need 10"), "{err}");
            assert!(err.message().contains("budget of 9"), "{err}");
        }
    }

    #[test]
    fn tool_calls_and_their_results_stay_together() {
        let messages = vec![
            Message::user("q1"),
            calls(&["c1", "c2"]),
            Message::tool_result("c1", "r1"),
            Message::tool_result("c2", "r2"),
            Message::assistant("a1"),
            Message::user("q2"),
        ];
        // q2 (3) + priming (3) + a1 (3) fits a budget of 9; the call group (13 + 3 + 3) does
        // not, and it is never split.
        let kept = fit(
            &messages,
            9,
            ContextStrategy::KeepSystemAndNewest,
            &CharCounter,
        )
        .unwrap();
        assert_eq!(texts(&kept), ["a1", "q2"]);
        let kept = fit(
            &messages,
            28,
            ContextStrategy::KeepSystemAndNewest,
            &CharCounter,
        )
        .unwrap();
        assert_eq!(
            texts(&kept),
            ["call:c1", "result:c1", "result:c2", "a1", "q2"]
        );
        let kept = fit(&messages, 28, ContextStrategy::SlidingWindow, &CharCounter).unwrap();
        assert_eq!(texts(&kept), ["q2"]);
    }

    #[test]
    fn a_tool_loop_keeps_its_question_and_its_newest_result() {
        // Anthropic's shape: tool results ride in user messages.
        let result = |id: &str| {
            Message::new(
                Role::User,
                vec![ContentPart::ToolResult(ToolResult {
                    call_id: id.into(),
                    name: None,
                    content: "r".into(),
                    is_error: false,
                })],
            )
        };
        let messages = vec![
            Message::system("s"),
            Message::user("q"),
            calls(&["c1"]),
            result("c1"),
            calls(&["c2"]),
            result("c2"),
            calls(&["c3"]),
            result("c3"),
        ];
        for strategy in [
            ContextStrategy::SlidingWindow,
            ContextStrategy::KeepSystemAndNewest,
        ] {
            // s 2, q 2, each call group 7 + 2, priming 3: 16 keeps s, q and the newest group.
            let kept = fit(&messages, 16, strategy, &CharCounter).unwrap();
            assert_eq!(
                texts(&kept),
                ["s", "q", "call:c3", "result:c3"],
                "{strategy}"
            );
        }
    }

    #[test]
    fn an_orphan_tool_result_never_opens_the_kept_history() {
        let messages = vec![
            Message::tool_result("gone", "old result"),
            Message::assistant("a0"),
            Message::user("q"),
        ];
        // orphan 11, a0 3, q 2, priming 3: a budget of 17 could keep the orphan and q.
        let kept = fit(
            &messages,
            17,
            ContextStrategy::KeepSystemAndNewest,
            &CharCounter,
        )
        .unwrap();
        assert_eq!(texts(&kept), ["a0", "q"]);
        let messages = vec![
            Message::user("q0"),
            Message::tool_result("gone", "r"),
            Message::user("q"),
        ];
        // q0 3, orphan 2, q 2, priming 3: 7 keeps the orphan and q by count, but not by rule.
        let kept = fit(
            &messages,
            7,
            ContextStrategy::KeepSystemAndNewest,
            &CharCounter,
        )
        .unwrap();
        assert_eq!(texts(&kept), ["q"]);
        let kept = fit(&messages, 7, ContextStrategy::SlidingWindow, &CharCounter).unwrap();
        assert_eq!(texts(&kept), ["q"]);
    }

    #[test]
    fn without_a_user_message_the_newest_message_that_is_no_orphan_stays() {
        let messages = vec![Message::assistant("a0"), Message::tool_result("orphan", "")];
        for strategy in [
            ContextStrategy::SlidingWindow,
            ContextStrategy::KeepSystemAndNewest,
        ] {
            let kept = fit(&messages, 6, strategy, &CharCounter).unwrap();
            assert_eq!(texts(&kept), ["a0"], "{strategy}");
        }
    }

    #[test]
    fn fit_request_leaves_room_for_output_reserve_and_tools() {
        let request = ChatRequest::new("m")
            .messages(chat())
            .tool(ToolDefinition::new("t", "", json!({})))
            .max_tokens(100);
        let tools = CharCounter.count_tools(&request.tools);
        let fitted = fit_request(
            request.clone(),
            100 + 5 + tools + 10,
            100,
            5,
            ContextStrategy::SlidingWindow,
            &CharCounter,
        )
        .unwrap();
        assert_eq!(texts(&fitted.messages), ["sys", "u3"]);
        assert_eq!(fitted.tools, request.tools);
        assert_eq!(fitted.max_tokens, Some(100));
    }

    // ---- property tests --------------------------------------------------------------------

    /// A piece of a generated conversation.
    #[derive(Debug, Clone)]
    enum Piece {
        System(usize),
        User(usize),
        Assistant(usize),
        /// An assistant message with this many calls, answered by `tool` messages (false) or
        /// by one user message of tool results (true, Anthropic's shape), each result this long.
        Calls(usize, bool, usize),
        /// A tool result whose call is not in the conversation.
        Orphan(usize),
    }

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            1 => (0usize..30).prop_map(Piece::System),
            4 => (0usize..60).prop_map(Piece::User),
            3 => (0usize..60).prop_map(Piece::Assistant),
            2 => (1usize..4, any::<bool>(), 0usize..40).prop_map(|(n, a, l)| Piece::Calls(n, a, l)),
            1 => (0usize..20).prop_map(Piece::Orphan),
        ]
    }

    /// Builds messages whose texts are unique, so that a subsequence check is exact.
    fn build(pieces: &[Piece]) -> Vec<Message> {
        let mut out = Vec::new();
        let filler = |n: usize, len: usize| format!("#{n}:{}", "x".repeat(len));
        for (n, piece) in pieces.iter().enumerate() {
            match *piece {
                Piece::System(len) => out.push(Message::system(filler(n, len))),
                Piece::User(len) => out.push(Message::user(filler(n, len))),
                Piece::Assistant(len) => out.push(Message::assistant(filler(n, len))),
                Piece::Calls(count, anthropic, len) => {
                    let ids: Vec<String> = (0..count).map(|k| format!("call-{n}-{k}")).collect();
                    out.push(Message::new(
                        Role::Assistant,
                        ids.iter()
                            .map(|id| ContentPart::ToolCall(ToolCall::new(id, "f", json!({}))))
                            .collect(),
                    ));
                    let results = ids.iter().map(|id| {
                        ContentPart::ToolResult(ToolResult {
                            call_id: id.clone(),
                            name: None,
                            content: filler(n, len),
                            is_error: false,
                        })
                    });
                    if anthropic {
                        out.push(Message::new(Role::User, results.collect()));
                    } else {
                        out.extend(results.map(|r| Message::new(Role::Tool, vec![r])));
                    }
                }
                Piece::Orphan(len) => {
                    out.push(Message::tool_result(format!("orphan-{n}"), filler(n, len)));
                }
            }
        }
        out
    }

    fn call_ids(message: &Message) -> Vec<&str> {
        message.tool_calls().map(|c| c.id.as_str()).collect()
    }

    fn result_ids(message: &Message) -> Vec<&str> {
        message
            .content
            .iter()
            .filter_map(|p| match p {
                ContentPart::ToolResult(r) => Some(r.call_id.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The input indices of `kept`, checking that it is an in-order subsequence of `input`.
    fn positions(input: &[Message], kept: &[Message]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut from = 0;
        for message in kept {
            let at = input[from..]
                .iter()
                .position(|m| m == message)
                .map(|p| p + from);
            let at = at.expect("kept messages are an in-order subsequence of the input");
            out.push(at);
            from = at + 1;
        }
        out
    }

    /// What must survive, computed independently of `fit`'s units: system messages, the
    /// newest user message and the newest user message with content of its own, closed over
    /// tool calls and the results answering them (by call id).
    fn must_keep(input: &[Message]) -> Vec<usize> {
        let mut keep: Vec<usize> = (0..input.len())
            .filter(|&i| input[i].role == Role::System)
            .collect();
        keep.extend(input.iter().rposition(|m| m.role == Role::User));
        keep.extend(input.iter().rposition(|m| {
            m.role == Role::User
                && m.content
                    .iter()
                    .any(|p| !matches!(p, ContentPart::ToolResult(_)))
        }));
        let called: Vec<&str> = input.iter().flat_map(call_ids).collect();
        let orphan = |m: &Message| {
            carries_tool_result(m) && result_ids(m).iter().all(|id| !called.contains(id))
        };
        if !input.iter().any(|m| m.role == Role::User)
            && let Some(last) = input
                .iter()
                .rposition(|m| m.role != Role::System && !orphan(m))
        {
            keep.push(last);
        }
        loop {
            let before = keep.len();
            for i in keep.clone() {
                let ids: Vec<&str> = call_ids(&input[i])
                    .into_iter()
                    .chain(result_ids(&input[i]))
                    .collect();
                for (j, m) in input.iter().enumerate() {
                    if !keep.contains(&j)
                        && (call_ids(m).iter().any(|id| ids.contains(id))
                            || result_ids(m).iter().any(|id| ids.contains(id)))
                    {
                        keep.push(j);
                    }
                }
            }
            if keep.len() == before {
                break;
            }
        }
        keep.sort_unstable();
        keep.dedup();
        keep
    }

    fn conversation() -> impl Strategy<Value = Vec<Message>> {
        prop::collection::vec(piece(), 0..24).prop_map(|pieces| build(&pieces))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn fitting_keeps_every_promise(
            input in conversation(),
            fraction in 0u64..=110,
            exact in any::<bool>(),
        ) {
            let counter: &dyn TokenCounter = if exact { &CharCounter } else { &EstimateCounter };
            let total = count_messages(counter, &input);
            let budget = total * fraction / 100;
            let required: Vec<Message> =
                must_keep(&input).into_iter().map(|i| input[i].clone()).collect();
            let required_tokens = count_messages(counter, &required);

            for strategy in ContextStrategy::ALL {
                let result = fit(&input, budget, strategy, counter);
                if total <= budget {
                    prop_assert_eq!(result.as_ref().ok(), Some(&input), "{}", strategy);
                    continue;
                }
                let kept = match result {
                    Err(err) => {
                        prop_assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded);
                        prop_assert!(err.message().contains(&total.to_string()), "{}", err);
                        prop_assert!(err.message().contains(&budget.to_string()), "{}", err);
                        prop_assert!(
                            strategy == ContextStrategy::None || required_tokens > budget,
                            "{strategy}: failed although the must-keep messages ({required_tokens}) fit {budget}"
                        );
                        continue;
                    }
                    Ok(kept) => kept,
                };
                prop_assert_ne!(strategy, ContextStrategy::None);
                let at = positions(&input, &kept);
                // It fits.
                prop_assert!(count_messages(counter, &kept) <= budget);
                // System messages, the newest user message and its question, and the tool
                // groups they belong to are all kept.
                for i in must_keep(&input) {
                    prop_assert!(at.contains(&i), "{strategy}: dropped must-keep message {i}");
                }
                // Calls and results stay together.
                for (k, &i) in at.iter().enumerate() {
                    for id in call_ids(&input[i]).into_iter().chain(result_ids(&input[i])) {
                        for (j, other) in input.iter().enumerate() {
                            let pair = call_ids(other).contains(&id) || result_ids(other).contains(&id);
                            prop_assert!(
                                !pair || at.contains(&j),
                                "{strategy}: kept message {i} (#{k}) but not its tool partner {j}"
                            );
                        }
                    }
                }
                // The kept history does not open with a tool result.
                if let Some(first) = kept.iter().find(|m| m.role != Role::System) {
                    prop_assert!(
                        first.role != Role::Tool && result_ids(first).is_empty(),
                        "{strategy}: kept history opens with a tool result"
                    );
                }
                // The sliding window cuts at turns: what remains opens with a user message.
                if strategy == ContextStrategy::SlidingWindow
                    && let Some(first) = kept.iter().find(|m| m.role != Role::System)
                {
                    let protected_first = must_keep(&input)
                        .into_iter()
                        .find(|&i| input[i].role != Role::System)
                        .map(|i| &input[i]);
                    prop_assert!(
                        first.role == Role::User || Some(first) == protected_first,
                        "sliding window kept history opens mid-turn"
                    );
                }
            }
        }
    }
}
