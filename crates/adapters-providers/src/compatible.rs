//! Groq and the OpenAI-compatible family, as data (being built).
