//! recorder middleware (being built).
