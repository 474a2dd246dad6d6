//! Tests of the public API as a user sees it: the facade with the mock provider and the
//! in-memory store.

mod conversations;
mod facade;
