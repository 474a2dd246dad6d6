//! Ollama native API wire format (being built).
