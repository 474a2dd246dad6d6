//! ratelimit middleware (being built).
