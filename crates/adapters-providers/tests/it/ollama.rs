//! ollama adapter tests against shared/fixtures (being built).
