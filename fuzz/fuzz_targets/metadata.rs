//! The metadata extractor on arbitrary text: see `tandem_fuzz::checks::metadata` for the input and
//! what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tandem_fuzz::checks::metadata(data);
});
