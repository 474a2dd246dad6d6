//! placeholder being built
