//! The `flowstate` binary's library half: what the binary serves, reachable from integration tests.
//!
//! The command line itself lives in `main.rs` and `cli/` (binary only).

pub mod web;
