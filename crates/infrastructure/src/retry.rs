//! retry middleware (being built).
