//! gateway anthropic (being built).
