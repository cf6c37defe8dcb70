//! What several integration tests share. Each test file that needs it says `mod common;` and
//! uses the parts it needs.

#![allow(dead_code)]

pub mod child;
pub mod model;

/// The seed of a seeded test: `$MEMENTO_SEED` (decimal, or hex with `0x`), else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    match std::env::var("MEMENTO_SEED") {
        Ok(s) => {
            let s = s.trim();
            s.strip_prefix("0x").map_or_else(|| s.parse(), |h| u64::from_str_radix(h, 16)).expect("MEMENTO_SEED must be a number")
        }
        Err(_) => default,
    }
}
