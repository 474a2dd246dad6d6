//! timeout middleware (being built).
