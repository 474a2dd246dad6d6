//! cache middleware (being built).
