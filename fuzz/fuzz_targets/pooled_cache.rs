//! The pooled embedding cache (`pooled.v2`) on damaged files: see
//! `tandem_fuzz::checks::PooledCacheCheck` for the input format and what is checked.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tandem_fuzz::checks::PooledCacheCheck;

fuzz_target!(|data: &[u8]| {
    static CHECK: OnceLock<PooledCacheCheck> = OnceLock::new();
    CHECK
        .get_or_init(|| PooledCacheCheck::new(&tandem_fuzz::scratch_dir("pooled_cache")))
        .check(data);
});
