//! Who may call the gateway: the master key (`EXLLM_MASTER_KEY`), virtual keys with a USD
//! budget, per-minute limits, allowed models and an expiry, and the admin endpoints that
//! create, list and revoke them.
//!
//! - Without a master key every call is allowed as an anonymous caller (the server binds only
//!   to loopback then).
//! - With one, a call must carry `Authorization: Bearer KEY` or `x-api-key: KEY`: the master
//!   key itself (an admin caller) or a virtual key. A virtual key is stored only as its
//!   SHA-256 hash, compared in constant time, and shown once, when it is created.
//! - Budgets: [`Keys::authorize`] refuses a key whose spend has reached its budget;
//!   [`Keys::authorize_chat`] also reserves the call's estimated cost (prompt tokens estimated
//!   + the request's `max_tokens`, else the model's maximum output, at the catalogue's
//!     prices) atomically in the key store, so that instances sharing a database never
//!     overspend together; [`Keys::settle`] replaces the reservation with the actual cost.
//! - Limits: a key's requests and tokens per minute are taken from the rate-limit store
//!   (Redis when configured, shared by every instance) under `key:{id}:rpm` / `key:{id}:tpm`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use exllm_core::{
    Acquire, CallerKey, ChatRequest, Cost, Decimal, ErrorKind, ExLLM, KeyStore, RateLimitStore,
    Reservation, Secret, Usage, VirtualKey,
};
use exllm_infrastructure::InMemoryRateLimitStore;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::GatewayError;
use super::server::Shared;

/// What every virtual key starts with, so that leaked keys are recognisable.
pub const KEY_PREFIX: &str = "sk-exllm-";
/// The window of the per-key limits.
const MINUTE: Duration = Duration::from_secs(60);
/// The output tokens assumed for a request without `max_tokens` on a model whose maximum
/// output the catalogue does not know.
const DEFAULT_OUTPUT_ESTIMATE: u64 = 4096;

/// Whoever made a call, as [`Keys::authorize`] established it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Caller {
    /// The virtual key's id; `None` for the master key and anonymous callers.
    pub key_id: Option<String>,
    /// Whether the caller holds the master key.
    pub admin: bool,
    /// The USD reserved against the key's budget before the call (settled after it).
    pub reserved_usd: Decimal,
    /// The tokens taken from the key's tokens-per-minute bucket before the call.
    pub reserved_tokens: u64,
    /// The key's tokens-per-minute limit, to settle the bucket with.
    pub tokens_per_minute: Option<u64>,
}

impl Caller {
    /// The anonymous caller (no master key configured).
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The extension to attach to the request, so that limits and the ledger see the caller.
    pub fn extension(&self) -> Option<CallerKey> {
        self.key_id.clone().map(CallerKey)
    }
}

/// The gateway's key checks: the master key, the virtual-key store and the limit store.
#[derive(Clone)]
pub struct Keys {
    /// The master key's SHA-256, compared in constant time (the key itself is not kept).
    master_hash: Option<[u8; 32]>,
    store: Option<Arc<dyn KeyStore>>,
    limits: Arc<dyn RateLimitStore>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("master_key", &self.master_hash.map(|_| "***"))
            .field("store", &self.store.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Keys {
    /// Key checks with `master_key` (none: everything is allowed anonymously) and virtual keys
    /// in `store` (none: only the master key). Per-key limits are counted in this process until
    /// [`Keys::with_rate_limits`] gives a shared store.
    pub fn new(master_key: Option<Secret>, store: Option<Arc<dyn KeyStore>>) -> Self {
        let master_hash = master_key
            .filter(|key| !key.is_empty())
            .map(|key| sha256(key.expose()));
        Self {
            master_hash,
            store,
            limits: Arc::new(InMemoryRateLimitStore::new()),
        }
    }

    /// Counts per-key limits in `limits` (Redis, to share them across instances).
    pub fn with_rate_limits(mut self, limits: Arc<dyn RateLimitStore>) -> Self {
        self.limits = limits;
        self
    }

    /// Key checks as the settings say: the master key from `EXLLM_MASTER_KEY` / `master_key`,
    /// virtual keys in the ledger's database and limits in Redis when `redis_url` is set.
    /// Without a master key no store is opened.
    pub async fn from_settings(settings: &crate::config::Settings) -> exllm_core::Result<Self> {
        let Some(master) = settings.master_key.clone().filter(|k| !k.is_empty()) else {
            return Ok(Self::new(None, None));
        };
        let stores = exllm_adapters_persistence::open(&settings.database_url()).await?;
        let keys = Self::new(Some(master), Some(stores.keys));
        Ok(match shared_limits(settings)? {
            Some(limits) => keys.with_rate_limits(limits),
            None => keys,
        })
    }

    /// Whether a master key is configured (the gateway then requires keys).
    pub fn is_enforced(&self) -> bool {
        self.master_hash.is_some()
    }

    /// The key store, when virtual keys are enabled.
    pub fn store(&self) -> Option<&Arc<dyn KeyStore>> {
        self.store.as_ref()
    }

    /// Checks the key a call carries for `model_address` (as the client wrote it: an address or
    /// an alias): present, known, not revoked or expired (401), allowed to call the model
    /// (403), with budget left (429 `insufficient_quota`) and within its requests per minute
    /// (429 `rate_limit_exceeded`). Reserves no estimate: see [`Keys::authorize_chat`]. An
    /// empty `model_address` (a call that names no model, such as listing models) skips the
    /// model check.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        model_address: &str,
    ) -> Result<Caller, GatewayError> {
        self.authorize_with(headers, model_address, None, Decimal::ZERO, 0)
            .await
    }

    /// [`Keys::authorize`] for a chat call, also reserving its estimated cost against the
    /// key's budget and its estimated tokens against the key's tokens per minute. Settle with
    /// [`Keys::settle_usage`] (or [`Keys::settle`]) after the call, whatever its outcome.
    pub async fn authorize_chat(
        &self,
        headers: &HeaderMap,
        model_address: &str,
        request: &ChatRequest,
        exllm: &ExLLM,
    ) -> Result<Caller, GatewayError> {
        let (cost, tokens) = estimate(exllm, model_address, request);
        // A key may list the alias the client used or the address it stands for.
        let resolved = exllm
            .resolve(model_address)
            .ok()
            .map(|target| format!("{}/{}", target.provider, target.model));
        self.authorize_with(headers, model_address, resolved.as_deref(), cost, tokens)
            .await
    }

    async fn authorize_with(
        &self,
        headers: &HeaderMap,
        model_address: &str,
        resolved_address: Option<&str>,
        estimate_usd: Decimal,
        estimate_tokens: u64,
    ) -> Result<Caller, GatewayError> {
        let Some(master_hash) = &self.master_hash else {
            return Ok(Caller::anonymous());
        };
        let Some(presented) = presented_key(headers) else {
            return Err(unauthorized(
                "You didn't provide an API key. Send it as `Authorization: Bearer KEY` or \
                 `x-api-key: KEY`.",
            ));
        };
        let hash = sha256(presented);
        if constant_time_eq(&hash, master_hash) {
            return Ok(Caller {
                admin: true,
                ..Caller::default()
            });
        }
        let key = self.find(&hash).await?;
        if key.revoked {
            return Err(unauthorized("This API key has been revoked."));
        }
        if key.is_expired(now_ms()) {
            return Err(unauthorized("This API key has expired."));
        }
        let allowed = model_address.is_empty()
            || key.allows(model_address)
            || resolved_address.is_some_and(|address| key.allows(address));
        if !allowed {
            return Err(GatewayError {
                status: 403,
                kind: Some(ErrorKind::Auth),
                message: format!("This API key is not allowed to use model `{model_address}`."),
                code: Some("model_not_allowed".to_owned()),
            });
        }

        if let Some(rpm) = key.requests_per_minute {
            self.take(&format!("key:{}:rpm", key.id), 1, rpm, "requests")
                .await?;
        }
        let mut caller = Caller {
            key_id: Some(key.id.clone()),
            tokens_per_minute: key.tokens_per_minute,
            ..Caller::default()
        };
        if let Some(tpm) = key.tokens_per_minute {
            // At least one token, so an exhausted bucket refuses even a call with no estimate.
            let tokens = estimate_tokens.clamp(1, tpm);
            self.take(&format!("key:{}:tpm", key.id), tokens, tpm, "tokens")
                .await?;
            caller.reserved_tokens = tokens;
        }

        match self.reserve(&key.id, estimate_usd).await {
            Ok(()) => {
                caller.reserved_usd = estimate_usd;
                Ok(caller)
            }
            Err(err) => {
                // Refused calls do not count against the token limit.
                self.give_back_tokens(&caller).await;
                Err(err)
            }
        }
    }

    /// Settles a call's actual cost against the key's budget (replacing what was reserved).
    /// Failures are logged, not returned: the call already happened.
    pub async fn settle(&self, caller: &Caller, cost_usd: Decimal) {
        self.settle_usage(caller, cost_usd, None).await;
    }

    /// [`Keys::settle`], also settling the key's tokens per minute with the call's actual
    /// `usage` when known.
    pub async fn settle_usage(&self, caller: &Caller, cost_usd: Decimal, usage: Option<&Usage>) {
        let (Some(id), Some(store)) = (&caller.key_id, &self.store) else {
            return;
        };
        let delta = cost_usd - caller.reserved_usd;
        if !delta.is_zero()
            && let Err(err) = store.add_spend(id, delta).await
        {
            tracing::warn!(key_id = %id, error = %err.message(), "could not settle a key's spend");
        }
        if let (Some(tpm), Some(usage)) = (caller.tokens_per_minute, usage) {
            let actual = i64::try_from(usage.total_tokens()).unwrap_or(i64::MAX);
            let reserved = i64::try_from(caller.reserved_tokens).unwrap_or(i64::MAX);
            let delta = actual.saturating_sub(reserved);
            if delta != 0
                && let Err(err) = self
                    .limits
                    .settle(&format!("key:{id}:tpm"), delta, tpm, MINUTE)
                    .await
            {
                tracing::warn!(key_id = %id, error = %err.message(), "could not settle a key's tokens");
            }
        }
    }

    /// Checks that `headers` carry the master key (the admin endpoints).
    pub fn require_admin(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        let Some(master_hash) = &self.master_hash else {
            return Err(GatewayError {
                status: 403,
                kind: Some(ErrorKind::Auth),
                message: "The admin endpoints need a master key: set EXLLM_MASTER_KEY.".to_owned(),
                code: Some("permission_denied".to_owned()),
            });
        };
        match presented_key(headers) {
            Some(key) if constant_time_eq(&sha256(key), master_hash) => Ok(()),
            Some(_) => Err(GatewayError {
                status: 403,
                kind: Some(ErrorKind::Auth),
                message: "The admin endpoints need the master key.".to_owned(),
                code: Some("permission_denied".to_owned()),
            }),
            None => Err(unauthorized(
                "You didn't provide an API key. Send the master key as `Authorization: Bearer KEY`.",
            )),
        }
    }

    /// Creates a virtual key from `spec`: the stored record and the secret key, which exists
    /// only in this answer.
    pub async fn create(&self, spec: NewKey) -> Result<(VirtualKey, Secret), GatewayError> {
        let store = self.require_store()?;
        let secret = format!("{KEY_PREFIX}{}", hex(&random_bytes::<32>()?));
        let id = format!("key_{}", hex(&random_bytes::<12>()?));
        let now = now_ms();
        let mut key = VirtualKey::new(id, spec.name, hex(&sha256(&secret)));
        key.budget_usd = spec.budget_usd;
        key.requests_per_minute = spec.requests_per_minute;
        key.tokens_per_minute = spec.tokens_per_minute;
        key.allowed_models = spec.allowed_models;
        key.expires_at_ms = spec.expires_at_ms;
        key.created_at_ms = now;
        store
            .create(key.clone())
            .await
            .map_err(|e| GatewayError::from(&e))?;
        Ok((key, Secret::new(secret)))
    }

    async fn find(&self, hash: &[u8; 32]) -> Result<VirtualKey, GatewayError> {
        let store = match &self.store {
            Some(store) => store,
            None => return Err(unauthorized("Incorrect API key provided.")),
        };
        let hash_hex = hex(hash);
        let found = store
            .find_by_hash(&hash_hex)
            .await
            .map_err(|e| store_error(&e))?;
        match found {
            // The store looked the hash up by equality; compare again in constant time so that
            // no backend's comparison timing matters.
            Some(key) if constant_time_eq(key.hash.as_bytes(), hash_hex.as_bytes()) => Ok(key),
            _ => Err(unauthorized("Incorrect API key provided.")),
        }
    }

    async fn reserve(&self, id: &str, amount: Decimal) -> Result<(), GatewayError> {
        let store = self.require_store()?;
        match store
            .reserve(id, amount.max(Decimal::ZERO))
            .await
            .map_err(|e| store_error(&e))?
        {
            Reservation::Reserved(_) => Ok(()),
            Reservation::Exceeded(_) => Err(GatewayError {
                status: 429,
                kind: Some(ErrorKind::BudgetExceeded),
                message: "This API key has exceeded its budget (or this call's estimated cost \
                          would exceed it)."
                    .to_owned(),
                code: Some("insufficient_quota".to_owned()),
            }),
            Reservation::Missing => Err(unauthorized("Incorrect API key provided.")),
        }
    }

    async fn take(
        &self,
        bucket: &str,
        amount: u64,
        limit: u64,
        what: &str,
    ) -> Result<(), GatewayError> {
        match self
            .limits
            .acquire(bucket, amount, limit, MINUTE)
            .await
            .map_err(|e| store_error(&e))?
        {
            Acquire::Granted => Ok(()),
            Acquire::Wait(wait) => {
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(GatewayError {
                    status: 429,
                    kind: Some(ErrorKind::RateLimited),
                    message: format!(
                        "Rate limit reached for this API key: {limit} {what} per minute. \
                         Please retry after {secs}s."
                    ),
                    code: Some("rate_limit_exceeded".to_owned()),
                })
            }
        }
    }

    async fn give_back_tokens(&self, caller: &Caller) {
        if let (Some(id), Some(tpm)) = (&caller.key_id, caller.tokens_per_minute)
            && caller.reserved_tokens > 0
        {
            let back = -i64::try_from(caller.reserved_tokens).unwrap_or(i64::MAX);
            let _ = self
                .limits
                .settle(&format!("key:{id}:tpm"), back, tpm, MINUTE)
                .await;
        }
    }

    fn require_store(&self) -> Result<&Arc<dyn KeyStore>, GatewayError> {
        self.store.as_ref().ok_or_else(|| GatewayError {
            status: 503,
            kind: Some(ErrorKind::Config),
            message: "Virtual keys need a master key (EXLLM_MASTER_KEY) and a database.".to_owned(),
            code: Some("keys_unavailable".to_owned()),
        })
    }
}

/// The shared limit store the settings name: Redis when `redis_url` is set.
#[cfg(feature = "redis")]
fn shared_limits(
    settings: &crate::config::Settings,
) -> exllm_core::Result<Option<Arc<dyn RateLimitStore>>> {
    Ok(settings
        .redis_url
        .as_ref()
        .map(|url| Arc::new(crate::lazy::LazyRedis::new(url.clone())) as Arc<dyn RateLimitStore>))
}

/// This build has no Redis: a configured `redis_url` is an error, not ignored.
#[cfg(not(feature = "redis"))]
fn shared_limits(
    settings: &crate::config::Settings,
) -> exllm_core::Result<Option<Arc<dyn RateLimitStore>>> {
    match &settings.redis_url {
        Some(_) => Err(exllm_core::Error::config(
            "redis_url is set but this build of ExLLM has no Redis support (the `redis` feature)",
        )),
        None => Ok(None),
    }
}

/// A key to create, as the admin endpoint's body describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewKey {
    /// A human name.
    pub name: String,
    /// The budget in USD; `None` unlimited.
    pub budget_usd: Option<Decimal>,
    /// Requests per minute; `None` unlimited.
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute; `None` unlimited.
    pub tokens_per_minute: Option<u64>,
    /// Allowed model addresses or aliases; empty allows all.
    pub allowed_models: Vec<String>,
    /// Expiry in milliseconds since the Unix epoch; `None` never.
    pub expires_at_ms: Option<u64>,
}

impl NewKey {
    /// A key named `name` with no budget, limits, model list or expiry.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// The body of `POST /admin/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    /// A JSON number or a decimal string, kept exact.
    #[serde(default)]
    budget_usd: Option<Value>,
    #[serde(default)]
    requests_per_minute: Option<u64>,
    #[serde(default)]
    tokens_per_minute: Option<u64>,
    #[serde(default)]
    allowed_models: Vec<String>,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default)]
    ttl_secs: Option<u64>,
}

impl CreateBody {
    fn into_spec(self) -> Result<NewKey, GatewayError> {
        let budget_usd = match self.budget_usd {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(parse_usd(&n.to_string())?),
            Some(Value::String(s)) => Some(parse_usd(&s)?),
            Some(_) => {
                return Err(bad_request(
                    "`budget_usd` must be a number or a decimal string",
                ));
            }
        };
        if self.expires_at.is_some() && self.ttl_secs.is_some() {
            return Err(bad_request("give `expires_at` or `ttl_secs`, not both"));
        }
        for (field, value) in [
            ("requests_per_minute", self.requests_per_minute),
            ("tokens_per_minute", self.tokens_per_minute),
        ] {
            if value == Some(0) {
                return Err(bad_request(&format!(
                    "`{field}` must be at least 1 (leave it out for no limit)"
                )));
            }
        }
        let expires_at_ms = match (self.expires_at, self.ttl_secs) {
            (Some(at), _) => Some(at.saturating_mul(1000)),
            (None, Some(ttl)) => Some(now_ms().saturating_add(ttl.saturating_mul(1000))),
            (None, None) => None,
        };
        Ok(NewKey {
            name: self.name.unwrap_or_default(),
            budget_usd,
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            allowed_models: self.allowed_models,
            expires_at_ms,
        })
    }
}

fn parse_usd(text: &str) -> Result<Decimal, GatewayError> {
    let value: Decimal = text
        .trim()
        .parse()
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(|_| bad_request("`budget_usd` is not a decimal number"))?;
    if value.is_sign_negative() {
        return Err(bad_request("`budget_usd` must not be negative"));
    }
    Ok(value.normalize())
}

/// The admin endpoints: `POST /admin/keys`, `GET /admin/keys`, `DELETE /admin/keys/{id}`.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/admin/keys", get(list_keys).post(create_key))
        .route("/admin/keys/{id}", delete(revoke_key))
}

async fn create_key(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let result = async {
        state.keys.require_admin(&headers)?;
        let body: CreateBody = serde_json::from_slice(&body)
            .map_err(|e| bad_request(&format!("invalid request body: {e}")))?;
        let (key, secret) = state.keys.create(body.into_spec()?).await?;
        let mut view = key_view(&key);
        if let Value::Object(map) = &mut view {
            map.insert("key".to_owned(), Value::String(secret.expose().to_owned()));
        }
        Ok::<_, GatewayError>((StatusCode::CREATED, Json(view)).into_response())
    }
    .await;
    result.unwrap_or_else(error_response)
}

async fn list_keys(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let result = async {
        state.keys.require_admin(&headers)?;
        let keys = state
            .keys
            .require_store()?
            .list()
            .await
            .map_err(|e| store_error(&e))?;
        let data: Vec<Value> = keys.iter().map(key_view).collect();
        Ok::<_, GatewayError>(Json(json!({"object": "list", "data": data})).into_response())
    }
    .await;
    result.unwrap_or_else(error_response)
}

async fn revoke_key(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        state.keys.require_admin(&headers)?;
        let existed = state
            .keys
            .require_store()?
            .revoke(&id)
            .await
            .map_err(|e| store_error(&e))?;
        if !existed {
            return Err(GatewayError {
                status: 404,
                kind: Some(ErrorKind::NotFound),
                message: format!("No key with id `{id}`."),
                code: Some("key_not_found".to_owned()),
            });
        }
        Ok(Json(json!({"id": id, "object": "key", "revoked": true})).into_response())
    }
    .await;
    result.unwrap_or_else(error_response)
}

/// A key as the admin endpoints show it: never the key or its hash.
fn key_view(key: &VirtualKey) -> Value {
    json!({
        "id": key.id,
        "object": "key",
        "name": key.name,
        "budget_usd": key.budget_usd.map(|d| d.normalize().to_string()),
        "spent_usd": key.spent_usd.normalize().to_string(),
        "requests_per_minute": key.requests_per_minute,
        "tokens_per_minute": key.tokens_per_minute,
        "allowed_models": key.allowed_models,
        "expires_at": key.expires_at_ms.map(|ms| ms / 1000),
        "revoked": key.revoked,
        "created_at": key.created_at_ms / 1000,
    })
}

/// An admin error in the OpenAI error shape.
fn error_response(err: GatewayError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match err.status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        _ => "api_error",
    };
    let body = json!({"error": {
        "message": err.message,
        "type": kind,
        "param": null,
        "code": err.code,
    }});
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// The estimated cost and tokens of `request` on `model_address`: prompt tokens estimated
/// from the text, output at `max_tokens` (else the model's maximum output, else
/// `DEFAULT_OUTPUT_ESTIMATE`), at the catalogue's prices. An unpriced or unknown model costs
/// zero here; its actual cost (if any) is settled after the call.
pub fn estimate(exllm: &ExLLM, model_address: &str, request: &ChatRequest) -> (Decimal, u64) {
    let input = exllm_core::facade::estimate_prompt_tokens(request);
    let Ok(target) = exllm.resolve(model_address) else {
        return (Decimal::ZERO, input);
    };
    let model = exllm.catalogue().get(&target.provider, &target.model);
    let output = request
        .max_tokens
        .or_else(|| model.and_then(|m| m.max_output_tokens))
        .map_or(DEFAULT_OUTPUT_ESTIMATE, u64::from);
    let usage = Usage::new(input, output);
    let cost = exllm
        .catalogue()
        .pricing(&target.provider, &[&target.model])
        .map_or(Decimal::ZERO, |pricing| {
            Cost::compute(&usage, &pricing).total_usd
        });
    (cost, usage.total_tokens())
}

/// The key a request carries: `Authorization: Bearer KEY`, else `x-api-key: KEY`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    bearer
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|key| !key.is_empty())
}

fn unauthorized(message: &str) -> GatewayError {
    GatewayError {
        status: 401,
        kind: Some(ErrorKind::Auth),
        message: message.to_owned(),
        code: Some("invalid_api_key".to_owned()),
    }
}

fn bad_request(message: &str) -> GatewayError {
    GatewayError {
        status: 400,
        kind: Some(ErrorKind::InvalidRequest),
        message: message.to_owned(),
        code: None,
    }
}

/// A key-store or limit-store failure: the gateway cannot check the key, so it refuses.
fn store_error(err: &exllm_core::Error) -> GatewayError {
    tracing::error!(error = %err.message(), "the key store failed");
    GatewayError {
        status: 503,
        kind: Some(err.kind()),
        message: "The key store is unavailable; please retry.".to_owned(),
        code: Some("keys_unavailable".to_owned()),
    }
}

fn sha256(text: &str) -> [u8; 32] {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_slice());
    out
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// `N` bytes from the operating system's CSPRNG.
fn random_bytes<const N: usize>() -> Result<[u8; N], GatewayError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| {
        GatewayError::new(500, "the operating system's random number generator failed")
    })?;
    Ok(out)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_key_reads_bearer_then_x_api_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), None);
        headers.insert("x-api-key", "k2".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("k2"));
        headers.insert(header::AUTHORIZATION, "Bearer  k1 ".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("k1"));
    }

    #[test]
    fn hashes_are_hex_sha256_and_compare_exactly() {
        assert_eq!(
            hex(&sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn budgets_parse_exactly() {
        assert_eq!(parse_usd("0.10").unwrap().to_string(), "0.1");
        assert!(parse_usd("-1").is_err());
        assert!(parse_usd("abc").is_err());
    }

    #[tokio::test]
    async fn without_a_master_key_everyone_is_anonymous() {
        let keys = Keys::new(None, None);
        let caller = keys
            .authorize(&HeaderMap::new(), "mock/echo")
            .await
            .unwrap();
        assert_eq!(caller, Caller::anonymous());
        assert_eq!(caller.extension(), None);
    }
}
