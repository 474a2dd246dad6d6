//! groq adapter tests against shared/fixtures (being built).
