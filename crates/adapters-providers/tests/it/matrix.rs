//! Every provider's conformance cases in one run, and the capability matrix of
//! `docs/providers.md` generated from the results (never hand-written).
//!
//! `EXLLM_UPDATE_DOCS=1 cargo test -p exllm-adapters-providers --all-features matrix` rewrites
//! the generated part of the file; without it, a stale file fails the test.

use exllm_adapters_providers::conformance::{self, Report};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/providers.md");
const BEGIN: &str =
    "<!-- BEGIN GENERATED MATRIX (cargo test -p exllm-adapters-providers matrix) -->";
const END: &str = "<!-- END GENERATED MATRIX -->";

async fn all_providers() -> Report {
    let mut report = Report::default();
    report.extend(
        conformance::run(
            "openai",
            crate::openai_conformance::provider,
            crate::openai_conformance::cases(),
        )
        .await,
    );
    report.extend(
        conformance::run(
            "anthropic",
            crate::anthropic::provider,
            crate::anthropic::cases(),
        )
        .await,
    );
    report
        .extend(conformance::run("gemini", crate::gemini::provider, crate::gemini::cases()).await);
    report
        .extend(conformance::run("ollama", crate::ollama::provider, crate::ollama::cases()).await);
    report.extend(conformance::run("groq", crate::groq::provider, crate::groq::cases()).await);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capability_matrix_in_docs_is_generated_from_the_suite() {
    let report = all_providers().await;
    report.assert_passed();
    let matrix = conformance::matrix(&report);
    let generated = format!("{BEGIN}\n{matrix}{END}");

    let current = std::fs::read_to_string(DOC).unwrap_or_default();
    let updated = match (current.find(BEGIN), current.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{generated}{}", &current[..b], &current[e + END.len()..])
        }
        _ => format!("{}\n{generated}\n", current.trim_end()),
    };
    if std::env::var_os("EXLLM_UPDATE_DOCS").is_some() {
        std::fs::write(DOC, &updated).unwrap();
    } else {
        assert!(
            current == updated,
            "docs/providers.md is stale: run `EXLLM_UPDATE_DOCS=1 cargo test -p exllm-adapters-providers --all-features matrix`\n\nexpected matrix:\n{matrix}"
        );
    }
}
