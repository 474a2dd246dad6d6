//! fallback middleware (being built).
