//! gateway keys (being built).
