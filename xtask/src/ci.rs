//! `cargo xtask ci`: every quality gate in order, stopping at the first failure.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Result, cargo, catalogue};

/// How a step ended.
#[derive(Debug)]
enum Outcome {
    Passed,
    Skipped(String),
    Failed(String),
}

/// A named gate.
type Step<'a> = (&'static str, Box<dyn Fn() -> Outcome + 'a>);

/// The step names, in order, for `--skip`.
pub const STEPS: &[&str] = &["fmt", "clippy", "tests", "docs", "deny", "catalogue"];

/// Parses `--skip step,step` (for local runs; CI runs every step).
pub fn parse_skip(args: &[String]) -> Result<Vec<String>> {
    match args {
        [] => Ok(Vec::new()),
        [flag, list] if flag == "--skip" => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                if STEPS.contains(&s) {
                    Ok(s.to_owned())
                } else {
                    Err(format!("unknown ci step `{s}` (steps: {})", STEPS.join(", ")).into())
                }
            })
            .collect(),
        _ => Err("usage: cargo xtask ci [--skip step,step]".into()),
    }
}

/// Runs the gates except `skip`; prints a summary either way.
pub fn run(root: &Path, skip: &[String]) -> Result<()> {
    let steps: Vec<Step<'_>> = vec![
        (
            "fmt",
            Box::new(|| cargo_step(root, &["fmt", "--all", "--", "--check"], &[])),
        ),
        (
            "clippy",
            Box::new(|| {
                let args = [
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ];
                cargo_step(root, &args, &[])
            }),
        ),
        // Exactly the test command README.md gives, so CI proves what a new user runs.
        (
            "tests",
            Box::new(|| cargo_step(root, &["test", "--workspace", "--all-features"], &[])),
        ),
        (
            "docs",
            Box::new(|| {
                let args = ["doc", "--workspace", "--no-deps", "--all-features"];
                cargo_step(root, &args, &[("RUSTDOCFLAGS", "-D warnings")])
            }),
        ),
        ("deny", Box::new(|| deny(root))),
        ("catalogue", Box::new(|| freshness(root))),
    ];

    let mut report: Vec<(&str, Outcome, Duration)> = Vec::new();
    let mut failed = false;
    for (name, step) in &steps {
        debug_assert!(STEPS.contains(name));
        if skip.iter().any(|s| s == name) {
            report.push((name, Outcome::Skipped("--skip".into()), Duration::ZERO));
            continue;
        }
        if failed {
            report.push((
                name,
                Outcome::Skipped("an earlier step failed".into()),
                Duration::ZERO,
            ));
            continue;
        }
        println!("\n==> xtask ci: {name}");
        let started = Instant::now();
        let outcome = step();
        failed = matches!(outcome, Outcome::Failed(_));
        report.push((name, outcome, started.elapsed()));
    }

    println!("\n==> xtask ci: summary");
    for (name, outcome, took) in &report {
        let secs = took.as_secs_f64();
        match outcome {
            Outcome::Passed => println!("  ok       {name:<22} {secs:>7.1}s"),
            Outcome::Skipped(why) => println!("  skipped  {name:<22}          ({why})"),
            Outcome::Failed(why) => println!("  FAILED   {name:<22} {secs:>7.1}s  {why}"),
        }
    }
    if failed {
        Err("ci failed".into())
    } else {
        println!("ci passed");
        Ok(())
    }
}

/// Licences, bans and sources; advisories need the network and are left to the hosted CI.
fn deny(root: &Path) -> Outcome {
    if !has_subcommand(root, "deny") {
        println!("skipped: cargo-deny not installed (cargo install --locked cargo-deny)");
        return Outcome::Skipped("cargo-deny not installed".into());
    }
    cargo_step(root, &["deny", "check", "licenses", "bans", "sources"], &[])
}

/// Regenerates the catalogue (same date and providers as the committed one) and compares bytes.
fn freshness(root: &Path) -> Outcome {
    let input = catalogue::default_input();
    if !input.exists() {
        let why = format!("{} absent", input.display());
        println!("skipped: {why}");
        return Outcome::Skipped(why);
    }
    match check_freshness(root, &input) {
        Ok(()) => {
            println!("crates/core/data/models.json is up to date");
            Outcome::Passed
        }
        Err(e) => {
            eprintln!("{e}");
            Outcome::Failed("catalogue is stale: run `cargo xtask catalogue`".into())
        }
    }
}

fn check_freshness(root: &Path, input: &Path) -> Result<()> {
    let committed_path = catalogue::default_output();
    let committed = std::fs::read_to_string(&committed_path)
        .map_err(|e| format!("cannot read {}: {e}", committed_path.display()))?;
    let defaults = catalogue::Options::defaults();
    let (date, providers) =
        catalogue::recorded_options(&committed).unwrap_or((defaults.date, defaults.providers));
    let fresh = catalogue::generate(&catalogue::read(input)?, &providers, &date)?;
    let temp = std::env::temp_dir().join(format!("exllm-models-{}.json", std::process::id()));
    std::fs::write(&temp, &fresh)?;
    if fresh == committed {
        let _ = std::fs::remove_file(&temp);
        return Ok(());
    }
    let first = fresh
        .lines()
        .zip(committed.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| fresh.lines().count().min(committed.lines().count()));
    Err(format!(
        "{} differs from a fresh generation ({}) from line {}:\n  committed: {}\n  generated: {}\n\
         (diff with `diff {} {}`)",
        committed_path
            .strip_prefix(root)
            .unwrap_or(&committed_path)
            .display(),
        temp.display(),
        first + 1,
        committed.lines().nth(first).unwrap_or("<end of file>"),
        fresh.lines().nth(first).unwrap_or("<end of file>"),
        committed_path.display(),
        temp.display(),
    )
    .into())
}

/// Whether `cargo <name>` exists (`cargo-<name>` on the PATH).
fn has_subcommand(root: &Path, name: &str) -> bool {
    Command::new(cargo())
        .args([name, "--version"])
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn cargo_step(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    println!("$ cargo {}", args.join(" "));
    let mut command = Command::new(cargo());
    command.args(args).current_dir(root);
    for (key, value) in env {
        command.env(key, value);
    }
    match command.status() {
        Ok(status) if status.success() => Outcome::Passed,
        Ok(status) => Outcome::Failed(format!("`cargo {}` exited with {status}", args.join(" "))),
        Err(e) => Outcome::Failed(format!("cannot run cargo: {e}")),
    }
}
