//! `exllm chat --conversation` across processes, and `exllm conversations …` / `exllm usage`,
//! against SQLite files and the real PostgreSQL.

use exllm_infrastructure::testing::{FixtureServer, Scripted};
use serde_json::{Value, json};

use crate::{exllm, fixture, stdout_json};

/// A fresh SQLite database URL in a temp directory of its own.
fn sqlite_url(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!("exllm-conv-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("exllm.db").display())
}

/// A PostgreSQL URL on a schema of its own, so runs never collide.
fn postgres_url(tag: &str) -> String {
    let base = std::env::var("EXLLM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema=exllm_cli_{}_{tag}", std::process::id())
}

async fn two_turns_then_show_list_delete(database_url: &str) {
    let body = fixture("openai/chat-completion-text-gpt41nano.json");
    let server = FixtureServer::start(vec![
        Scripted::json(200, body.clone()),
        Scripted::json(200, body),
    ])
    .await;
    let base = format!("{}/v1", server.url());
    let env = [
        ("OPENAI_API_KEY", "x"),
        ("OPENAI_BASE_URL", base.as_str()),
        ("EXLLM_DATABASE_URL", database_url),
    ];

    let first = exllm(
        &[
            "chat",
            "--json",
            "--conversation",
            "new",
            "-m",
            "openai/gpt-4o-mini",
            "--system",
            "Be brief.",
            "first",
        ],
        &env,
        None,
    )
    .await;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first = stdout_json(&first);
    let id = first["conversation_id"]
        .as_str()
        .expect("conversation_id")
        .to_owned();

    // A new process continues the conversation: the whole history goes upstream.
    let second = exllm(
        &["chat", "--json", "--conversation", &id, "second"],
        &env,
        None,
    )
    .await;
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(stdout_json(&second)["conversation_id"], json!(id));
    let sent = server.requests()[1].body_json().unwrap();
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(sent["messages"][3]["content"], "second");

    let show = exllm(&["conversations", "show", &id, "--json"], &env, None).await;
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let show = stdout_json(&show);
    let roles: Vec<&str> = show["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
    assert_eq!(show["usage"]["input_tokens"], 32);
    assert_eq!(show["usage"]["output_tokens"], 726);
    assert_eq!(show["cost"]["total_usd"], "0.0002936");

    let list = stdout_json(&exllm(&["conversations", "list", "--json"], &env, None).await);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == json!(id)),
        "{list}"
    );

    // The ledger saw both calls; its total equals the responses' costs.
    let usage = stdout_json(&exllm(&["usage", "--json", "--by", "model"], &env, None).await);
    assert_eq!(usage["total_cost_usd"], "0.0002936", "{usage}");

    let export = exllm(&["conversations", "export", &id], &env, None).await;
    let doc: Value = stdout_json(&export);
    assert_eq!(doc["format"], "exllm.conversation.v1");

    let deleted = exllm(&["conversations", "delete", &id, "--json"], &env, None).await;
    assert!(deleted.status.success());
    let gone = exllm(&["conversations", "show", &id, "--json"], &env, None).await;
    assert!(!gone.status.success());
    assert_eq!(stdout_json(&gone)["error"]["kind"], "not_found");

    // Import brings it back whole.
    let path =
        std::env::temp_dir().join(format!("exllm-export-{}-{}.json", std::process::id(), id));
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    let imported = exllm(
        &["conversations", "import", path.to_str().unwrap(), "--json"],
        &env,
        None,
    )
    .await;
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert_eq!(stdout_json(&imported)["messages"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_persists_across_processes_in_sqlite() {
    two_turns_then_show_list_delete(&sqlite_url("two-turns")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_persists_across_processes_in_postgres() {
    let url = postgres_url("two_turns");
    two_turns_then_show_list_delete(&url).await;
    // Leave nothing behind in the shared database.
    exllm_adapters_persistence::PostgresStore::connect(&url)
        .await
        .unwrap()
        .drop_schema()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error() {
    let db = sqlite_url("bad-input");
    let env = [("EXLLM_DATABASE_URL", db.as_str())];
    let unknown = exllm(
        &["conversations", "show", "conv_nope", "--json"],
        &env,
        None,
    )
    .await;
    assert_eq!(stdout_json(&unknown)["error"]["kind"], "not_found");
    assert!(
        stdout_json(&unknown)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("conv_nope")
    );

    let corrupt = std::env::temp_dir().join(format!("exllm-corrupt-{}.json", std::process::id()));
    std::fs::write(&corrupt, "{\"id\": \"x\", \"provider\": \"mock\"").unwrap();
    let out = exllm(
        &[
            "conversations",
            "import",
            corrupt.to_str().unwrap(),
            "--json",
        ],
        &env,
        None,
    )
    .await;
    assert!(!out.status.success());
    assert_eq!(stdout_json(&out)["error"]["kind"], "decode");
    let list = stdout_json(&exllm(&["conversations", "list", "--json"], &env, None).await);
    assert_eq!(list, json!([]), "nothing written half-way");

    let scheme = exllm(
        &["conversations", "list", "--json"],
        &[("EXLLM_DATABASE_URL", "mysql://x")],
        None,
    )
    .await;
    assert!(!scheme.status.success());
    assert!(
        stdout_json(&scheme)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mysql")
    );
}
