//! `exllm chat` under provider faults: the CLI retries by default, like the official SDKs.

use std::time::Instant;

use exllm_infrastructure::testing::{FixtureServer, Scripted};

use crate::{exllm, fixture, stdout_json};

async fn chat_against(script: Vec<Scripted>) -> (std::process::Output, FixtureServer) {
    let server = FixtureServer::start(script).await;
    let base = format!("{}/v1", server.url());
    let out = exllm(
        &["chat", "--json", "-m", "openai/gpt-4o-mini", "hi"],
        &[
            ("OPENAI_API_KEY", "x"),
            ("OPENAI_BASE_URL", &base),
            ("EXLLM_DATABASE_URL", "memory://"),
        ],
        None,
    )
    .await;
    (out, server)
}

fn ok() -> Scripted {
    Scripted::json(200, fixture("openai/chat-completion-text-gpt41nano.json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_then_200_succeeds_after_the_wait() {
    let started = Instant::now();
    let limited = Scripted::json(
        429,
        fixture("openai/error-429-rate-limit-exceeded-tpm.json"),
    )
    .header("retry-after", "1");
    let (out, server) = chat_against(vec![limited, ok()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A lower bound only: the retry waited at least what the provider asked for.
    assert!(started.elapsed().as_millis() >= 1000);
    assert_eq!(server.request_count(), 2);
    assert_eq!(stdout_json(&out)["usage"]["output_tokens"], 363);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_500s_then_200_succeeds() {
    let failing = || Scripted::json(500, fixture("openai/error-500-server-error.json"));
    let (out, server) = chat_against(vec![failing(), failing(), ok()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.request_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_529_then_200_succeeds() {
    let overloaded = Scripted::json(529, fixture("anthropic/error-529-overloaded.json"));
    let (out, server) = chat_against(vec![overloaded, ok()]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.request_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_429_fails_at_once() {
    let quota = Scripted::json(429, fixture("openai/error-429-insufficient-quota.json"));
    let (out, server) = chat_against(vec![quota, ok()]).await;
    assert!(!out.status.success());
    assert_eq!(stdout_json(&out)["error"]["kind"], "quota_exhausted");
    assert_eq!(server.request_count(), 1, "quota errors are never retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_is_a_typed_error_not_a_panic() {
    let reset = || Scripted::reset_after(Vec::<Vec<u8>>::new());
    let (out, _server) = chat_against(vec![reset(), reset(), reset()]).await;
    assert!(!out.status.success());
    let err = stdout_json(&out);
    assert_eq!(err["error"]["kind"], "transport", "{err}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
