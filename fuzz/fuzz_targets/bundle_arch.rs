//! Bundles a trainer could write, with odd shapes, built by tandem from a fuzzed architecture:
//! see `tandem_fuzz::checks::bundle_arch` for the input and what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tandem_fuzz::checks::bundle_arch(data);
});
