//! ExLLM's composition root: reads `exllm.toml` and the environment, wires concrete adapters
//! into the [`exllm_core::ExLLM`] facade, and (feature `cli`) runs the `exllm` command.
//!
//! This is the only crate that reads environment variables or files and the only one that
//! installs a tracing subscriber.

pub mod config;
pub mod lazy;
pub mod output;
pub mod wiring;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "server")]
pub mod gateway;
#[cfg(feature = "cli")]
pub mod history;

pub use config::{Environment, Settings};
pub use wiring::{Wired, build, from_env};

/// Builds an [`exllm_core::ExLLM`] from the environment: `ExLLM::from_env()`.
pub trait FromEnv: Sized {
    /// Reads `exllm.toml` (when present) and the standard variables (`OPENAI_API_KEY`,
    /// `OPENAI_BASE_URL`, `EXLLM_DEFAULT_MODEL`, …) and registers every configured provider
    /// plus `mock`.
    fn from_env() -> exllm_core::Result<Self>;
}

impl FromEnv for exllm_core::ExLLM {
    fn from_env() -> exllm_core::Result<Self> {
        wiring::from_env()
    }
}

#[cfg(test)]
mod tests;
