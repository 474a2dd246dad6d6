//! breaker middleware (being built).
