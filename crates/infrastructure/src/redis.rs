//! Redis backends (being built).
