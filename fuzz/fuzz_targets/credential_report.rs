//! The credential report parser on arbitrary bytes; the properties are in `../checks.rs`.
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::credential_report(data));
