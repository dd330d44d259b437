#![no_main]
//! See `dialect::fuzzing::command_decoder` for the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    dialect::fuzzing::command_decoder(data);
});
