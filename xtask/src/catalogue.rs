//! The model catalogue generator: LiteLLM's price database in, `crates/core/data/models.json` out.
//!
//! LiteLLM prices are USD per token, written as JSON floats (`1.5e-07`). ExLLM's catalogue holds
//! exact decimals per 1M tokens, so every price is read from the number's text in the raw JSON
//! (never through an `f64`) and scaled by 10^6 in decimal arithmetic.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{Result, workspace_root};

/// The `litellm` release `model-prices.json` was taken from (see `../shared/data/README.md`).
pub const LITELLM_VERSION: &str = "1.108.7";

/// The providers the shipped catalogue covers unless `--providers` says otherwise.
pub const DEFAULT_PROVIDERS: &[&str] = &[
    "openai",
    "anthropic",
    "gemini",
    "groq",
    "mistral",
    "xai",
    "deepseek",
    "together",
    "perplexity",
    "ollama",
];

/// ExLLM provider names and the `litellm_provider` value LiteLLM files their models under.
const PROVIDER_NAMES: &[(&str, &str)] = &[
    ("openai", "openai"),
    ("anthropic", "anthropic"),
    ("gemini", "gemini"),
    ("groq", "groq"),
    ("mistral", "mistral"),
    ("openrouter", "openrouter"),
    ("xai", "xai"),
    ("deepseek", "deepseek"),
    ("together", "together_ai"),
    ("perplexity", "perplexity"),
    ("ollama", "ollama"),
];

/// Name parts that mark a variant that is not a plain chat or embedding model, even when LiteLLM
/// files it under `mode: chat` (audio in/out, realtime sessions, built-in web search, speech,
/// image output). Matched against the id's `-`/`/`/`:`/`_`-separated parts, so `research` is kept.
const EXCLUDED_PARTS: &[&str] = &["audio", "realtime", "search", "transcribe", "tts", "image"];

/// What `cargo xtask catalogue` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The LiteLLM price database.
    pub input: PathBuf,
    /// The catalogue file to write.
    pub output: PathBuf,
    /// ExLLM provider names to include.
    pub providers: Vec<String>,
    /// The generation date written into `source` (`YYYY-MM-DD`).
    pub date: String,
}

impl Options {
    /// The defaults: the shared data file, the core crate's data file, OpenAI, today.
    pub fn defaults() -> Self {
        Self {
            input: default_input(),
            output: default_output(),
            providers: DEFAULT_PROVIDERS.iter().map(|p| (*p).to_owned()).collect(),
            date: today(),
        }
    }

    /// Parses `--input`, `--output`, `--providers` and `--date`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self::defaults();
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("`{flag}` needs a value"))
            };
            match flag.as_str() {
                "--input" => options.input = value()?.into(),
                "--output" => options.output = value()?.into(),
                "--providers" => options.providers = parse_providers(&value()?)?,
                "--date" => options.date = parse_date(&value()?)?,
                other => return Err(format!("unknown catalogue option `{other}`").into()),
            }
        }
        Ok(options)
    }
}

/// `../shared/data/model-prices.json`, next to the workspace.
pub fn default_input() -> PathBuf {
    workspace_root().join("../shared/data/model-prices.json")
}

/// `crates/core/data/models.json`.
pub fn default_output() -> PathBuf {
    workspace_root().join("crates/core/data/models.json")
}

/// Generates the catalogue and writes it to `options.output`.
pub fn write(options: &Options) -> Result<()> {
    let raw = read(&options.input)?;
    let text = generate(&raw, &options.providers, &options.date)?;
    std::fs::write(&options.output, &text)
        .map_err(|e| format!("cannot write {}: {e}", options.output.display()))?;
    let count = text.matches("\"provider\":").count();
    println!(
        "wrote {count} models ({}) to {}",
        options.providers.join(","),
        options.output.display()
    );
    Ok(())
}

/// Reads the price database.
pub fn read(input: &Path) -> Result<String> {
    std::fs::read_to_string(input)
        .map_err(|e| format!("cannot read {}: {e}", input.display()).into())
}

/// The catalogue file text for `providers` (ExLLM names) from the LiteLLM database text `raw`.
///
/// Models are ordered by provider, then id; the text is pretty JSON ending in a newline, so the
/// same input always gives the same bytes and a price update is a readable diff.
pub fn generate(raw: &str, providers: &[String], date: &str) -> Result<String> {
    let database: BTreeMap<String, HashMap<String, Box<RawValue>>> =
        serde_json::from_str(raw).map_err(|e| format!("invalid price database: {e}"))?;
    let mut models: BTreeMap<(String, String), (bool, Model)> = BTreeMap::new();
    for provider in providers {
        let litellm = litellm_name(provider)?;
        for (key, entry) in &database {
            let Some(model) =
                select(provider, litellm, key, entry).map_err(|e| format!("model `{key}`: {e}"))?
            else {
                continue;
            };
            // LiteLLM sometimes lists a model both bare and as `provider/model`; the bare key
            // wins, whatever the key order.
            let bare = key == &model.id;
            let slot = (model.provider.clone(), model.id.clone());
            match models.get(&slot) {
                Some((true, _)) => {}
                Some((false, _)) if !bare => {}
                _ => {
                    models.insert(slot, (bare, model));
                }
            }
        }
    }
    let file = CatalogueFile {
        source: source_line(providers, date),
        models: models.into_values().map(|(_, m)| m).collect(),
    };
    let mut text = serde_json::to_string_pretty(&file)?;
    text.push('\n');
    Ok(text)
}

/// The `source` field: where the data came from, when, and how to regenerate it.
pub fn source_line(providers: &[String], date: &str) -> String {
    format!(
        "LiteLLM model price database (MIT licence): litellm {LITELLM_VERSION} \
         model_prices_and_context_window_backup.json, generated {date} by \
         `cargo xtask catalogue --providers {}`",
        providers.join(",")
    )
}

/// The date and providers recorded in a catalogue's `source` line, for regenerating it verbatim.
pub fn recorded_options(catalogue_text: &str) -> Option<(String, Vec<String>)> {
    let value: serde_json::Value = serde_json::from_str(catalogue_text).ok()?;
    let source = value.get("source")?.as_str()?;
    let date = source.split("generated ").nth(1)?.get(..10)?;
    let providers = source.split("--providers ").nth(1)?.split('`').next()?;
    Some((parse_date(date).ok()?, parse_providers(providers).ok()?))
}

/// Parses `openai,anthropic` into known ExLLM provider names, keeping the order and no duplicates.
pub fn parse_providers(list: &str) -> Result<Vec<String>> {
    let mut providers: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        litellm_name(name)?;
        if !providers.iter().any(|p| p == name) {
            providers.push(name.to_owned());
        }
    }
    if providers.is_empty() {
        return Err("`--providers` needs at least one provider".into());
    }
    Ok(providers)
}

fn parse_date(date: &str) -> Result<String> {
    let b = date.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if shape {
        Ok(date.to_owned())
    } else {
        Err(format!("`{date}` is not a YYYY-MM-DD date").into())
    }
}

fn litellm_name(provider: &str) -> Result<&'static str> {
    PROVIDER_NAMES
        .iter()
        .find(|(exllm, _)| *exllm == provider)
        .map(|(_, litellm)| *litellm)
        .ok_or_else(|| {
            let known: Vec<&str> = PROVIDER_NAMES.iter().map(|(n, _)| *n).collect();
            format!(
                "unknown provider `{provider}` (known: {})",
                known.join(", ")
            )
            .into()
        })
}

/// The catalogue model for a database entry, or `None` when the entry is not shipped.
fn select(
    provider: &str,
    litellm: &str,
    key: &str,
    entry: &HashMap<String, Box<RawValue>>,
) -> Result<Option<Model>> {
    if string(entry, "litellm_provider")?.as_deref() != Some(litellm) {
        return Ok(None);
    }
    let kind = match string(entry, "mode")?.as_deref() {
        Some("chat") => "chat",
        Some("embedding") => "embedding",
        _ => return Ok(None),
    };
    let id = key
        .strip_prefix(litellm)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(key);
    if is_excluded(id) {
        return Ok(None);
    }
    let (Some(input), Some(output)) = (
        per_mtok(entry, "input_cost_per_token")?,
        per_mtok(entry, "output_cost_per_token")?,
    ) else {
        return Ok(None);
    };
    let reasoning = per_mtok(entry, "output_cost_per_reasoning_token")?.filter(|r| *r != output);
    let pricing = Pricing {
        input_per_mtok: input,
        output_per_mtok: output,
        cached_input_per_mtok: per_mtok(entry, "cache_read_input_token_cost")?,
        cache_write_per_mtok: per_mtok(entry, "cache_creation_input_token_cost")?,
        reasoning_per_mtok: reasoning,
    };
    let embedding = kind == "embedding";
    Ok(Some(Model {
        provider: provider.to_owned(),
        id: id.to_owned(),
        kind,
        context_window: match tokens(entry, "max_input_tokens")? {
            Some(n) => Some(n),
            None => tokens(entry, "max_tokens")?,
        },
        max_output_tokens: tokens(entry, "max_output_tokens")?,
        pricing: Some(pricing),
        capabilities: Capabilities {
            tools: flag(entry, "supports_function_calling")?,
            vision: flag(entry, "supports_vision")?,
            reasoning: flag(entry, "supports_reasoning")?,
            json_schema: flag(entry, "supports_response_schema")?,
            embeddings: embedding,
        },
    }))
}

/// Fine-tunes (`ft:`) and audio, realtime, search, speech and image variants.
pub fn is_excluded(id: &str) -> bool {
    id.starts_with("ft:")
        || id
            .split(['-', '/', ':', '_'])
            .any(|part| EXCLUDED_PARTS.contains(&part))
}

/// A per-token price field as an exact per-1M-token decimal; `None` when absent or null.
fn per_mtok(entry: &HashMap<String, Box<RawValue>>, field: &str) -> Result<Option<Decimal>> {
    let Some(raw) = entry.get(field).map(|r| r.get().trim()) else {
        return Ok(None);
    };
    if raw == "null" {
        return Ok(None);
    }
    let per_token = decimal_from_json_number(raw).map_err(|e| format!("`{field}`: {e}"))?;
    Ok(Some(per_million(per_token)))
}

/// The exact decimal a JSON number's text denotes (`1.5e-07` → 0.00000015).
pub fn decimal_from_json_number(text: &str) -> Result<Decimal> {
    let is_number = text
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        && text.bytes().next().is_some_and(|c| c.is_ascii_digit());
    if !is_number {
        return Err(format!("`{text}` is not a non-negative JSON number").into());
    }
    let lower = text.to_ascii_lowercase();
    let parsed = match lower.split_once('e') {
        // `Decimal::from_scientific` wants an explicit mantissa and a signed or unsigned exponent.
        Some((mantissa, exponent)) => Decimal::from_scientific(&format!(
            "{mantissa}e{}",
            exponent.strip_prefix('+').unwrap_or(exponent)
        )),
        None => Decimal::from_str_exact(&lower),
    };
    parsed.map_err(|e| format!("`{text}` is not an exact decimal: {e}").into())
}

/// Per-token to per-1M-token, normalized (`0.15`, not `0.15000000`).
pub fn per_million(per_token: Decimal) -> Decimal {
    (per_token * Decimal::from(1_000_000u32)).normalize()
}

fn tokens(entry: &HashMap<String, Box<RawValue>>, field: &str) -> Result<Option<u32>> {
    let Some(raw) = entry.get(field) else {
        return Ok(None);
    };
    let value: serde_json::Value = serde_json::from_str(raw.get())?;
    if value.is_null() {
        return Ok(None);
    }
    let n = value
        .as_u64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        })
        .ok_or_else(|| format!("`{field}` is not a token count: {value}"))?;
    Ok(Some(u32::try_from(n).map_err(|_| {
        format!("`{field}` {n} does not fit in u32")
    })?))
}

fn flag(entry: &HashMap<String, Box<RawValue>>, field: &str) -> Result<bool> {
    match entry.get(field) {
        None => Ok(false),
        Some(raw) => Ok(serde_json::from_str::<serde_json::Value>(raw.get())?
            .as_bool()
            .unwrap_or(false)),
    }
}

fn string(entry: &HashMap<String, Box<RawValue>>, field: &str) -> Result<Option<String>> {
    match entry.get(field) {
        None => Ok(None),
        Some(raw) => Ok(serde_json::from_str::<serde_json::Value>(raw.get())?
            .as_str()
            .map(str::to_owned)),
    }
}

/// Today's UTC date, `YYYY-MM-DD`, without a date library.
pub fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_date(i64::try_from(secs / 86_400).unwrap_or(0))
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

// The shapes below mirror `exllm_core::model::{CatalogueFile, Model, Pricing, Capabilities}`
// field for field (xtask does not depend on the crates it checks, so it builds even when they
// don't). Decimals serialize as strings, as the core types expect.

#[derive(Debug, Serialize)]
struct CatalogueFile {
    source: String,
    models: Vec<Model>,
}

#[derive(Debug, Serialize)]
struct Model {
    provider: String,
    id: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_window: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pricing: Option<Pricing>,
    capabilities: Capabilities,
}

#[derive(Debug, Serialize)]
struct Pricing {
    input_per_mtok: Decimal,
    output_per_mtok: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_input_per_mtok: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_write_per_mtok: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_per_mtok: Option<Decimal>,
}

#[derive(Debug, Serialize)]
struct Capabilities {
    tools: bool,
    vision: bool,
    reasoning: bool,
    json_schema: bool,
    embeddings: bool,
}
