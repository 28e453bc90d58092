//! The bundle loader (manifest and weights, checked against each other, then a prediction): see
//! `tandem_fuzz::checks::bundle` for the input and what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tandem_fuzz::checks::bundle(data);
});
