//! Context windows: token counting and fitting strategies (being built).
