//! The trainer spec (`TrainerSpec::parse_json`): see `tandem_fuzz::checks::trainer_spec` for the
//! input and what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tandem_fuzz::checks::trainer_spec(data);
});
