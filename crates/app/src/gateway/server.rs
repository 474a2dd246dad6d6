//! The gateway server: shared state, the router with its cross-cutting layers (request ids, the
//! body limit, the access log), binding with TCP_NODELAY, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use exllm_core::{Error, ErrorKind, Result, Secret};
use serde_json::json;

use super::{anthropic, keys, openai, ops};
use crate::config::Settings;
use crate::wiring::{self, Wired};

/// The request id header, echoed when the client sends one and generated otherwise.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The provider that served a model request.
pub const PROVIDER: HeaderName = HeaderName::from_static("x-exllm-provider");
/// The cost of a non-streamed model request, in USD.
pub const COST_USD: HeaderName = HeaderName::from_static("x-exllm-cost-usd");
/// Microseconds spent in the gateway itself rather than waiting for the upstream.
pub const OVERHEAD_US: HeaderName = HeaderName::from_static("x-exllm-overhead-us");

/// Everything the handlers share.
#[derive(Debug)]
pub struct GatewayState {
    /// The client with the whole middleware pipeline, and the ledger.
    pub wired: Wired,
    /// The settings the gateway started with.
    pub settings: Settings,
    /// The master key and virtual keys.
    pub keys: keys::Keys,
    /// Prometheus metrics.
    pub metrics: ops::Metrics,
    /// When the gateway started.
    pub started: Instant,
}

/// The state as handlers receive it.
pub type Shared = Arc<GatewayState>;

/// Server tuning that is not part of `exllm.toml`. Handlers read it as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayOptions {
    /// The largest request body accepted; larger bodies get a 413.
    pub max_body_bytes: usize,
    /// The silence after which a stream sends a `: ping` comment, so proxies and clients with
    /// idle timeouts keep the connection.
    pub ping_interval: Duration,
    /// How long running requests (streams above all) may continue after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            ping_interval: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// The request id of a request, set by the gateway's outermost layer.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The default address: loopback, so that a gateway started without a master key is never
/// reachable from other machines.
pub const DEFAULT_BIND: &str = "127.0.0.1:4000";

/// Builds the shared state from settings: the wired client, the keys (master key, virtual keys
/// in the database, limits in Redis when configured) and empty metrics.
pub async fn state(settings: Settings) -> Result<Shared> {
    let wired = wiring::build(&settings)?;
    let keys = keys::Keys::from_settings(&settings).await?;
    Ok(Arc::new(GatewayState {
        wired,
        settings,
        keys,
        metrics: ops::Metrics::new(),
        started: Instant::now(),
    }))
}

/// Refuses a non-loopback address without a master key: such a gateway would spend the
/// provider keys for anyone who can reach it.
pub fn check_exposure(bind: SocketAddr, master_key: Option<&Secret>) -> Result<()> {
    let has_key = master_key.is_some_and(|k| !k.is_empty());
    if !has_key && !bind.ip().is_loopback() {
        return Err(Error::config(format!(
            "refusing to serve on {bind} without a master key: set EXLLM_MASTER_KEY, or bind a loopback address such as {DEFAULT_BIND}"
        )));
    }
    Ok(())
}

/// The router with default options.
pub fn router(state: Shared) -> Router {
    router_with(state, GatewayOptions::default())
}

/// The router: every protocol's routes, an OpenAI-shaped 404 for anything else, the body limit,
/// request ids and the access log.
pub fn router_with(state: Shared, options: GatewayOptions) -> Router {
    Router::new()
        .merge(openai::routes())
        .merge(anthropic::routes())
        .merge(keys::routes())
        .merge(ops::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(middleware::from_fn(move |req, next| {
            request_context(options, req, next)
        }))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets running requests finish for the grace period.
pub async fn serve(
    settings: Settings,
    bind: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_with(settings, bind, GatewayOptions::default(), shutdown).await
}

/// [`serve`] with explicit options.
pub async fn serve_with(
    settings: Settings,
    bind: SocketAddr,
    options: GatewayOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    check_exposure(bind, settings.master_key.as_ref())?;
    let state = state(settings).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|err| Error::new(ErrorKind::Config, format!("cannot listen on {bind}: {err}")))?;
    let local = listener.local_addr().unwrap_or(bind);
    tracing::info!(address = %local, "exllm gateway listening");
    // Streamed tokens are small writes: without TCP_NODELAY, Nagle's algorithm would hold each
    // one back waiting for the previous ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let graceful =
        axum::serve(listener, router_with(state, options)).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections; running requests may finish");
            let _ = signalled_tx.send(());
        });
    let deadline = async move {
        match signalled_rx.await {
            Ok(()) => tokio::time::sleep(options.shutdown_grace).await,
            // The server ended without a signal: nothing to time out.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        result = graceful.into_future() => result.map_err(|err| {
            Error::new(ErrorKind::Transport, format!("the gateway server failed: {err}"))
        }),
        () = deadline => {
            tracing::warn!(grace_secs = options.shutdown_grace.as_secs(), "shutdown grace period over; closing the remaining connections");
            Ok(())
        }
    }
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// The outermost layer: assigns the request id, rejects bodies declared over the limit before
/// reading them, writes the access-log line and the `x-request-id` response header.
async fn request_context(options: GatewayOptions, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable_request_id(v))
        .map_or_else(new_request_id, str::to_owned);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    req.extensions_mut().insert(options);
    let method = req.method().clone();
    // The path only: a query string may carry a credential (`?key=` in Gemini's style).
    let path = req.uri().path().to_owned();

    let declared = declared_length(req.headers());
    let mut response = match declared {
        Some(len) if len > options.max_body_bytes as u64 => {
            too_large(&path, options.max_body_bytes)
        }
        _ => next.run(req).await,
    };

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let provider = response
        .headers()
        .get(&PROVIDER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "exllm::access",
        method = %method,
        path = %path,
        status,
        latency_ms,
        provider = %provider,
        request_id = %request_id,
        "request"
    );
    response
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// A client's request id is echoed only when it is short printable ASCII, so it cannot inject
/// anything into headers or log lines.
fn is_acceptable_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A fresh request id: time and a process-wide counter, unique within a process and sortable.
pub fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("req_{nanos:x}{:04x}{n:x}", std::process::id() & 0xffff)
}

/// A 413 in the protocol of `path`.
pub fn too_large(path: &str, limit: usize) -> Response {
    let message = format!("the request body is larger than the gateway's limit of {limit} bytes");
    let body = if path.starts_with("/v1/messages") {
        json!({"type": "error", "error": {"type": "request_too_large", "message": message}})
    } else {
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": "request_too_large"}})
    };
    (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response()
}

async fn not_found(req: Request) -> Response {
    let message = format!("no route for {} {}", req.method(), req.uri().path());
    let body = if req.uri().path().starts_with("/v1/messages") {
        json!({"type": "error", "error": {"type": "not_found_error", "message": message}})
    } else {
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": "not_found"}})
    };
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_address_needs_a_master_key() {
        let public: SocketAddr = "0.0.0.0:4000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let v6: SocketAddr = "[::1]:4000".parse().unwrap();
        let err = check_exposure(public, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.message().contains("EXLLM_MASTER_KEY"));
        assert!(check_exposure(local, None).is_ok());
        assert!(check_exposure(v6, None).is_ok());
        assert!(check_exposure(public, Some(&Secret::new("sk-master"))).is_ok());
    }

    #[test]
    fn request_ids_are_unique_and_client_ids_are_checked() {
        assert_ne!(new_request_id(), new_request_id());
        assert!(is_acceptable_request_id("abc-123"));
        assert!(!is_acceptable_request_id("a b"));
        assert!(!is_acceptable_request_id(&"x".repeat(200)));
        assert!(!is_acceptable_request_id("x\r\ny"));
    }
}
