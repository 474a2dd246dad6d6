//! tokens middleware (being built).
