//! resilience tests (being built).
