//! `exllm conversations …` and `exllm usage`: what the stores and the ledger remember.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use exllm_core::{
    ContentPart, Conversation, ConversationFilter, Decimal, Error, ErrorKind, GroupBy, Result,
    UsageQuery,
};
use serde_json::{Value, json};

use crate::wiring::Wired;

/// `exllm conversations …`.
#[derive(Debug, Subcommand)]
pub enum ConversationsCommand {
    /// List conversations, newest first.
    List(ListArgs),
    /// Show one conversation with its messages, usage and cost.
    Show(IdArgs),
    /// Delete a conversation.
    Delete(IdArgs),
    /// Print a conversation as JSON, for `import`.
    Export(IdArgs),
    /// Store a conversation from an export file.
    Import(ImportArgs),
}

impl ConversationsCommand {
    /// Whether the output is JSON (errors then print as JSON too).
    pub fn json(&self) -> bool {
        match self {
            Self::List(a) => a.json,
            Self::Show(a) | Self::Delete(a) => a.json,
            Self::Export(_) => true,
            Self::Import(a) => a.json,
        }
    }
}

/// Options of `conversations list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this provider's conversations.
    #[arg(long)]
    provider: Option<String>,
    /// Only this model's conversations (the model id, without the provider).
    #[arg(long)]
    model: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Skip this many first (paging).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A conversation id.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The conversation id.
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `conversations import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The export file (`-` for stdin).
    file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// How `exllm usage` groups.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum By {
    /// By provider.
    Provider,
    /// By provider/model.
    Model,
    /// By UTC day.
    Day,
    /// By caller key.
    Caller,
}

/// Options of `exllm usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only calls on or after this UTC date (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// The grouping.
    #[arg(long, value_enum, default_value_t = By::Provider)]
    by: By,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `conversations` subcommand.
pub async fn conversations(wired: Result<Wired>, cmd: ConversationsCommand) -> Result<()> {
    let wired = wired?;
    let conversations = wired.exllm.conversations();
    let mut out = std::io::stdout().lock();
    match cmd {
        ConversationsCommand::List(args) => {
            let mut filter = ConversationFilter::all().page(args.offset, args.limit);
            filter.provider = args.provider;
            filter.model = args.model;
            let list = conversations.list(&filter).await?;
            if args.json {
                let rows: Vec<Value> = list.iter().map(summary_json).collect();
                let _ = writeln!(out, "{}", Value::Array(rows));
            } else {
                let _ = writeln!(
                    out,
                    "{:<28} {:<40} {:>8} {:>12}",
                    "ID", "MODEL", "MESSAGES", "COST $"
                );
                for c in &list {
                    let _ = writeln!(
                        out,
                        "{:<28} {:<40} {:>8} {:>12}",
                        c.id,
                        c.address(),
                        c.messages.len(),
                        c.cost
                            .map(|c| c.total_usd.to_string())
                            .unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
        ConversationsCommand::Show(args) => {
            let c = conversations.get(&args.id).await?;
            if args.json {
                let _ = writeln!(out, "{}", show_json(&c));
            } else {
                let _ = writeln!(
                    out,
                    "{} · {} · {} messages",
                    c.id,
                    c.address(),
                    c.messages.len()
                );
                for m in &c.messages {
                    let _ = writeln!(out, "\n[{}]", m.role.as_str());
                    let text = m.text();
                    if !text.is_empty() {
                        let _ = writeln!(out, "{text}");
                    }
                    for part in &m.content {
                        match part {
                            ContentPart::ToolCall(call) => {
                                let _ = writeln!(
                                    out,
                                    "-> tool call {}({}) [{}]",
                                    call.name, call.arguments, call.id
                                );
                            }
                            ContentPart::ToolResult(r) => {
                                let _ =
                                    writeln!(out, "<- tool result [{}]: {}", r.call_id, r.content);
                            }
                            _ => {}
                        }
                    }
                }
                let _ = writeln!(
                    out,
                    "\n{} in · {} out · {}",
                    c.usage.input_tokens,
                    c.usage.output_tokens,
                    c.cost
                        .map(|c| format!("${}", c.total_usd))
                        .unwrap_or_else(|| "cost unknown".into())
                );
            }
        }
        ConversationsCommand::Delete(args) => {
            conversations.delete(&args.id).await?;
            if args.json {
                let _ = writeln!(out, "{}", json!({"deleted": args.id}));
            } else {
                let _ = writeln!(out, "deleted {}", args.id);
            }
        }
        ConversationsCommand::Export(args) => {
            let doc = conversations.export(&args.id).await?;
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            );
        }
        ConversationsCommand::Import(args) => {
            let text = if args.file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
                    Error::new(ErrorKind::Validation, format!("cannot read stdin: {e}"))
                })?;
                s
            } else {
                std::fs::read_to_string(&args.file).map_err(|e| {
                    Error::validation("file", format!("cannot read {}: {e}", args.file.display()))
                })?
            };
            let doc: Value = serde_json::from_str(&text).map_err(|e| {
                Error::new(
                    ErrorKind::Decode,
                    format!("{} is not JSON: {e}", args.file.display()),
                )
            })?;
            let c = conversations.import(&doc).await?;
            if args.json {
                let _ = writeln!(out, "{}", summary_json(&c));
            } else {
                let _ = writeln!(
                    out,
                    "imported {} ({}, {} messages)",
                    c.id,
                    c.address(),
                    c.messages.len()
                );
            }
        }
    }
    Ok(())
}

/// Runs `exllm usage`.
pub async fn usage(wired: Result<Wired>, args: UsageArgs) -> Result<()> {
    let wired = wired?;
    let ledger = wired.ledger.as_ref().ok_or_else(|| {
        Error::config("no usage ledger is configured (EXLLM_DATABASE_URL or database_url)")
    })?;
    let mut query = UsageQuery::default();
    query.group_by = match args.by {
        By::Provider => GroupBy::Provider,
        By::Model => GroupBy::Model,
        By::Day => GroupBy::Day,
        By::Caller => GroupBy::Caller,
    };
    if let Some(date) = &args.since {
        query.since_ms = Some(parse_date_ms(date)?);
    }
    let totals = ledger.totals(&query).await?;
    let sum: Decimal = totals.iter().map(|t| t.cost_usd).sum();
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            json!({"group_by": query.group_by, "totals": totals, "total_cost_usd": sum.normalize().to_string()})
        );
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<44} {:>7} {:>7} {:>12} {:>12} {:>14}",
        "KEY", "CALLS", "ERRORS", "INPUT", "OUTPUT", "COST $"
    );
    for t in &totals {
        let cost = if t.unpriced > 0 {
            format!("{}+?", t.cost_usd.normalize())
        } else {
            t.cost_usd.normalize().to_string()
        };
        let _ = writeln!(
            out,
            "{:<44} {:>7} {:>7} {:>12} {:>12} {:>14}",
            t.key, t.calls, t.errors, t.usage.input_tokens, t.usage.output_tokens, cost
        );
    }
    let _ = writeln!(out, "{:<44} {:>63}", "TOTAL", sum.normalize().to_string());
    Ok(())
}

/// `YYYY-MM-DD` (UTC midnight) as milliseconds since the epoch.
pub fn parse_date_ms(date: &str) -> Result<u64> {
    let bad = || {
        Error::validation(
            "since",
            format!("`{date}` is not a date: use YYYY-MM-DD, e.g. 2026-01-31"),
        )
    };
    let mut parts = date.trim().splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm), then milliseconds.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400_000).map_err(|_| bad())
}

fn summary_json(c: &Conversation) -> Value {
    json!({
        "id": c.id,
        "provider": c.provider,
        "model": c.model,
        "messages": c.messages.len(),
        "created_at_ms": c.created_at_ms,
        "updated_at_ms": c.updated_at_ms,
        "cost": c.cost,
    })
}

/// The `conversations show --json` object: `id`, `provider`, `model`, `messages` (`role`,
/// `content`, `tool_calls`), `usage` and `cost`.
pub fn show_json(c: &Conversation) -> Value {
    let messages: Vec<Value> = c
        .messages
        .iter()
        .map(|m| {
            let tool_calls: Vec<Value> = m
                .tool_calls()
                .map(|call| json!({"id": call.id, "name": call.name, "arguments": call.arguments}))
                .collect();
            let mut obj = json!({"role": m.role, "content": m.text(), "tool_calls": tool_calls});
            if let Some(result) = m.content.iter().find_map(|p| match p {
                ContentPart::ToolResult(r) => Some(r),
                _ => None,
            }) {
                obj["tool_call_id"] = json!(result.call_id);
                obj["content"] = json!(result.content);
            }
            obj
        })
        .collect();
    json!({
        "id": c.id,
        "provider": c.provider,
        "model": c.model,
        "messages": messages,
        "usage": {
            "input_tokens": c.usage.input_tokens,
            "output_tokens": c.usage.output_tokens,
            "cached_input_tokens": c.usage.cached_input_tokens,
            "reasoning_tokens": c.usage.reasoning_tokens,
        },
        "cost": c.cost,
        "created_at_ms": c.created_at_ms,
        "updated_at_ms": c.updated_at_ms,
    })
}
