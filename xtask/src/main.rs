//! `cargo xtask`: ExLLM's quality gates (`ci`, `arch`) and generators (`catalogue`).

mod arch;
mod catalogue;
mod ci;
mod tidy;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Every xtask failure is a message for the person at the terminal.
pub type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  catalogue [--input PATH] [--output PATH] [--providers openai,anthropic,...] [--date YYYY-MM-DD]
            regenerate crates/core/data/models.json from the LiteLLM price database
            (default input: ../shared/data/model-prices.json next to the workspace)
  ci [--skip step,...]
            every gate, stopping at the first failure: fmt, clippy, tests (incl. arch/tidy),
            doctests, docs, deny (licenses bans sources), catalogue (freshness)
  arch      check the architecture invariants (DESIGN.md section 2) and the tidy rules
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let outcome = match command.as_str() {
        "catalogue" => catalogue::Options::parse(rest).and_then(|o| catalogue::write(&o)),
        "ci" => ci::parse_skip(rest).and_then(|skip| ci::run(workspace_root(), &skip)),
        "arch" => no_options(rest).and_then(|()| arch_and_tidy(workspace_root())),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}").into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn no_options(rest: &[String]) -> Result<()> {
    match rest.first() {
        None => Ok(()),
        Some(arg) => Err(format!("unexpected argument `{arg}`\n\n{USAGE}").into()),
    }
}

/// Runs both structural checks and reports every violation, not just the first.
fn arch_and_tidy(root: &Path) -> Result<()> {
    let mut violations = arch::check(root)?;
    violations.extend(tidy::check(root)?);
    if violations.is_empty() {
        println!("arch: all invariants hold; tidy: clean");
        Ok(())
    } else {
        for v in &violations {
            eprintln!("  - {v}");
        }
        Err(format!("{} architecture/tidy violation(s)", violations.len()).into())
    }
}

/// The workspace root: the parent of this crate's folder.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
}

/// The cargo that runs us (so `cargo +toolchain xtask` stays on that toolchain).
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}
