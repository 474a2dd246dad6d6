//! House-style checks over the source tree (DESIGN.md §7): every Rust file opens with a `//!`
//! line saying what it is, and no placeholder macro ships outside tests.

use std::path::{Path, PathBuf};

use crate::Result;

/// The folders whose Rust files are checked, relative to the workspace root.
pub const CHECKED_DIRS: &[&str] = &["crates", "xtask"];

// Split so this file does not trip its own check.
const PLACEHOLDERS: &[&str] = &[concat!("todo", "!("), concat!("unimplemented", "!(")];

/// Every tidy violation under the checked folders, as `path:line: message`.
pub fn check(root: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for dir in CHECKED_DIRS {
        rust_files(&root.join(dir), &mut files)?;
    }
    files.sort();
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let shown = file.strip_prefix(root).unwrap_or(file);
        violations.extend(check_file(&shown.display().to_string(), &text));
    }
    Ok(violations)
}

/// The violations in one file's text; `path` is used for messages and to tell test code.
pub fn check_file(path: &str, text: &str) -> Vec<String> {
    let mut violations = Vec::new();
    if !text.starts_with("//!") {
        violations.push(format!(
            "{path}:1: every Rust file opens with a `//!` line saying what it is"
        ));
    }
    if is_test_file(path) {
        return violations;
    }
    for (number, line) in text.lines().enumerate() {
        let code = line.trim_start();
        // Inline test modules sit at the end of a file, so the rest of it is test code.
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        for placeholder in PLACEHOLDERS {
            if code.contains(placeholder) {
                violations.push(format!(
                    "{path}:{}: `{placeholder})` outside tests",
                    number + 1
                ));
            }
        }
    }
    violations
}

/// Test-only files: `tests.rs`, anything under `tests/` or `benches/`.
fn is_test_file(path: &str) -> bool {
    let parts: Vec<&str> = path.split(['/', '\\']).collect();
    parts.last() == Some(&"tests.rs")
        || parts[..parts.len().saturating_sub(1)]
            .iter()
            .any(|p| *p == "tests" || *p == "benches")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display()).into()),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            rust_files(&path, out)?;
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}
