//! gateway server (being built).
