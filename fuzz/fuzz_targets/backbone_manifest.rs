//! The backbone manifest (`BackboneManifest::parse`): see `tandem_fuzz::checks::backbone_manifest`
//! for the input and what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tandem_fuzz::checks::backbone_manifest(data);
});
