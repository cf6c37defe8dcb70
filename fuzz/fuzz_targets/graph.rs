//! cargo-fuzz target: see `memento_fuzz_checks::graph` for the property it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memento_fuzz_checks::graph(data));
