#![no_main]
//! See `dialect::fuzzing::panel_decompress` for the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    dialect::fuzzing::panel_decompress(data);
});
