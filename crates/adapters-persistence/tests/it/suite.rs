//! The one suite every backend passes: conversations and the ledger through the core ports.

use exllm_adapters_persistence::{NO_CALLER, Stores};
use exllm_core::{
    ContentPart, Conversation, ConversationFilter, Cost, Decimal, ErrorKind, GroupBy, Message,
    Outcome, Reasoning, Role, ToolCall, ToolResult, Usage, UsageQuery, UsageRecord, UsageTotal,
};
use serde_json::json;

/// Everything, on a fresh, empty store.
pub async fn run(stores: Stores) {
    create_and_get(&stores).await;
    tool_turns_round_trip(&stores).await;
    sums_are_exact(&stores).await;
    unknown_ids(&stores).await;
    delete_removes_messages(&stores).await;
    // Listing last: it counts every conversation the store holds.
    list_filters_and_pages(&stores).await;
    ledger(&stores).await;
}

pub fn dec(text: &str) -> Decimal {
    text.parse().expect("a decimal")
}

/// A cost whose parts are all distinct, so a swapped column would show.
pub fn cost(total: &str) -> Cost {
    Cost {
        total_usd: dec(total),
        input_usd: dec("0.000001"),
        cached_input_usd: dec("0.000002"),
        cache_write_usd: dec("0.000003"),
        output_usd: dec("0.000004"),
        reasoning_usd: dec("0.000005"),
    }
}

/// Usage with every kind of token counted.
pub fn usage(n: u64) -> Usage {
    Usage {
        input_tokens: 10 * n,
        output_tokens: 20 * n,
        cached_input_tokens: 3 * n,
        cache_write_tokens: 2 * n,
        reasoning_tokens: 5 * n,
    }
}

/// One whole tool turn tagged `tag`: the user asks, the assistant thinks and calls a tool, the
/// tool answers, the assistant replies.
pub fn tool_turn(tag: &str) -> Vec<Message> {
    vec![
        Message::user(format!("question {tag}"))
            .with_part(ContentPart::image_base64("image/png", "iVBORw0KGgo=")),
        Message::new(
            Role::Assistant,
            vec![
                ContentPart::Reasoning(Reasoning {
                    text: format!("thinking about {tag}"),
                    signature: Some("sig==".into()),
                    redacted: None,
                }),
                ContentPart::ToolCall(ToolCall {
                    id: format!("call_{tag}"),
                    name: "lookup".into(),
                    arguments: json!({"tag": tag, "nested": {"n": 1.5, "list": [1, null, "ü"]}}),
                    signature: Some("gemini-sig".into()),
                }),
            ],
        ),
        Message::new(
            Role::Tool,
            vec![ContentPart::ToolResult(ToolResult {
                call_id: format!("call_{tag}"),
                name: Some("lookup".into()),
                // A real NUL character: JSON escapes it, and every backend must keep it.
                content: format!("{{\"answer\": \"{tag}\"}} a\u{0}b"),
                is_error: tag.ends_with('7'),
            })],
        ),
        Message::assistant(format!("answer {tag}")),
    ]
}

/// The tag of a turn's first message, checking the turn is whole and consistent.
pub fn turn_tag(turn: &[Message]) -> String {
    assert_eq!(turn.len(), 4, "a turn has four messages: {turn:?}");
    let tag = turn[0]
        .text()
        .strip_prefix("question ")
        .unwrap_or_else(|| panic!("not a turn's first message: {:?}", turn[0]))
        .to_owned();
    assert_eq!(turn, tool_turn(&tag).as_slice(), "turn {tag} is not whole");
    tag
}

async fn create_and_get(stores: &Stores) {
    let mut conversation = Conversation::new("", "openai", "gpt-4o");
    conversation.messages.push(Message::system("be brief"));
    conversation.metadata.insert("title".into(), json!("Trip"));
    conversation
        .metadata
        .insert("tags".into(), json!(["a", {"b": 2}]));
    let id = stores
        .conversations
        .create(conversation.clone())
        .await
        .unwrap();
    assert!(id.starts_with("conv_"), "{id}");
    let got = stores.conversations.get(&id).await.unwrap().unwrap();
    assert_eq!(got.id, id);
    assert_eq!(got.provider, "openai");
    assert_eq!(got.model, "gpt-4o");
    assert_eq!(got.messages, conversation.messages);
    assert_eq!(got.metadata, conversation.metadata);
    assert_eq!(got.usage, Usage::default());
    assert_eq!(got.cost, None);
    assert!(got.created_at_ms > 0);
    assert_eq!(got.created_at_ms, got.updated_at_ms);

    // Ids are fresh; a chosen id is kept, and taken only once.
    let other = stores
        .conversations
        .create(Conversation::new("", "openai", "gpt-4o"))
        .await
        .unwrap();
    assert_ne!(other, id);
    let chosen = stores
        .conversations
        .create(Conversation::new("my-chat", "mock", "echo"))
        .await
        .unwrap();
    assert_eq!(chosen, "my-chat");
    let err = stores
        .conversations
        .create(Conversation::new("my-chat", "mock", "echo"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation, "{err}");
    assert!(err.to_string().contains("my-chat"), "{err}");
}

async fn tool_turns_round_trip(stores: &Stores) {
    let id = stores
        .conversations
        .create(Conversation::new("", "anthropic", "claude"))
        .await
        .unwrap();
    let first = stores
        .conversations
        .append(&id, tool_turn("t1"), usage(1), Some(cost("0.25")))
        .await
        .unwrap();
    assert_eq!(first.messages, tool_turn("t1"));
    let second = stores
        .conversations
        .append(&id, tool_turn("t7"), usage(2), Some(cost("0.5")))
        .await
        .unwrap();
    let mut expected = tool_turn("t1");
    expected.extend(tool_turn("t7"));
    assert_eq!(second.messages, expected);
    assert!(second.updated_at_ms >= second.created_at_ms);
    let got = stores.conversations.get(&id).await.unwrap().unwrap();
    assert_eq!(got, second, "what append returned is what get reads");
    assert_eq!(got.usage, usage(3));
    let total = got.cost.unwrap();
    assert_eq!(total.total_usd, dec("0.75"));
    assert_eq!(total.reasoning_usd, dec("0.00001"));
    let tags: Vec<String> = got.messages.chunks(4).map(turn_tag).collect();
    assert_eq!(tags, ["t1", "t7"]);
}

async fn sums_are_exact(stores: &Stores) {
    let id = stores
        .conversations
        .create(Conversation::new("", "groq", "llama"))
        .await
        .unwrap();
    // Unpriced calls leave the cost unknown…
    let unpriced = stores
        .conversations
        .append(&id, vec![Message::user("a")], Usage::new(1, 1), None)
        .await
        .unwrap();
    assert_eq!(unpriced.cost, None);
    // …and ten tenths of a cent sum to exactly one cent, where f64 would not.
    for _ in 0..10 {
        stores
            .conversations
            .append(&id, vec![], Usage::new(1, 2), Some(cost("0.001")))
            .await
            .unwrap();
    }
    let big = Cost {
        total_usd: dec("12345678901234.000000000001"),
        ..Cost::default()
    };
    let got = stores
        .conversations
        .append(&id, vec![], Usage::default(), Some(big))
        .await
        .unwrap();
    let total = got.cost.unwrap();
    assert_eq!(total.total_usd, dec("12345678901234.010000000001"));
    assert_eq!(total.input_usd, dec("0.00001"));
    assert_eq!(got.usage, Usage::new(11, 21));
    let reread = stores.conversations.get(&id).await.unwrap().unwrap();
    assert_eq!(reread.cost, got.cost);
    assert_eq!(reread.messages, vec![Message::user("a")]);
}

async fn unknown_ids(stores: &Stores) {
    assert_eq!(stores.conversations.get("conv_nope").await.unwrap(), None);
    let err = stores
        .conversations
        .append("conv_nope", tool_turn("x"), Usage::new(1, 1), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("conv_nope"), "{err}");
    assert!(!stores.conversations.delete("conv_nope").await.unwrap());
}

async fn delete_removes_messages(stores: &Stores) {
    let id = stores
        .conversations
        .create(Conversation::new("deleted-one", "mock", "echo"))
        .await
        .unwrap();
    stores
        .conversations
        .append(&id, tool_turn("d"), usage(1), Some(cost("1")))
        .await
        .unwrap();
    assert!(stores.conversations.delete(&id).await.unwrap());
    assert_eq!(stores.conversations.get(&id).await.unwrap(), None);
    assert!(!stores.conversations.delete(&id).await.unwrap());
    // The id is free again, and the new conversation starts with no messages of the old one.
    stores
        .conversations
        .create(Conversation::new("deleted-one", "mock", "echo"))
        .await
        .unwrap();
    let fresh = stores.conversations.get(&id).await.unwrap().unwrap();
    assert!(fresh.messages.is_empty(), "{:?}", fresh.messages);
    let appended = stores
        .conversations
        .append(&id, vec![Message::user("again")], Usage::default(), None)
        .await
        .unwrap();
    assert_eq!(appended.messages, vec![Message::user("again")]);
    assert_eq!(appended.cost, None);
    assert!(stores.conversations.delete(&id).await.unwrap());
}

async fn list_filters_and_pages(stores: &Stores) {
    let before = stores
        .conversations
        .list(&ConversationFilter::all())
        .await
        .unwrap();
    let mut created = Vec::new();
    for (provider, model) in [
        ("p1", "m1"),
        ("p1", "m2"),
        ("p2", "m1"),
        ("p1", "m1"),
        ("p2", "m2"),
    ] {
        let id = stores
            .conversations
            .create(Conversation::new("", provider, model))
            .await
            .unwrap();
        stores
            .conversations
            .append(&id, vec![Message::user(provider)], Usage::default(), None)
            .await
            .unwrap();
        created.push(id);
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    let ids = |list: Vec<Conversation>| list.into_iter().map(|c| c.id).collect::<Vec<_>>();

    let all = stores
        .conversations
        .list(&ConversationFilter::all())
        .await
        .unwrap();
    assert_eq!(all.len(), before.len() + 5);
    assert_eq!(ids(all[..5].to_vec()), newest_first, "newest first");
    assert!(
        all.windows(2)
            .all(|w| w[0].created_at_ms >= w[1].created_at_ms)
    );
    assert_eq!(
        all[0].messages,
        vec![Message::user("p2")],
        "messages are listed too"
    );

    let p1 = stores
        .conversations
        .list(&ConversationFilter::all().provider("p1"))
        .await
        .unwrap();
    assert_eq!(
        ids(p1),
        [created[3].clone(), created[1].clone(), created[0].clone()]
    );
    let p1_m1 = stores
        .conversations
        .list(&ConversationFilter::all().provider("p1").model("m1"))
        .await
        .unwrap();
    assert_eq!(ids(p1_m1), [created[3].clone(), created[0].clone()]);
    let m2 = stores
        .conversations
        .list(&ConversationFilter::all().model("m2"))
        .await
        .unwrap();
    assert_eq!(ids(m2), [created[4].clone(), created[1].clone()]);
    let none = stores
        .conversations
        .list(&ConversationFilter::all().provider("nobody"))
        .await
        .unwrap();
    assert!(none.is_empty());

    // Pages of two over the five new ones (the newest, so they come first).
    let page = |offset, limit| {
        let filter = ConversationFilter::all().page(offset, limit);
        async move { ids(stores.conversations.list(&filter).await.unwrap()) }
    };
    assert_eq!(page(0, 2).await, newest_first[0..2]);
    assert_eq!(page(2, 2).await, newest_first[2..4]);
    assert_eq!(page(4, 1).await, newest_first[4..5]);
    assert_eq!(page(0, 0).await, Vec::<String>::new());
    assert_eq!(page(before.len() + 5, 10).await, Vec::<String>::new());
    assert_eq!(page(usize::MAX, usize::MAX).await, Vec::<String>::new());
    let mut filter = ConversationFilter::all().provider("p2");
    filter.offset = 1;
    assert_eq!(
        ids(stores.conversations.list(&filter).await.unwrap()),
        [created[2].clone()]
    );
}

/// A UTC midnight, in milliseconds (2025-03-10T00:00:00Z).
const DAY1: u64 = 1_741_564_800_000;
const DAY_MS: u64 = 86_400_000;

fn record(at_ms: u64, provider: &str, model: &str) -> UsageRecord {
    UsageRecord::new(at_ms, provider, model)
}

async fn ledger(stores: &Stores) {
    let mut a = record(DAY1 + 1, "openai", "gpt-4o");
    a.usage = usage(1);
    a.cost = Some(cost("0.1"));
    a.caller = Some("key_a".into());
    a.latency_ms = 1234;
    a.conversation_id = Some("conv_x".into());
    a.stream = true;
    let mut b = record(DAY1 + DAY_MS - 1, "openai", "gpt-4o-mini");
    b.usage = usage(2);
    b.cost = Some(cost("0.2"));
    b.caller = Some("key_b".into());
    b.attempt = 2;
    let mut c = record(DAY1 + DAY_MS, "anthropic", "claude");
    c.usage = Usage::new(7, 0);
    c.outcome = Outcome::Error(ErrorKind::RateLimited);
    c.caller = Some("key_a".into());
    let mut d = record(DAY1 + 2 * DAY_MS + 5, "openai", "gpt-4o");
    d.usage = usage(3);
    d.cost = Some(cost("0.000000000000000001"));
    for r in [a, b, c, d] {
        stores.ledger.record(r).await.unwrap();
    }

    let totals = |group_by, since_ms, until_ms, caller: Option<&str>| {
        let mut query = UsageQuery::default();
        query.group_by = group_by;
        query.since_ms = since_ms;
        query.until_ms = until_ms;
        query.caller = caller.map(str::to_owned);
        async move { stores.ledger.totals(&query).await.unwrap() }
    };
    let total = |key: &str, calls, errors, usage: Usage, cost_usd: &str, unpriced| UsageTotal {
        key: key.to_owned(),
        calls,
        errors,
        usage,
        cost_usd: dec(cost_usd),
        unpriced,
    };

    assert_eq!(
        totals(GroupBy::Provider, None, None, None).await,
        [
            total("anthropic", 1, 1, Usage::new(7, 0), "0", 1),
            total("openai", 3, 0, usage(6), "0.300000000000000001", 0),
        ]
    );
    assert_eq!(
        totals(GroupBy::Model, None, None, None).await,
        [
            total("anthropic/claude", 1, 1, Usage::new(7, 0), "0", 1),
            total("openai/gpt-4o", 2, 0, usage(4), "0.100000000000000001", 0),
            total("openai/gpt-4o-mini", 1, 0, usage(2), "0.2", 0),
        ]
    );
    assert_eq!(
        totals(GroupBy::Day, None, None, None).await,
        [
            total("2025-03-10", 2, 0, usage(3), "0.3", 0),
            total("2025-03-11", 1, 1, Usage::new(7, 0), "0", 1),
            total("2025-03-12", 1, 0, usage(3), "0.000000000000000001", 0),
        ]
    );
    assert_eq!(
        totals(GroupBy::Caller, None, None, None).await,
        [
            total(NO_CALLER, 1, 0, usage(3), "0.000000000000000001", 0),
            total("key_a", 2, 1, usage(1) + Usage::new(7, 0), "0.1", 1),
            total("key_b", 1, 0, usage(2), "0.2", 0),
        ]
    );
    // since is inclusive, until exclusive.
    assert_eq!(
        totals(
            GroupBy::Day,
            Some(DAY1 + DAY_MS - 1),
            Some(DAY1 + 2 * DAY_MS),
            None
        )
        .await,
        [
            total("2025-03-10", 1, 0, usage(2), "0.2", 0),
            total("2025-03-11", 1, 1, Usage::new(7, 0), "0", 1),
        ]
    );
    assert_eq!(
        totals(GroupBy::Provider, None, None, Some("key_a")).await,
        [
            total("anthropic", 1, 1, Usage::new(7, 0), "0", 1),
            total("openai", 1, 0, usage(1), "0.1", 0),
        ]
    );
    assert_eq!(
        totals(GroupBy::Model, Some(DAY1 + 2), None, Some("key_a")).await,
        [total("anthropic/claude", 1, 1, Usage::new(7, 0), "0", 1)]
    );
    assert!(
        totals(GroupBy::Provider, Some(u64::MAX), None, None)
            .await
            .is_empty()
    );
    assert!(
        totals(GroupBy::Caller, None, Some(0), None)
            .await
            .is_empty()
    );
    assert!(
        totals(GroupBy::Caller, None, None, Some("nobody"))
            .await
            .is_empty()
    );
}
