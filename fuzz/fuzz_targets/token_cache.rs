//! The per-token cache (`tokens.v3`) on damaged files: see
//! `tandem_fuzz::checks::TokenCacheCheck` for the input format and what is checked.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tandem_fuzz::checks::TokenCacheCheck;

fuzz_target!(|data: &[u8]| {
    static CHECK: OnceLock<TokenCacheCheck> = OnceLock::new();
    CHECK
        .get_or_init(|| TokenCacheCheck::new(&tandem_fuzz::scratch_dir("token_cache")))
        .check(data);
});
