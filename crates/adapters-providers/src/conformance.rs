//! The conformance suite: data-driven checks of any [`ChatProvider`] against recorded wire data
//! served over real TCP, and the capability matrix its results generate.
//!
//! Every built-in provider runs it against `shared/fixtures/`; a custom provider runs it against
//! its own recordings:
//!
//! ```no_run
//! use std::sync::Arc;
//! use exllm_adapters_providers::conformance::{self, Aspect, Case, Expect, Scripted};
//! use exllm_core::{ChatProvider, ChatRequest};
//! # fn my_provider(_base_url: &str) -> Arc<dyn ChatProvider> { Arc::new(exllm_adapters_providers::MockProvider::new()) }
//!
//! # async fn run() {
//! let cases = vec![
//!     Case::new("text", Aspect::Text, vec![Scripted::json(200, r#"{"reply": "hi"}"#)],
//!               ChatRequest::new("my-model").user("Hello"))
//!         .expect(Expect::Text("hi".into())),
//! ];
//! let report = conformance::run("mine", |url| my_provider(url), cases).await;
//! report.assert_passed();
//! # }
//! ```
//!
//! Besides each case's expectations, every streamed case checks the stream's own invariants:
//! the last event is `Done`, the text deltas add up to the final text, and the completed tool
//! calls are the final response's tool calls.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use exllm_core::{
    ChatProvider, ChatRequest, ChatResponse, EmbedRequest, ErrorKind, FinishReason, StreamEvent,
    ToolCall,
};
pub use exllm_infrastructure::testing::{FixtureServer, RecordedRequest, Scripted};
use futures_util::StreamExt;
use serde_json::Value;

/// What a case exercises; the columns of the capability matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Aspect {
    /// A plain text reply.
    Text,
    /// A streamed text reply.
    StreamedText,
    /// A tool call (not streamed).
    ToolCall,
    /// A streamed tool call.
    StreamedToolCall,
    /// The shape of a request carrying an image.
    Vision,
    /// Reasoning / thinking blocks.
    Reasoning,
    /// Usage figures (cached, reasoning, cumulative in streams).
    Usage,
    /// A structured-output (JSON schema) request.
    StructuredOutput,
    /// Embeddings.
    Embeddings,
    /// An error mapped to its kind.
    Error,
}

impl Aspect {
    /// Every aspect, in matrix order.
    pub const ALL: [Aspect; 10] = [
        Aspect::Text,
        Aspect::StreamedText,
        Aspect::ToolCall,
        Aspect::StreamedToolCall,
        Aspect::Vision,
        Aspect::Reasoning,
        Aspect::Usage,
        Aspect::StructuredOutput,
        Aspect::Embeddings,
        Aspect::Error,
    ];

    /// The column title.
    pub fn title(self) -> &'static str {
        match self {
            Aspect::Text => "text",
            Aspect::StreamedText => "streamed text",
            Aspect::ToolCall => "tool call",
            Aspect::StreamedToolCall => "streamed tool call",
            Aspect::Vision => "vision",
            Aspect::Reasoning => "reasoning",
            Aspect::Usage => "usage",
            Aspect::StructuredOutput => "structured output",
            Aspect::Embeddings => "embeddings",
            Aspect::Error => "errors",
        }
    }
}

type RequestCheck = Arc<dyn Fn(&RecordedRequest) -> Result<(), String> + Send + Sync>;
type ResponseCheck = Arc<dyn Fn(&ChatResponse) -> Result<(), String> + Send + Sync>;

/// An expectation of a case.
#[derive(Clone)]
#[non_exhaustive]
pub enum Expect {
    /// The reply's text is exactly this.
    Text(String),
    /// The reply's tool calls have these names and arguments, in order.
    ToolCalls(Vec<(String, Value)>),
    /// The normalized finish reason.
    FinishReason(FinishReason),
    /// Input and output tokens.
    Usage {
        /// Input tokens.
        input: u64,
        /// Output tokens.
        output: u64,
    },
    /// Embeddings: how many vectors, and how many dimensions each.
    Embeddings {
        /// Number of vectors.
        count: usize,
        /// Dimensions of each vector.
        dimensions: usize,
    },
    /// The call fails with this kind.
    ErrorKind(ErrorKind),
    /// The call fails with this HTTP status.
    ErrorStatus(u16),
    /// A check of the (first) request the server received: path, headers, body.
    Request(RequestCheck),
    /// A check of the whole response.
    Response(ResponseCheck),
}

impl std::fmt::Debug for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Text(t) => f.debug_tuple("Text").field(t).finish(),
            Expect::ToolCalls(c) => f.debug_tuple("ToolCalls").field(c).finish(),
            Expect::FinishReason(r) => f.debug_tuple("FinishReason").field(r).finish(),
            Expect::Usage { input, output } => f
                .debug_struct("Usage")
                .field("input", input)
                .field("output", output)
                .finish(),
            Expect::Embeddings { count, dimensions } => f
                .debug_struct("Embeddings")
                .field("count", count)
                .field("dimensions", dimensions)
                .finish(),
            Expect::ErrorKind(k) => f.debug_tuple("ErrorKind").field(k).finish(),
            Expect::ErrorStatus(s) => f.debug_tuple("ErrorStatus").field(s).finish(),
            Expect::Request(_) => f.write_str("Request(<check>)"),
            Expect::Response(_) => f.write_str("Response(<check>)"),
        }
    }
}

impl Expect {
    /// A check of the request the server received.
    pub fn request(
        check: impl Fn(&RecordedRequest) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Expect::Request(Arc::new(check))
    }
    /// A check of the response.
    pub fn response(
        check: impl Fn(&ChatResponse) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Expect::Response(Arc::new(check))
    }
    /// The request body, as JSON, contains `expected` (every field of `expected` is present
    /// with an equal value, recursively; arrays compare element by element).
    pub fn body_contains(expected: Value) -> Self {
        Expect::request(move |req| {
            let body = req
                .body_json()
                .ok_or_else(|| "the request body is not JSON".to_owned())?;
            json_contains(&body, &expected, "$")
        })
    }
}

/// Whether `actual` contains `expected`: objects by key (extra keys allowed), arrays by position
/// with equal length, scalars by equality. The error names the first differing path.
pub fn json_contains(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                let av = a.get(k).ok_or_else(|| format!("{p} is missing"))?;
                json_contains(av, ev, &p)?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(e)) => {
            if a.len() != e.len() {
                return Err(format!(
                    "{path} has {} elements, expected {}",
                    a.len(),
                    e.len()
                ));
            }
            for (i, (av, ev)) in a.iter().zip(e).enumerate() {
                json_contains(av, ev, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ if actual == expected => Ok(()),
        _ => Err(format!("{path} is {actual}, expected {expected}")),
    }
}

/// One case: what the server replies, what is sent, what must come out.
#[derive(Debug, Clone)]
pub struct Case {
    /// A name, usually the fixture file.
    pub name: String,
    /// What it exercises.
    pub aspect: Aspect,
    /// The server's replies, in order.
    pub replies: Vec<Scripted>,
    /// The request sent.
    pub request: ChatRequest,
    /// Whether to call `stream` rather than `chat`.
    pub stream: bool,
    /// When set, the case calls `embed` with this request instead of chatting.
    pub embed: Option<EmbedRequest>,
    /// The expectations.
    pub expect: Vec<Expect>,
}

impl Case {
    /// A plain (non-streamed) case.
    pub fn new(
        name: impl Into<String>,
        aspect: Aspect,
        replies: Vec<Scripted>,
        request: ChatRequest,
    ) -> Self {
        Self {
            name: name.into(),
            aspect,
            replies,
            request,
            stream: false,
            embed: None,
            expect: Vec::new(),
        }
    }
    /// An embeddings case.
    pub fn embedding(
        name: impl Into<String>,
        replies: Vec<Scripted>,
        request: EmbedRequest,
    ) -> Self {
        let mut case = Self::new(name, Aspect::Embeddings, replies, ChatRequest::default());
        case.embed = Some(request);
        case
    }
    /// Calls `stream` instead of `chat`.
    pub fn streamed(mut self) -> Self {
        self.stream = true;
        self
    }
    /// Adds an expectation.
    pub fn expect(mut self, expect: Expect) -> Self {
        self.expect.push(expect);
        self
    }
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The provider.
    pub provider: String,
    /// The case name.
    pub case: String,
    /// What it exercised.
    pub aspect: Aspect,
    /// `Err` with every failed expectation.
    pub outcome: Result<(), String>,
}

/// The outcomes of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One per case, in order.
    pub results: Vec<CaseResult>,
}

impl Report {
    /// The failed cases.
    pub fn failures(&self) -> Vec<&CaseResult> {
        self.results.iter().filter(|r| r.outcome.is_err()).collect()
    }

    /// Panics listing every failed case.
    pub fn assert_passed(&self) {
        let failures = self.failures();
        if !failures.is_empty() {
            let mut msg = format!(
                "{} of {} conformance cases failed:\n",
                failures.len(),
                self.results.len()
            );
            for f in failures {
                let _ = writeln!(
                    msg,
                    "- {}/{} [{}]: {}",
                    f.provider,
                    f.case,
                    f.aspect.title(),
                    f.outcome
                        .as_ref()
                        .err()
                        .map(String::as_str)
                        .unwrap_or_default()
                );
            }
            panic!("{msg}");
        }
    }

    /// Adds another report's results.
    pub fn extend(&mut self, other: Report) {
        self.results.extend(other.results);
    }
}

/// Runs `cases` against providers made by `factory` from each case's server URL
/// (`http://127.0.0.1:PORT`, no trailing slash).
pub async fn run(
    provider: &str,
    factory: impl Fn(&str) -> Arc<dyn ChatProvider>,
    cases: Vec<Case>,
) -> Report {
    let mut report = Report::default();
    for case in cases {
        let server = FixtureServer::start(case.replies.clone()).await;
        let p = factory(&server.url());
        let outcome = run_case(p.as_ref(), &case, &server).await;
        report.results.push(CaseResult {
            provider: provider.to_owned(),
            case: case.name.clone(),
            aspect: case.aspect,
            outcome,
        });
    }
    report
}

async fn run_case(
    provider: &dyn ChatProvider,
    case: &Case,
    server: &FixtureServer,
) -> Result<(), String> {
    let result = if let Some(embed) = &case.embed {
        match provider.embed(embed.clone()).await {
            Ok(resp) => {
                // Carried as a response so the shared checks apply: usage, errors, requests.
                let mut chat = ChatResponse::new(resp.provider.clone(), resp.model.clone());
                chat.usage = resp.usage;
                let dims = resp.embeddings.first().map_or(0, Vec::len);
                chat.metadata.insert(
                    "embeddings".into(),
                    serde_json::json!([resp.embeddings.len(), dims]),
                );
                Ok(chat)
            }
            Err(err) => Err(Failure::Call(err)),
        }
    } else if case.stream {
        run_stream(provider, case.request.clone()).await
    } else {
        provider
            .chat(case.request.clone())
            .await
            .map_err(Failure::Call)
    };
    let mut problems = Vec::new();
    let wants_error = case
        .expect
        .iter()
        .any(|e| matches!(e, Expect::ErrorKind(_) | Expect::ErrorStatus(_)));
    match &result {
        Ok(_) if wants_error => problems.push("expected an error, got a response".to_owned()),
        Err(Failure::Call(err)) if !wants_error => {
            problems.push(format!("unexpected error: {err:?}"))
        }
        Err(Failure::Invariant(msg)) => problems.push(msg.clone()),
        _ => {}
    }
    let requests = server.requests();
    for expect in &case.expect {
        let check = match (expect, &result) {
            (Expect::Request(check), _) => match requests.first() {
                Some(req) => check(req),
                None => Err("the server received no request".to_owned()),
            },
            (Expect::ErrorKind(kind), Err(Failure::Call(err))) => {
                eq("error kind", &err.kind(), kind)
            }
            (Expect::ErrorStatus(status), Err(Failure::Call(err))) => {
                eq("error status", &err.status(), &Some(*status))
            }
            (Expect::ErrorKind(_) | Expect::ErrorStatus(_), _) => Ok(()),
            (_, Err(_)) => Ok(()),
            (Expect::Text(text), Ok(resp)) => eq("text", &resp.text(), text),
            (Expect::ToolCalls(calls), Ok(resp)) => {
                let got: Vec<(String, Value)> = resp
                    .tool_calls()
                    .into_iter()
                    .map(|c| (c.name.clone(), c.arguments.clone()))
                    .collect();
                eq("tool calls", &got, calls)
            }
            (Expect::FinishReason(reason), Ok(resp)) => {
                eq("finish reason", &resp.finish_reason, &Some(*reason))
            }
            (Expect::Usage { input, output }, Ok(resp)) => eq(
                "usage (input, output)",
                &(resp.usage.input_tokens, resp.usage.output_tokens),
                &(*input, *output),
            ),
            (Expect::Response(check), Ok(resp)) => check(resp),
            (Expect::Embeddings { count, dimensions }, Ok(resp)) => eq(
                "embeddings (count, dimensions)",
                &resp.metadata.get("embeddings").cloned(),
                &Some(serde_json::json!([count, dimensions])),
            ),
        };
        if let Err(msg) = check {
            problems.push(msg);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn eq<T: PartialEq + std::fmt::Debug>(what: &str, got: &T, want: &T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, expected {want:?}"))
    }
}

enum Failure {
    Call(exllm_core::Error),
    Invariant(String),
}

/// Runs a stream to its end, checking the invariants every stream must keep.
async fn run_stream(
    provider: &dyn ChatProvider,
    request: ChatRequest,
) -> Result<ChatResponse, Failure> {
    let mut stream = provider.stream(request).await.map_err(Failure::Call)?;
    let mut text = String::new();
    let mut ended: Vec<ToolCall> = Vec::new();
    let mut done: Option<ChatResponse> = None;
    while let Some(event) = stream.next().await {
        if done.is_some() {
            return Err(Failure::Invariant("an event came after Done".to_owned()));
        }
        match event.map_err(Failure::Call)? {
            StreamEvent::TextDelta(t) => text.push_str(&t),
            StreamEvent::ToolCallEnd { call, .. } => ended.push(call),
            StreamEvent::Done(resp) => done = Some(*resp),
            _ => {}
        }
    }
    let resp =
        done.ok_or_else(|| Failure::Invariant("the stream ended without Done".to_owned()))?;
    if resp.text() != text {
        return Err(Failure::Invariant(format!(
            "the text deltas ({} chars) differ from the final text ({} chars)",
            text.len(),
            resp.text().len()
        )));
    }
    let final_calls: Vec<ToolCall> = resp.tool_calls().into_iter().cloned().collect();
    if final_calls != ended {
        return Err(Failure::Invariant(format!(
            "completed tool calls {ended:?} differ from the final response's {final_calls:?}"
        )));
    }
    Ok(resp)
}

/// The capability matrix: one row per provider, one column per aspect; ✓ when every case of
/// that aspect passed, ✗ when one failed, — when there is no case.
pub fn matrix(report: &Report) -> String {
    let mut cells: BTreeMap<&str, BTreeMap<Aspect, bool>> = BTreeMap::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &report.results {
        let ok = r.outcome.is_ok();
        let cell = cells
            .entry(&r.provider)
            .or_default()
            .entry(r.aspect)
            .or_insert(true);
        *cell &= ok;
        *counts.entry(&r.provider).or_default() += 1;
    }
    let used: BTreeSet<Aspect> = cells.values().flat_map(|m| m.keys().copied()).collect();
    let columns: Vec<Aspect> = Aspect::ALL
        .into_iter()
        .filter(|a| used.contains(a))
        .collect();
    let mut out = String::from("| provider |");
    for a in &columns {
        let _ = write!(out, " {} |", a.title());
    }
    out.push_str(" cases |\n|---|");
    for _ in &columns {
        out.push_str(":-:|");
    }
    out.push_str("--:|\n");
    for (provider, row) in &cells {
        let _ = write!(out, "| {provider} |");
        for a in &columns {
            let mark = match row.get(a) {
                Some(true) => "✓",
                Some(false) => "✗",
                None => "—",
            };
            let _ = write!(out, " {mark} |");
        }
        let _ = writeln!(
            out,
            " {} |",
            counts.get(provider).copied().unwrap_or_default()
        );
    }
    out
}
