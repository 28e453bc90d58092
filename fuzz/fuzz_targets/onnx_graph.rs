//! The ONNX reader (`onnx::read::parse`): see `tandem_fuzz::checks::onnx_graph` for the input
//! and what is checked.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tandem_fuzz::checks::onnx_graph(data);
});
