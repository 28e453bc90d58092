//! The CSV reader (`data::parse_rows`, CSV): see `tandem_fuzz::checks::csv` for the input and what
//! is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tandem_fuzz::checks::csv(data);
});
