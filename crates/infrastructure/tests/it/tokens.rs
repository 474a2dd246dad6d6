//! tokens tests (being built).
