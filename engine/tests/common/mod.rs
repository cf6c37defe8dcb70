//! What several integration tests share. Each test file that needs it says `mod common;` and
//! uses the parts it needs.

#![allow(dead_code)]

pub mod model;
