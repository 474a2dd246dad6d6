//! anthropic adapter tests against shared/fixtures (being built).
