//! xtask's tests, including the architecture and tidy checks `cargo test --workspace` runs.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::{arch, catalogue, tidy, workspace_root};

#[test]
fn architecture_invariants_hold() {
    let violations = arch::check(workspace_root()).expect("cargo metadata / cargo tree run");
    assert!(
        violations.is_empty(),
        "DESIGN §2 invariants violated:\n  - {}",
        violations.join("\n  - ")
    );
}

#[test]
fn source_tree_is_tidy() {
    let violations = tidy::check(workspace_root()).expect("source tree readable");
    assert!(
        violations.is_empty(),
        "tidy violations:\n  - {}",
        violations.join("\n  - ")
    );
}

/// A workspace where core reaches tokio through a helper crate and the providers adapter
/// depends on the persistence adapter: the checks must name both, with the path.
#[test]
fn arch_checks_report_violations_with_their_path() {
    let id = |name: &str| format!("registry+https://example#{name}@1.0.0");
    let ws = |name: &str| format!("path+file:///ws/{name}#{name}@0.1.0");
    let edge = |pkg: String, kind: Value| json!({"name": "x", "pkg": pkg, "dep_kinds": [{"kind": kind, "target": null}]});
    let package = |pid: String, name: &str, deps: Value| json!({"id": pid, "name": name, "dependencies": deps});
    let metadata = json!({
        "packages": [
            package(ws("exllm-core"), "exllm-core", json!([
                {"name": "helper", "kind": null},
                {"name": "clap", "kind": "dev"}
            ])),
            package(ws("exllm-adapters-providers"), "exllm-adapters-providers", json!([
                {"name": "exllm-adapters-persistence", "kind": null},
                {"name": "config", "kind": null}
            ])),
            package(ws("exllm-adapters-persistence"), "exllm-adapters-persistence", json!([])),
            package(id("helper"), "helper", json!([])),
            package(id("tokio"), "tokio", json!([])),
            package(id("mockall"), "mockall", json!([])),
        ],
        "workspace_members": [ws("exllm-core"), ws("exllm-adapters-providers"), ws("exllm-adapters-persistence")],
        "resolve": {"nodes": [
            {"id": ws("exllm-core"), "deps": [edge(id("helper"), Value::Null), edge(id("mockall"), json!("dev"))]},
            {"id": id("helper"), "deps": [edge(id("tokio"), Value::Null)]},
            {"id": id("mockall"), "deps": []},
            {"id": id("tokio"), "deps": []},
            {"id": ws("exllm-adapters-providers"), "deps": [edge(ws("exllm-adapters-persistence"), Value::Null)]},
            {"id": ws("exllm-adapters-persistence"), "deps": []},
        ]}
    });
    let metadata = arch::Metadata::parse(metadata.to_string().as_bytes()).unwrap();

    let core = arch::core_is_pure(&metadata).unwrap();
    assert_eq!(core.len(), 1, "{core:?}");
    assert!(
        core[0].contains("exllm-core -> helper -> tokio"),
        "{core:?}"
    );

    let adapters = arch::adapters_are_independent(&metadata).unwrap();
    assert_eq!(adapters.len(), 1, "{adapters:?}");
    assert!(
        adapters[0].contains("exllm-adapters-providers -> exllm-adapters-persistence"),
        "{adapters:?}"
    );

    // A dev-dependency on clap is fine; a normal one on config outside the app is not.
    let app_only = arch::app_only_dependencies(&metadata);
    assert_eq!(app_only.len(), 1, "{app_only:?}");
    assert!(app_only[0].contains("`config`") && app_only[0].contains("exllm-adapters-providers"));
}

#[test]
fn tree_output_is_read_as_crate_names() {
    let output = "exllm v0.1.0 (/w/crates/exllm)\nserde v1.0.200\nserde v1.0.200\n\naxum v0.8.0\n";
    let crates = arch::tree_crates(output);
    assert_eq!(
        crates.into_iter().collect::<Vec<_>>(),
        ["axum", "exllm", "serde"]
    );
}

#[test]
fn tidy_flags_missing_module_docs_and_placeholders_outside_tests() {
    let todo = concat!("todo", "!()");
    let file = format!("//! A module.\nfn a() {{ {todo} }}\n// {todo} in a comment is fine\n");
    let found = tidy::check_file("crates/x/src/a.rs", &file);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("crates/x/src/a.rs:2:"), "{found:?}");

    let missing = tidy::check_file("crates/x/src/b.rs", "use std::fmt;\n");
    assert_eq!(missing.len(), 1);
    assert!(missing[0].contains("`//!`"));

    let inline_tests = format!("//! M.\n#[cfg(test)]\nmod tests {{ fn t() {{ {todo} }} }}\n");
    assert!(tidy::check_file("crates/x/src/c.rs", &inline_tests).is_empty());
    let test_file = format!("//! Tests.\nfn t() {{ {todo} }}\n");
    assert!(tidy::check_file("crates/x/src/tests.rs", &test_file).is_empty());
    assert!(tidy::check_file("crates/x/tests/it/main.rs", &test_file).is_empty());
}

#[test]
fn prices_convert_exactly_from_the_json_text() {
    let cases = [
        ("1.5e-07", "0.15"),
        ("7.5e-08", "0.075"),
        ("2.5e-08", "0.025"),
        ("1.1e-06", "1.1"),
        ("1.5625e-05", "15.625"),
        ("5e-09", "0.005"),
        ("1E-7", "0.1"),
        ("1e+00", "1000000"),
        ("0.0", "0"),
        ("0", "0"),
        ("0.000168", "168"),
        ("3", "3000000"),
    ];
    for (text, per_mtok) in cases {
        let got = catalogue::per_million(catalogue::decimal_from_json_number(text).unwrap());
        assert_eq!(got.to_string(), per_mtok, "{text}");
    }
    for bad in ["-1e-07", "\"1e-07\"", "true", "", "1e-07x"] {
        assert!(
            catalogue::decimal_from_json_number(bad).is_err(),
            "{bad} should be rejected"
        );
    }
}

const SAMPLE: &str = r#"{
    "sample_spec": {"litellm_provider": "one of", "max_tokens": "LEGACY", "mode": "one of"},
    "gpt-b": {
        "litellm_provider": "openai", "mode": "chat",
        "input_cost_per_token": 1.1e-06, "output_cost_per_token": 4.4e-06,
        "cache_read_input_token_cost": 2.75e-07, "cache_creation_input_token_cost": 1.375e-06,
        "output_cost_per_reasoning_token": 4.4e-06,
        "max_input_tokens": 200000, "max_output_tokens": 100000, "max_tokens": 100000,
        "supports_function_calling": true, "supports_vision": true,
        "supports_reasoning": true, "supports_response_schema": true
    },
    "gpt-a-2025-01-01": {
        "litellm_provider": "openai", "mode": "chat",
        "input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07,
        "output_cost_per_reasoning_token": 1.2e-06, "max_tokens": 16384
    },
    "text-embedding-x": {
        "litellm_provider": "openai", "mode": "embedding",
        "input_cost_per_token": 2e-08, "output_cost_per_token": 0.0, "max_input_tokens": 8191
    },
    "gpt-rosalind-research": {
        "litellm_provider": "openai", "mode": "chat",
        "input_cost_per_token": 5e-06, "output_cost_per_token": 2.5e-05
    },
    "ft:gpt-b": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
    "gpt-b-audio-preview": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
    "gpt-b-search-preview": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
    "gpt-b-realtime": {"litellm_provider": "openai", "mode": "realtime", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
    "gpt-image-9": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
    "gpt-unpriced": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06},
    "azure/gpt-b": {"litellm_provider": "azure", "mode": "chat", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06},
    "groq/llama-x": {"litellm_provider": "groq", "mode": "chat", "input_cost_per_token": 5.9e-07, "output_cost_per_token": 7.9e-07, "max_tokens": 8192}
}"#;

#[test]
fn generator_selects_converts_and_orders_models() {
    let providers = vec!["openai".to_owned()];
    let text = catalogue::generate(SAMPLE, &providers, "2026-01-02").unwrap();
    assert!(text.ends_with("}\n") && !text.ends_with("\n\n"));
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        file["source"],
        "LiteLLM model price database (MIT licence): litellm 1.108.7 \
         model_prices_and_context_window_backup.json, generated 2026-01-02 by \
         `cargo xtask catalogue --providers openai`"
    );
    let ids: Vec<&str> = file["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "gpt-a-2025-01-01",
            "gpt-b",
            "gpt-rosalind-research",
            "text-embedding-x"
        ]
    );
    let models = &file["models"];
    assert_eq!(
        models[1],
        json!({
            "provider": "openai", "id": "gpt-b", "kind": "chat",
            "context_window": 200000, "max_output_tokens": 100000,
            "pricing": {
                "input_per_mtok": "1.1", "output_per_mtok": "4.4",
                "cached_input_per_mtok": "0.275", "cache_write_per_mtok": "1.375"
            },
            "capabilities": {"tools": true, "vision": true, "reasoning": true, "json_schema": true, "embeddings": false}
        }),
        "reasoning equal to output is left out"
    );
    assert_eq!(
        models[0],
        json!({
            "provider": "openai", "id": "gpt-a-2025-01-01", "kind": "chat",
            "context_window": 16384,
            "pricing": {"input_per_mtok": "0.15", "output_per_mtok": "0.6", "reasoning_per_mtok": "1.2"},
            "capabilities": {"tools": false, "vision": false, "reasoning": false, "json_schema": false, "embeddings": false}
        }),
        "context window falls back to max_tokens; a distinct reasoning price is kept"
    );
    assert_eq!(
        models[3],
        json!({
            "provider": "openai", "id": "text-embedding-x", "kind": "embedding",
            "context_window": 8191,
            "pricing": {"input_per_mtok": "0.02", "output_per_mtok": "0"},
            "capabilities": {"tools": false, "vision": false, "reasoning": false, "json_schema": false, "embeddings": true}
        })
    );
    // Same input, same bytes.
    assert_eq!(
        text,
        catalogue::generate(SAMPLE, &providers, "2026-01-02").unwrap()
    );
}

#[test]
fn generator_takes_more_providers_and_strips_their_key_prefix() {
    let providers = catalogue::parse_providers("groq, openai,groq").unwrap();
    assert_eq!(providers, ["groq", "openai"]);
    let text = catalogue::generate(SAMPLE, &providers, "2026-01-02").unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["models"][0]["provider"], "groq");
    assert_eq!(file["models"][0]["id"], "llama-x");
    assert_eq!(file["models"][0]["pricing"]["input_per_mtok"], "0.59");
    assert_eq!(file["models"].as_array().unwrap().len(), 5);
    assert_eq!(
        catalogue::recorded_options(&text),
        Some(("2026-01-02".to_owned(), providers))
    );
    let unknown = catalogue::parse_providers("openai,nope")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unknown provider `nope`") && unknown.contains("anthropic"));
}

#[test]
fn excluded_variants_match_whole_name_parts() {
    for id in [
        "ft:gpt-4o-mini-2024-07-18",
        "gpt-4o-mini-audio-preview",
        "gpt-realtime",
        "gpt-4o-search-preview",
        "gpt-4o-mini-transcribe",
        "gpt-4o-mini-tts",
        "gpt-image-1",
        "chatgpt-image-latest",
    ] {
        assert!(catalogue::is_excluded(id), "{id}");
    }
    for id in [
        "gpt-4o-mini",
        "gpt-rosalind-research",
        "o4-mini-2025-04-16",
        "text-embedding-3-small",
    ] {
        assert!(!catalogue::is_excluded(id), "{id}");
    }
}

#[test]
fn dates_are_civil_utc() {
    assert_eq!(catalogue::civil_date(0), "1970-01-01");
    assert_eq!(catalogue::civil_date(11_016), "2000-02-29");
    assert_eq!(catalogue::civil_date(20_000), "2024-10-04");
    assert_eq!(catalogue::today().len(), 10);
}

/// The shipped catalogue, when generated, carries the prices the providers publish (spot checks
/// against https://platform.openai.com/docs/pricing).
#[test]
fn shipped_catalogue_spot_checks() {
    let path = catalogue::default_output();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let models = file["models"].as_array().unwrap();
    let price = |id: &str, field: &str| {
        let model = models
            .iter()
            .find(|m| m["provider"] == "openai" && m["id"] == id)
            .unwrap_or_else(|| panic!("openai/{id} missing from {}", path.display()));
        Decimal::from_str(model["pricing"][field].as_str().unwrap()).unwrap()
    };
    let d = |s: &str| Decimal::from_str(s).unwrap();
    assert_eq!(price("gpt-4o-mini", "input_per_mtok"), d("0.15"));
    assert_eq!(price("gpt-4o-mini", "cached_input_per_mtok"), d("0.075"));
    assert_eq!(price("gpt-4o-mini", "output_per_mtok"), d("0.6"));
    assert_eq!(price("gpt-4o-mini-2024-07-18", "input_per_mtok"), d("0.15"));
    assert_eq!(price("gpt-4.1-nano", "input_per_mtok"), d("0.1"));
    assert_eq!(price("gpt-4.1-nano", "cached_input_per_mtok"), d("0.025"));
    assert_eq!(price("gpt-4.1-nano", "output_per_mtok"), d("0.4"));
    assert_eq!(price("text-embedding-3-small", "input_per_mtok"), d("0.02"));
}
