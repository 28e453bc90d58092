//! The JSONL reader (`data::parse_rows`, JSONL): see `tandem_fuzz::checks::jsonl` for the input and
//! what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tandem_fuzz::checks::jsonl(data);
});
