//! Tests of settings loading and wiring.

use std::io::Write;

use crate::config::{Environment, Settings};
use crate::wiring;

fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn file(contents: &str) -> tempfile_path::TempFile {
    tempfile_path::TempFile::new(contents)
}

/// A tiny temp-file helper so the tests need no extra crate.
mod tempfile_path {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static N: AtomicUsize = AtomicUsize::new(0);

    pub struct TempFile(pub PathBuf);

    impl TempFile {
        pub fn new(contents: &str) -> Self {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("exllm-test-{}-{n}.toml", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn standard_variables_configure_openai() {
    let s = Settings::load(
        None,
        &env(&[
            ("OPENAI_API_KEY", "sk-x"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:1/v1"),
        ]),
    )
    .unwrap();
    let p = s.provider("openai").unwrap();
    assert_eq!(p.api_key.as_ref().unwrap().expose(), "sk-x");
    assert_eq!(p.base_url.as_deref(), Some("http://127.0.0.1:1/v1"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let f = file(
        r#"
default_model = "no-slash"
colour = "blue"
[defaults]
temperature = 7.0
[http]
timeout_secs = 0
[providers.openai]
base_url = "ftp://example"
[aliases]
fast = "also-no-slash"
"#,
    );
    let (_, problems) = Settings::load_checked(Some(&f.0), &env(&[]));
    let all = problems.join("\n");
    for needle in [
        "default_model",
        "colour",
        "temperature",
        "timeout_secs",
        "base_url",
        "aliases.fast",
    ] {
        assert!(all.contains(needle), "missing {needle} in:\n{all}");
    }
    assert!(problems.len() >= 6, "{problems:?}");
}

#[test]
fn exllm_variables_override_the_file() {
    let f = file("default_model = \"openai/gpt-4o\"\n");
    let s = Settings::load(Some(&f.0), &env(&[("EXLLM_DEFAULT_MODEL", "mock/echo")])).unwrap();
    assert_eq!(s.default_model.as_deref(), Some("mock/echo"));
}

#[test]
fn a_missing_config_file_is_an_error() {
    let err = Settings::load(
        Some(std::path::Path::new("/nonexistent/exllm.toml")),
        &env(&[]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn sentinel_key_never_prints() {
    let sentinel = "sk-SENTINEL-4f1c2d9e";
    let f = file(&format!("[providers.openai]\napi_key = \"{sentinel}\"\n"));
    let e = env(&[("OPENAI_API_KEY", sentinel)]);
    let s = Settings::load(Some(&f.0), &e).unwrap();
    let wired = wiring::build(&s).unwrap();
    for text in [
        format!("{s:?}"),
        format!("{e:?}"),
        format!("{wired:?}"),
        format!("{:?}", wired.exllm),
    ] {
        assert!(!text.contains("SENTINEL"), "leaked: {text}");
    }
    let mut out = Vec::new();
    writeln!(out, "{s:?}").unwrap();
    assert!(!String::from_utf8(out).unwrap().contains(sentinel));
}

#[test]
fn no_key_falls_back_to_mock() {
    let s = Settings::load(None, &env(&[])).unwrap();
    let wired = wiring::build(&s).unwrap();
    assert!(wired.mock_fallback);
    assert_eq!(wired.exllm.default_model(), Some(wiring::MOCK_MODEL));
    let err = wired.check_address("openai/gpt-4o-mini").unwrap_err();
    assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}");
}

#[cfg(feature = "server")]
#[test]
fn the_gateway_refuses_to_expose_itself_without_a_master_key() {
    use crate::gateway::server::check_exposure;
    use exllm_core::Secret;

    let loopback = "127.0.0.1:4000".parse().unwrap();
    let v6_loopback = "[::1]:4000".parse().unwrap();
    let public = "0.0.0.0:4000".parse().unwrap();
    assert!(check_exposure(loopback, None).is_ok());
    assert!(check_exposure(v6_loopback, None).is_ok());
    let err = check_exposure(public, None).unwrap_err();
    assert!(err.to_string().contains("EXLLM_MASTER_KEY"), "{err}");
    assert!(
        check_exposure(public, Some(&Secret::new(""))).is_err(),
        "an empty key is no key"
    );
    assert!(check_exposure(public, Some(&Secret::new("master-key-123"))).is_ok());
}
