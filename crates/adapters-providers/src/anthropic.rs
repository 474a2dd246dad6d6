//! Anthropic Messages wire format (being built).
