//! gateway ops (being built).
