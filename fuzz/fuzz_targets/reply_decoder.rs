#![no_main]
//! See `dialect::fuzzing::reply_decoder` for the invariants checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    dialect::fuzzing::reply_decoder(data);
});
