//! The `exllm` command: chat, models, providers and config check.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use exllm_core::{
    CallOptions, ChatResponse, Error, ErrorKind, Model, Result, StreamEvent, stream::collect,
};
use futures_util::StreamExt;
use serde_json::json;

use crate::config::{Environment, Settings, builtin_providers};
use crate::output::{error_json, response_json};
use crate::wiring::{self, Wired};

/// One command line over every LLM provider.
///
/// Keys come from the providers' standard variables (OPENAI_API_KEY, OPENAI_BASE_URL, …);
/// everything else from exllm.toml and EXLLM_* variables. With no key configured, `exllm chat`
/// answers through the built-in `mock` provider and says so.
#[derive(Debug, Parser)]
#[command(name = "exllm", version)]
#[command(after_help = "Examples:\n  \
    exllm chat \"Explain TCP slow start in one sentence\"\n  \
    exllm chat -m openai/gpt-4o-mini --stream --json \"Hi\"\n  \
    echo \"Summarise this\" | exllm chat --system \"Be brief.\"\n  \
    exllm models --provider openai\n  \
    exllm config check
")]
pub struct Cli {
    /// Configuration file (default: ./exllm.toml when present).
    #[arg(long, global = true, env = "EXLLM_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send a message and print the reply.
    Chat(ChatArgs),
    /// List models with context windows, prices per 1M tokens and capabilities.
    Models(ModelsArgs),
    /// List providers and whether each is configured.
    Providers(JsonFlag),
    /// Stored conversations: list, show, delete, export, import.
    #[command(subcommand)]
    Conversations(crate::history::ConversationsCommand),
    /// Usage and cost from the ledger, grouped by provider, model, day or caller.
    Usage(crate::history::UsageArgs),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the gateway: OpenAI- and Anthropic-compatible HTTP APIs in front of every provider.
    #[cfg(feature = "server")]
    Serve(ServeArgs),
}

#[cfg(feature = "server")]
#[derive(Debug, Args)]
struct ServeArgs {
    /// The address to listen on (default: `bind` from exllm.toml / EXLLM_BIND, else
    /// 127.0.0.1:4000). A non-loopback address requires EXLLM_MASTER_KEY.
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check exllm.toml and the environment; print every problem at once.
    Check(JsonFlag),
}

#[derive(Debug, Args)]
struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ChatArgs {
    /// The model as provider/model or an alias (default: EXLLM_DEFAULT_MODEL, else
    /// openai/gpt-4o-mini when OPENAI_API_KEY is set, else mock/echo).
    #[arg(short, long, value_name = "PROVIDER/MODEL")]
    model: Option<String>,
    /// A system prompt.
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
    /// Stream the reply as it is generated.
    #[arg(long)]
    stream: bool,
    /// Print one JSON object: id, provider, model, content, tool_calls, finish_reason, usage, cost.
    #[arg(long)]
    json: bool,
    /// Sampling temperature, 0 to 2.
    #[arg(long, value_name = "X")]
    temperature: Option<f32>,
    /// The most tokens to generate.
    #[arg(long, value_name = "N")]
    max_tokens: Option<u32>,
    /// Continue a stored conversation (`new` starts one; see `exllm conversations`). The whole
    /// history is sent; with --json the object gains `conversation_id`.
    #[arg(long, value_name = "new|ID")]
    conversation: Option<String>,
    /// The message (default: read from stdin).
    #[arg(value_name = "MESSAGE")]
    message: Vec<String>,
}

#[derive(Debug, Args)]
struct ModelsArgs {
    /// Only this provider's models.
    #[arg(long, value_name = "P")]
    provider: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A gateway logs one access line per request (target `exllm::access`) by default; the
    // other commands only warnings, so that their output stays the answer.
    let serving = matches!(cli.command, Command::Serve(_));
    init_tracing(if serving {
        "warn,exllm::access=info"
    } else {
        "warn"
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let env = Environment::from_process();
    runtime.block_on(run(cli, env))
}

fn init_tracing(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("EXLLM_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colours only on a terminal: a log collected from a pipe or a file stays plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if default == "warn" {
        builder.with_target(false).without_time().try_init()
    } else {
        builder.try_init()
    };
}

/// Runs a parsed command line against `env`.
pub async fn run(cli: Cli, env: Environment) -> ExitCode {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Config(ConfigCommand::Check(flag)) => config_check(config, &env, flag.json),
        Command::Chat(args) => {
            let json = args.json;
            finish(chat(config, &env, args).await, json)
        }
        Command::Models(args) => {
            let json = args.json;
            finish(models(config, &env, args).await, json)
        }
        Command::Providers(flag) => finish(providers(config, &env, flag.json), flag.json),
        Command::Conversations(cmd) => {
            let json = cmd.json();
            finish(
                crate::history::conversations(wire(config, &env), cmd).await,
                json,
            )
        }
        Command::Usage(args) => {
            let json = args.json;
            finish(crate::history::usage(wire(config, &env), args).await, json)
        }
        #[cfg(feature = "server")]
        Command::Serve(args) => finish(serve(config, &env, args).await, false),
    }
}

fn finish(result: Result<()>, json: bool) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if json {
                println!("{}", error_json(&err));
            } else {
                eprintln!("error: {err}");
            }
            match err.kind() {
                ErrorKind::Validation | ErrorKind::Config => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

pub(crate) fn wire(config: Option<&std::path::Path>, env: &Environment) -> Result<Wired> {
    let settings = Settings::load(config, env)?;
    wiring::build(&settings)
}

async fn chat(config: Option<&std::path::Path>, env: &Environment, args: ChatArgs) -> Result<()> {
    let wired = wire(config, env)?;
    let address = args.model.clone().unwrap_or_default();
    wired.check_address(&address)?;
    if args.model.is_none() && wired.mock_fallback {
        eprintln!(
            "note: no provider key is configured (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, GROQ_API_KEY, …); \
             answering with the built-in mock provider ({}). See `exllm providers`.",
            wiring::MOCK_MODEL
        );
    }

    let message = if args.message.is_empty() {
        read_stdin()?
    } else {
        args.message.join(" ")
    };
    let mut options = CallOptions::default();
    options.temperature = args.temperature;
    options.max_tokens = args.max_tokens;
    options.system = args.system.clone();

    let exllm = &wired.exllm;
    let conversation_id = match args.conversation.as_deref() {
        None => None,
        Some("new") => {
            let conversation = exllm
                .conversations()
                .new(&address, args.system.as_deref())
                .await?;
            Some(conversation.id)
        }
        Some(id) => {
            let conversation = exllm.conversations().get(id).await?;
            if args.system.is_some() {
                return Err(Error::validation(
                    "system",
                    "--system sets the prompt of a new conversation; this one already exists",
                ));
            }
            if let Some(model) = &args.model
                && exllm.resolve(model)?.to_string() != conversation.address()
            {
                return Err(Error::validation(
                    "model",
                    format!(
                        "conversation {id} talks to {}; drop -m or start a new one",
                        conversation.address()
                    ),
                ));
            }
            Some(conversation.id)
        }
    };

    let response = match &conversation_id {
        Some(id) => {
            let mut turn = exllm_core::ChatRequest::default().user(message);
            turn.temperature = args.temperature;
            turn.max_tokens = args.max_tokens;
            if args.stream {
                let stream = exllm.conversations().send_stream(id, turn).await?;
                if args.json {
                    collect(stream).await?
                } else {
                    print_stream(stream).await?
                }
            } else {
                with_progress(
                    "waiting for the reply",
                    exllm.conversations().send(id, turn),
                )
                .await?
            }
        }
        None if args.stream => {
            let stream = exllm.stream_with(&address, message, &options).await?;
            if args.json {
                collect(stream).await?
            } else {
                print_stream(stream).await?
            }
        }
        None => {
            let target = exllm.resolve(&address)?;
            with_progress(
                &format!("waiting for {target}"),
                exllm.chat_with(&address, message, &options),
            )
            .await?
        }
    };

    if args.json {
        let mut object = response_json(&response);
        if let (Some(id), Some(obj)) = (&conversation_id, object.as_object_mut()) {
            obj.insert("conversation_id".into(), json!(id));
        }
        println!("{object}");
    } else {
        if let Some(id) = &conversation_id {
            eprintln!("conversation: {id}");
        }
        if !args.stream {
            print_plain(&response);
        }
        print_footer(&response);
    }
    Ok(())
}

/// Shows a spinner on stderr while `work` runs, when stderr is a terminal; silent otherwise so
/// that scripts and pipes see only the answer.
async fn with_progress<T>(label: &str, work: impl std::future::Future<Output = T>) -> T {
    if !std::io::stderr().is_terminal() {
        return work.await;
    }
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    tokio::pin!(work);
    let mut frame = 0usize;
    let out = loop {
        tokio::select! {
            out = &mut work => break out,
            _ = tick.tick() => {
                eprint!("\r{} {label} ({:.1}s)", FRAMES[frame % FRAMES.len()], started.elapsed().as_secs_f32());
                frame += 1;
            }
        }
    };
    // Erase the spinner line.
    eprint!("\r\x1b[2K");
    out
}

fn read_stdin() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(Error::validation(
            "message",
            "no message: pass MESSAGE or pipe text on stdin (see `exllm chat --help`)",
        ));
    }
    let mut text = String::new();
    stdin
        .lock()
        .read_to_string(&mut text)
        .map_err(|e| Error::new(ErrorKind::Validation, format!("cannot read stdin: {e}")))?;
    if text.trim().is_empty() {
        return Err(Error::validation(
            "message",
            "the message on stdin is empty",
        ));
    }
    Ok(text)
}

async fn print_stream(mut stream: exllm_core::ChatStream) -> Result<ChatResponse> {
    let mut out = std::io::stdout().lock();
    let mut ended_with_newline = true;
    while let Some(event) = stream.next().await {
        match event {
            Ok(StreamEvent::TextDelta(text)) => {
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
                ended_with_newline = text.ends_with('\n');
            }
            Ok(StreamEvent::ReasoningDelta(text)) => eprint!("{text}"),
            Ok(StreamEvent::RefusalDelta(text)) => eprint!("{text}"),
            Ok(StreamEvent::ToolCallEnd { call, .. }) => {
                let _ = writeln!(
                    out,
                    "-> tool call {}({}) [{}]",
                    call.name, call.arguments, call.id
                );
                ended_with_newline = true;
            }
            Ok(StreamEvent::Done(response)) => {
                if !ended_with_newline {
                    let _ = writeln!(out);
                }
                return Ok(*response);
            }
            Ok(_) => {}
            Err(err) => {
                if !ended_with_newline {
                    let _ = writeln!(out);
                }
                return Err(err);
            }
        }
    }
    Err(Error::new(
        ErrorKind::StreamTruncated,
        "the stream ended without a final response",
    ))
}

fn print_plain(response: &ChatResponse) {
    let text = response.text();
    if !text.is_empty() {
        println!("{}", text.trim_end_matches('\n'));
    }
    for call in response.tool_calls() {
        println!(
            "-> tool call {}({}) [{}]",
            call.name, call.arguments, call.id
        );
    }
    if let Some(refusal) = response.refusal() {
        eprintln!("refused: {refusal}");
    }
}

fn print_footer(response: &ChatResponse) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let cost = response
        .cost
        .map(|c| format!("${}", c.total_usd))
        .unwrap_or_else(|| "cost unknown".to_owned());
    eprintln!(
        "[{}/{} · {} in · {} out · {}]",
        response.provider,
        response.model,
        response.usage.input_tokens,
        response.usage.output_tokens,
        cost
    );
}

async fn models(
    config: Option<&std::path::Path>,
    env: &Environment,
    args: ModelsArgs,
) -> Result<()> {
    let wired = wire(config, env)?;
    let exllm = &wired.exllm;
    let mut models: Vec<Model> = match &args.provider {
        Some(p) => {
            if let Some((_, var)) = wired.unconfigured.iter().find(|(n, _)| n == p) {
                // The catalogue still knows an unconfigured provider's models.
                tracing::info!(
                    "provider {p} is not configured ({var}); listing the catalogue only"
                );
                exllm.catalogue().models_of(p).cloned().collect()
            } else {
                exllm.list_models(Some(p)).await?
            }
        }
        None => {
            let mut all = exllm.list_models(None).await?;
            for (name, _) in &wired.unconfigured {
                all.extend(exllm.catalogue().models_of(name).cloned());
            }
            all
        }
    };
    models.sort_by(|a, b| (&a.provider, &a.id).cmp(&(&b.provider, &b.id)));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&models).unwrap_or_default()
        );
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<44} {:>9} {:>8} {:>9} {:>9} {:>9}  CAPABILITIES",
        "MODEL", "CONTEXT", "MAX OUT", "IN $/1M", "CACHED", "OUT $/1M"
    );
    for m in &models {
        let price =
            |d: Option<exllm_core::Decimal>| d.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
        let p = m.pricing;
        let mut caps = Vec::new();
        let c = m.capabilities;
        for (on, name) in [
            (c.tools, "tools"),
            (c.vision, "vision"),
            (c.reasoning, "reasoning"),
            (c.json_schema, "json_schema"),
            (c.embeddings, "embeddings"),
        ] {
            if on {
                caps.push(name);
            }
        }
        let _ = writeln!(
            out,
            "{:<44} {:>9} {:>8} {:>9} {:>9} {:>9}  {}",
            m.address(),
            m.context_window
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            m.max_output_tokens
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            price(p.map(|p| p.input_per_mtok)),
            price(p.and_then(|p| p.cached_input_per_mtok)),
            price(p.map(|p| p.output_per_mtok)),
            caps.join(",")
        );
    }
    Ok(())
}

fn providers(config: Option<&std::path::Path>, env: &Environment, json: bool) -> Result<()> {
    let wired = wire(config, env)?;
    let mut rows = Vec::new();
    for name in wired.exllm.list_providers() {
        let status = if name == "mock" {
            "built-in"
        } else {
            "configured"
        };
        rows.push(json!({"name": name, "configured": true, "status": status}));
    }
    for (name, var) in &wired.unconfigured {
        rows.push(json!({"name": name, "configured": false, "status": format!("not configured: set {var}")}));
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        for row in rows {
            println!(
                "{:<12} {}",
                row["name"].as_str().unwrap_or_default(),
                row["status"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(())
}

fn config_check(config: Option<&std::path::Path>, env: &Environment, json: bool) -> ExitCode {
    let (settings, problems) = Settings::load_checked(config, env);
    let file = settings
        .as_ref()
        .and_then(|s| s.source.as_ref())
        .map(|p| p.display().to_string());
    let configured: Vec<&str> = settings
        .as_ref()
        .map(|s| {
            builtin_providers()
                .iter()
                .filter(|p| {
                    p.needs_key() && s.provider(p.name).is_some_and(|ps| ps.api_key.is_some())
                })
                .map(|p| p.name)
                .collect()
        })
        .unwrap_or_default();
    if json {
        println!(
            "{}",
            json!({"ok": problems.is_empty(), "file": file, "configured_providers": configured, "problems": problems})
        );
    } else if problems.is_empty() {
        println!(
            "ok: configuration is valid (file: {}; configured providers: {})",
            file.as_deref().unwrap_or("none"),
            if configured.is_empty() {
                "none, chat falls back to mock".to_owned()
            } else {
                configured.join(", ")
            }
        );
    } else {
        eprintln!("configuration has {} problem(s):", problems.len());
        for p in &problems {
            eprintln!("  - {p}");
        }
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// `exllm serve`: loads and checks the settings, then serves until ctrl-c or SIGTERM.
#[cfg(feature = "server")]
async fn serve(config: Option<&std::path::Path>, env: &Environment, args: ServeArgs) -> Result<()> {
    let settings = Settings::load(config, env)?;
    let bind = args
        .bind
        .or_else(|| settings.bind.clone())
        .unwrap_or_else(|| crate::gateway::server::DEFAULT_BIND.to_owned());
    let bind: std::net::SocketAddr = bind.parse().map_err(|_| {
        Error::config(format!(
            "--bind `{bind}` is not a socket address such as 127.0.0.1:4000"
        ))
    })?;
    crate::gateway::server::serve(settings, bind, crate::gateway::server::shutdown_signal()).await
}
