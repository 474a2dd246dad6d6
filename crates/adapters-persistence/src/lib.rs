//! ExLLM's persistence adapters: where conversations (and, later, the usage ledger and keys)
//! are kept. Each store implements a core port.

pub mod memory;

pub use memory::InMemoryStore;

#[cfg(test)]
mod tests;
