//! End-to-end tests of the `exllm` binary: real processes, a fake provider over real TCP.

mod chat;
mod commands;
mod conversations;
mod gateway_anthropic;
mod gateway_keys;
mod gateway_openai;
mod providers;
mod resilience;

use std::path::PathBuf;
use std::process::Output;

/// The shared fixtures folder beside the checkout.
pub fn fixture(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// Runs `exllm` with exactly `env` (nothing inherited that could change the outcome) in an
/// empty working directory, off the async runtime.
pub async fn exllm(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let dir = std::env::temp_dir().join(format!("exllm-it-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_exllm"));
        // A home of its own, so the default database never lands in the real user's data dir.
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .current_dir(&dir)
            .args(&args)
            .timeout(std::time::Duration::from_secs(60));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.write_stdin(stdin.unwrap_or_default());
        cmd.output().unwrap()
    })
    .await
    .unwrap()
}

/// Stdout parsed as one JSON value.
pub fn stdout_json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON value ({e}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Re-frames a `.chunks.jsonl` recording (SSE framing stripped) as SSE with `[DONE]`.
pub fn jsonl_to_sse(jsonl: &str) -> String {
    let mut out = String::new();
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        out.push_str("data: ");
        out.push_str(line);
        out.push_str("\n\n");
    }
    out.push_str("data: [DONE]\n\n");
    out
}
