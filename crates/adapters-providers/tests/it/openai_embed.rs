//! OpenAI embeddings: the request body checked against `CreateEmbeddingRequest` in
//! openapi.yaml, the reply (shaped as the spec's `CreateEmbeddingResponse` example, since no
//! recorded embeddings reply exists in `shared/fixtures/`) served over TCP, and the failures.

use std::sync::OnceLock;

use exllm_adapters_providers::openai::embed_body;
use exllm_adapters_providers::{OpenAiProvider, compatible};
use exllm_core::{ChatProvider, EmbedRequest, ErrorKind, Secret};
use exllm_infrastructure::http::{HttpConfig, HttpExecutor};
use exllm_infrastructure::testing::Scripted;
use jsonschema::Validator;
use serde_json::{Value, json};

use crate::fixtures::{KEY, fixture, serve};
use crate::openai_conformance::EMBEDDING_RESPONSE;

/// A validator for `CreateEmbeddingRequest`, built once from the 3 MB spec.
fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        // The spec bounds `seed` by an integer wider than 64 bits, which no JSON parser here
        // holds; written as a float it parses and means the same (as in openai_schema.rs).
        let yaml: String = fixture("openapi.yaml")
            .lines()
            .map(|line| {
                let value = line.rsplit_once(": ").map_or("", |(_, v)| v.trim());
                let digits = value.strip_prefix('-').unwrap_or(value);
                if digits.len() >= 19 && digits.bytes().all(|b| b.is_ascii_digit()) {
                    format!("{line}.0\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        let spec: Value = serde_yaml_ng::from_str(&yaml).expect("openapi.yaml");
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": "#/components/schemas/CreateEmbeddingRequest",
            "components": {"schemas": spec["components"]["schemas"].clone()},
        });
        jsonschema::draft202012::new(&root).expect("a validator for CreateEmbeddingRequest")
    })
}

fn check_schema(case: &str, body: &Value) {
    let errors: Vec<String> = validator()
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{case}: {errors:#?}\n{body:#}");
}

fn two_inputs() -> EmbedRequest {
    EmbedRequest::new(
        "text-embedding-3-small",
        vec!["first text".into(), "second text".into()],
    )
}

#[test]
fn request_bodies_fit_the_schema() {
    let body = embed_body(&two_inputs()).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "text-embedding-3-small",
            "input": ["first text", "second text"],
            "encoding_format": "float",
        })
    );
    check_schema("plain", &body);
    let body = embed_body(&two_inputs().dimensions(256)).unwrap();
    assert_eq!(body["dimensions"], json!(256));
    check_schema("dimensions", &body);
    // And the validator is not vacuous.
    for bad in [
        json!({"model": "m"}),
        json!({"model": "m", "input": ["x"], "encoding_format": "utf8"}),
        json!({"input": ["x"]}),
    ] {
        assert!(!validator().is_valid(&bad), "accepted {bad}");
    }
}

#[test]
fn empty_inputs_fail_before_any_io() {
    let err = embed_body(&EmbedRequest::new("m", vec![])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.field(), Some("inputs"));
    let err = embed_body(&EmbedRequest::new("m", vec!["a".into(), String::new()])).unwrap_err();
    assert_eq!(err.field(), Some("inputs[1]"));
}

#[tokio::test]
async fn the_reply_is_sorted_by_index_and_the_request_is_authenticated() {
    let (server, provider) = serve(vec![Scripted::json(200, EMBEDDING_RESPONSE)]).await;
    let response = provider.embed(two_inputs()).await.unwrap();
    assert_eq!(response.provider, "openai");
    assert_eq!(response.model, "text-embedding-ada-002");
    assert_eq!(
        response.embeddings,
        vec![
            vec![0.002_306_425_5_f32, -0.009_327_292, -0.002_884_222_2],
            vec![0.5, 0.25, -0.125],
        ]
    );
    assert_eq!(response.usage.input_tokens, 8);
    assert_eq!(response.usage.output_tokens, 0);
    assert!(response.cost.is_none(), "adapters do not price");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/embeddings");
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let body = requests[0].body_json().unwrap();
    check_schema("sent", &body);
    assert_eq!(body["input"], json!(["first text", "second text"]));
}

#[tokio::test]
async fn replies_that_do_not_match_the_inputs_are_decode_errors() {
    for (case, body) in [
        (
            "one vector for two inputs",
            r#"{"data":[{"index":0,"embedding":[1.0]}],"usage":{"prompt_tokens":1,"total_tokens":1}}"#,
        ),
        (
            "a repeated index",
            r#"{"data":[{"index":0,"embedding":[1.0]},{"index":0,"embedding":[2.0]}]}"#,
        ),
        (
            "base64 despite encoding_format",
            r#"{"data":[{"index":0,"embedding":"AACAPw=="},{"index":1,"embedding":"AACAPw=="}]}"#,
        ),
        (
            "a string among the floats",
            r#"{"data":[{"index":0,"embedding":[1.0,"x"]},{"index":1,"embedding":[1.0]}]}"#,
        ),
        ("no data", r#"{"object":"list"}"#),
    ] {
        let (_server, provider) = serve(vec![Scripted::json(200, body)]).await;
        let err = provider.embed(two_inputs()).await.expect_err(case);
        assert_eq!(err.kind(), ErrorKind::Decode, "{case}: {err:?}");
        assert_eq!(err.provider(), Some("openai"), "{case}");
        assert!(err.raw_body().is_some(), "{case}: {err:?}");
    }
}

#[tokio::test]
async fn http_errors_map_as_for_chat() {
    let (_server, provider) = serve(vec![Scripted::json(
        401,
        fixture("error-401-invalid-api-key.json"),
    )])
    .await;
    let err = provider.embed(two_inputs()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert_eq!(err.status(), Some(401));
    let (server, provider) = serve(vec![]).await;
    let err = provider
        .embed(EmbedRequest::new("m", vec![]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(
        server.request_count(),
        0,
        "nothing is sent for a bad request"
    );
}

#[tokio::test]
async fn compatible_services_embed_at_their_own_base_url() {
    let server = exllm_infrastructure::testing::FixtureServer::start(vec![Scripted::json(
        200,
        EMBEDDING_RESPONSE,
    )])
    .await;
    let mistral = compatible::service("mistral").unwrap();
    let config = mistral.config(
        Some(Secret::new(KEY)),
        Some(format!("{}/mistral/v1", server.url())),
    );
    let provider = OpenAiProvider::new(
        config,
        HttpExecutor::new(HttpConfig::default()).expect("an executor"),
    );
    let response = provider
        .embed(EmbedRequest::new(
            "mistral-embed",
            vec!["a".into(), "b".into()],
        ))
        .await
        .unwrap();
    assert_eq!(response.provider, "mistral");
    assert_eq!(response.embeddings.len(), 2);
    assert_eq!(server.requests()[0].path, "/mistral/v1/embeddings");
}
