//! gateway openai (being built).
