//! The architecture invariants of DESIGN.md §2, checked over `cargo metadata` and `cargo tree`.
//!
//! Only the dependency graph is read (no compilation), so these checks run even while a crate
//! does not build.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use crate::{Result, cargo};

/// The domain crate.
pub const CORE: &str = "exllm-core";
/// The composition root.
pub const APP: &str = "exllm-app";
/// The umbrella crate library users depend on.
pub const UMBRELLA: &str = "exllm";
/// Adapter crates: each depends on core and its technology, never on another adapter.
pub const ADAPTERS: &[&str] = &["exllm-adapters-providers", "exllm-adapters-persistence"];

/// Runtime and IO crates `exllm-core` must not pull in (as normal or build dependencies).
pub const FORBIDDEN_IN_CORE: &[&str] = &[
    "reqwest",
    "hyper",
    "sqlx",
    "redis",
    "axum",
    "tracing-subscriber",
    "config",
    "tokio",
];
/// Crates only the composition root may depend on directly: it alone reads configuration and
/// installs the tracing subscriber.
pub const APP_ONLY: &[&str] = &["config", "clap", "tracing-subscriber"];
/// Crates a library user who enables only `openai` must not compile.
pub const NOT_IN_LEAN_UMBRELLA: &[&str] = &["axum", "clap", "sqlx", "redis"];

/// Every violated invariant, as a sentence; empty when the architecture holds.
pub fn check(root: &Path) -> Result<Vec<String>> {
    let metadata = Metadata::load(root)?;
    let mut violations = Vec::new();
    violations.extend(core_is_pure(&metadata)?);
    violations.extend(adapters_are_independent(&metadata)?);
    violations.extend(app_only_dependencies(&metadata));
    violations.extend(layers(&metadata));
    violations.extend(lean_umbrella(root)?);
    Ok(violations)
}

/// `exllm-core`'s normal/build dependency closure holds no runtime or IO crate.
pub fn core_is_pure(metadata: &Metadata) -> Result<Vec<String>> {
    let paths = metadata.closure(CORE)?;
    Ok(FORBIDDEN_IN_CORE
        .iter()
        .filter_map(|name| {
            paths.get(*name).map(|path| {
                format!(
                    "{CORE} must not depend on `{name}` (DESIGN §2: core does no IO), \
                     but it does via {}",
                    path.join(" -> ")
                )
            })
        })
        .collect())
}

/// No adapter crate depends on another, directly (any kind) or transitively.
pub fn adapters_are_independent(metadata: &Metadata) -> Result<Vec<String>> {
    let mut violations = Vec::new();
    for adapter in ADAPTERS {
        let closure = metadata.closure(adapter)?;
        let direct = metadata.direct_dependencies(adapter, true);
        for other in ADAPTERS.iter().filter(|o| *o != adapter) {
            if let Some(path) = closure.get(*other) {
                violations.push(format!(
                    "adapters must not depend on each other: {}",
                    path.join(" -> ")
                ));
            } else if direct.contains(*other) {
                violations.push(format!(
                    "adapters must not depend on each other: {adapter} has a dev-dependency on {other}"
                ));
            }
        }
    }
    Ok(violations)
}

/// Only `exllm-app` names `config`, `clap` or `tracing-subscriber` as a (non-dev) dependency.
pub fn app_only_dependencies(metadata: &Metadata) -> Vec<String> {
    let mut violations = Vec::new();
    for member in metadata.members() {
        if member.name == APP {
            continue;
        }
        for dep in &member.dependencies {
            if dep.kind.as_deref() != Some("dev") && APP_ONLY.contains(&dep.name.as_str()) {
                violations.push(format!(
                    "only {APP} may depend on `{}` (it alone reads config and installs the \
                     tracing subscriber), but {} does",
                    dep.name, member.name
                ));
            }
        }
    }
    violations
}

/// The crate layering: core depends on no workspace crate; nothing but the umbrella depends
/// on the composition root.
pub fn layers(metadata: &Metadata) -> Vec<String> {
    let workspace: BTreeSet<&str> = metadata.members().map(|p| p.name.as_str()).collect();
    let mut violations = Vec::new();
    for member in metadata.members() {
        for dep in &member.dependencies {
            let name = dep.name.as_str();
            if !workspace.contains(name) || dep.kind.as_deref() == Some("dev") {
                continue;
            }
            if member.name == CORE {
                violations.push(format!(
                    "{CORE} is the innermost crate and must not depend on {name}"
                ));
            }
            if name == APP && member.name != UMBRELLA {
                violations.push(format!(
                    "only the umbrella `{UMBRELLA}` may depend on {APP}, but {} does",
                    member.name
                ));
            }
        }
    }
    violations
}

/// `exllm --no-default-features --features openai` compiles none of axum, clap, sqlx, redis.
pub fn lean_umbrella(root: &Path) -> Result<Vec<String>> {
    let args = [
        "tree",
        "-p",
        UMBRELLA,
        "--no-default-features",
        "--features",
        "openai",
        "-e",
        "normal,build",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ];
    let output = Command::new(cargo())
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo {}` failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let crates = tree_crates(&stdout);
    Ok(NOT_IN_LEAN_UMBRELLA
        .iter()
        .filter(|name| crates.contains(**name))
        .map(|name| {
            format!(
                "`{UMBRELLA}` with only the `openai` feature must not compile `{name}` \
                 (see `cargo tree -p {UMBRELLA} --no-default-features --features openai -i {name}`)"
            )
        })
        .collect())
}

/// Crate names in `cargo tree --prefix none --format {p}` output (`name vX.Y.Z (source)`).
pub fn tree_crates(output: &str) -> BTreeSet<String> {
    output
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The parts of `cargo metadata --format-version 1` the checks read.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
    resolve: Resolve,
}

#[derive(Debug, Deserialize)]
struct Package {
    id: String,
    name: String,
    dependencies: Vec<Dependency>,
}

#[derive(Debug, Deserialize)]
struct Dependency {
    name: String,
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
struct Node {
    id: String,
    deps: Vec<NodeDep>,
}

#[derive(Debug, Deserialize)]
struct NodeDep {
    pkg: String,
    dep_kinds: Vec<DepKind>,
}

#[derive(Debug, Deserialize)]
struct DepKind {
    kind: Option<String>,
}

impl Metadata {
    /// Runs `cargo metadata --format-version 1` in `root`.
    pub fn load(root: &Path) -> Result<Self> {
        let output = Command::new(cargo())
            .args(["metadata", "--format-version", "1"])
            .current_dir(root)
            .output()
            .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "cargo metadata failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Self::parse(&output.stdout)
    }

    /// Parses `cargo metadata` JSON.
    pub fn parse(json: &[u8]) -> Result<Self> {
        serde_json::from_slice(json).map_err(|e| format!("unexpected cargo metadata: {e}").into())
    }

    fn members(&self) -> impl Iterator<Item = &Package> {
        self.packages
            .iter()
            .filter(|p| self.workspace_members.contains(&p.id))
    }

    fn member(&self, name: &str) -> Result<&Package> {
        self.members()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("workspace member `{name}` not found").into())
    }

    /// Names `name` declares as dependencies (dev ones too when `with_dev`).
    fn direct_dependencies(&self, name: &str, with_dev: bool) -> BTreeSet<String> {
        self.members()
            .filter(|p| p.name == name)
            .flat_map(|p| &p.dependencies)
            .filter(|d| with_dev || d.kind.as_deref() != Some("dev"))
            .map(|d| d.name.clone())
            .collect()
    }

    /// Every package reachable from workspace member `name` over normal and build edges, each
    /// with a shortest path of package names from `name` to it.
    ///
    /// The resolve is workspace-wide, so features another member turns on count too: the check
    /// errs on the strict side, as a `cargo build --workspace` would compile it that way.
    fn closure(&self, name: &str) -> Result<BTreeMap<String, Vec<String>>> {
        let names: BTreeMap<&str, &str> = self
            .packages
            .iter()
            .map(|p| (p.id.as_str(), p.name.as_str()))
            .collect();
        let nodes: BTreeMap<&str, &Node> = self
            .resolve
            .nodes
            .iter()
            .map(|n| (n.id.as_str(), n))
            .collect();
        let start = self.member(name)?.id.as_str();
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(id) = queue.pop_front() {
            let Some(node) = nodes.get(id) else { continue };
            for dep in &node.deps {
                let runtime = dep
                    .dep_kinds
                    .iter()
                    .any(|k| k.kind.as_deref() != Some("dev"));
                if runtime && dep.pkg != start && !parent.contains_key(dep.pkg.as_str()) {
                    parent.insert(dep.pkg.as_str(), id);
                    queue.push_back(dep.pkg.as_str());
                }
            }
        }
        let name_of = |id: &str| names.get(id).copied().unwrap_or(id).to_owned();
        Ok(parent
            .keys()
            .map(|id| {
                let mut path = vec![name_of(id)];
                let mut at = *id;
                while let Some(up) = parent.get(at) {
                    path.push(name_of(up));
                    at = up;
                }
                path.reverse();
                (name_of(id), path)
            })
            .collect())
    }
}
