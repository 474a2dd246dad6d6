//! limits_cache tests (being built).
