//! `exllm models`, `exllm providers`, `exllm config check`.

use crate::{exllm, stdout_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_lists_the_catalogue_with_prices() {
    let out = exllm(&["models", "--provider", "openai", "--json"], &[], None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let models = stdout_json(&out);
    let mini = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "gpt-4o-mini")
        .expect("gpt-4o-mini in the catalogue");
    assert_eq!(mini["pricing"]["input_per_mtok"], "0.15");
    assert_eq!(mini["pricing"]["output_per_mtok"], "0.6");
    let table = exllm(&["models"], &[], None).await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("openai/gpt-4o-mini") && text.contains("mock/"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_says_what_is_configured() {
    let out = exllm(&["providers", "--json"], &[("OPENAI_API_KEY", "x")], None).await;
    let rows = stdout_json(&out);
    let openai = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "openai")
        .unwrap();
    assert_eq!(openai["configured"], true);
    let out = exllm(&["providers"], &[], None).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("set OPENAI_API_KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_prints_every_problem() {
    let dir = std::env::temp_dir().join(format!("exllm-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "default_model = \"x\"\nbogus = 1\n[defaults]\ntemperature = 9\n",
    )
    .unwrap();
    let p = path.to_string_lossy().to_string();
    let out = exllm(&["config", "check", "--json", "--config", &p], &[], None).await;
    assert!(!out.status.success());
    let v = stdout_json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"].as_array().unwrap().len(), 3, "{v}");
    let good = exllm(&["config", "check"], &[], None).await;
    assert!(good.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_explains() {
    let out = exllm(&["chat", "--help"], &[], None).await;
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--model",
        "--system",
        "--stream",
        "--json",
        "--temperature",
        "--max-tokens",
    ] {
        assert!(text.contains(flag), "{flag} missing in:\n{text}");
    }
}
