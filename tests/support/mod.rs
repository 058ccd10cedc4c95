//! Test support shared by files under `tests/` that ask for it (not a test
//! crate of its own).
#![allow(dead_code)]

pub mod proxy;
pub mod redis;
