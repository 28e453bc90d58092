//! The C ABI's string and buffer arguments, called as a C host would (through the exported
//! `extern "C"` functions), with everything a host can get wrong short of breaking the
//! contract: invalid UTF-8, embedded NULs, lengths shorter than the buffer, NULL pointers with
//! any length, output buffers too small, too large or NULL, NULL handles.
//!
//! Each input is a sequence of calls on one options object. Every call must return, with the
//! result the contract gives (each expected error code is computed independently here), write
//! nothing on error, write no float past the `needed` ones, hand out only valid NUL-terminated
//! UTF-8, and never report a panic or an internal error. Strings are heap copies of exactly
//! their buffer (or, with `exact`, of exactly `len` bytes), so AddressSanitizer
//! (`scripts/fuzz.sh` builds this target with `--sanitizer address`) catches any read past
//! them. Nothing here needs a backbone: functions on handles are called with NULL handles, and
//! `tandem_ensemble_open` only where its code is known before anything would be loaded.

#![no_main]

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tandem::ffi::backbone::*;
use tandem::ffi::ensemble::*;
use tandem::ffi::error::*;
use tandem::ffi::info::*;
use tandem::ffi::metadata::*;
use tandem::ffi::model::*;
use tandem::ffi::options::*;
use tandem::ffi::predictions::*;
use tandem::ffi::pretrain::*;
use tandem::ffi::trainer::*;
use tandem::{BackboneOptions, Device, ErrorKind, Variant};

// The C error codes this target expects, as the header defines them (from the one list in
// src/error.rs).
const TANDEM_ERR_NULL_ARGUMENT: u32 = ErrorKind::NullArgument as u32;
const TANDEM_ERR_INVALID_UTF8: u32 = ErrorKind::InvalidUtf8 as u32;
const TANDEM_ERR_INVALID_ARGUMENT: u32 = ErrorKind::InvalidArgument as u32;
const TANDEM_ERR_BUFFER_TOO_SMALL: u32 = ErrorKind::BufferTooSmall as u32;
const TANDEM_ERR_PANIC: u32 = ErrorKind::Panic as u32;
const TANDEM_ERR_INTERNAL: u32 = ErrorKind::Internal as u32;

/// A `(ptr, len)` string argument.
#[derive(Debug, Arbitrary)]
struct Str {
    bytes: Vec<u8>,
    /// `len` is `cut` modulo the buffer's length plus one (with `null`: `cut` itself).
    cut: u16,
    /// Pass NULL (with `len = cut`): the empty string when `cut` is 0, else NULL_ARGUMENT.
    null: bool,
    /// Copy exactly `len` bytes into their own allocation.
    exact: bool,
}

/// A string argument made ready: its buffer (kept alive), pointer and length, and what the
/// library must see (`None`: NULL with a nonzero length).
struct Arg {
    _buf: Box<[u8]>,
    ptr: *const c_char,
    len: usize,
    seen: Option<Vec<u8>>,
}

impl Str {
    fn arg(&self) -> Arg {
        if self.null {
            let len = self.cut as usize;
            return Arg {
                _buf: Box::new([]),
                ptr: null(),
                len,
                seen: (len == 0).then(Vec::new),
            };
        }
        let len = self.cut as usize % (self.bytes.len() + 1);
        let buf: Box<[u8]> = if self.exact {
            self.bytes[..len].into()
        } else {
            self.bytes.clone().into_boxed_slice()
        };
        Arg {
            ptr: buf.as_ptr().cast(),
            len,
            seen: Some(self.bytes[..len].to_vec()),
            _buf: buf,
        }
    }
}

/// The code a `(ptr, len)` string argument gets before anything else is checked: NULL_ARGUMENT
/// for NULL with a length, INVALID_UTF8, or the string.
fn str_code(a: &Arg) -> Result<&str, u32> {
    match &a.seen {
        None => Err(TANDEM_ERR_NULL_ARGUMENT),
        Some(b) => std::str::from_utf8(b).map_err(|_| TANDEM_ERR_INVALID_UTF8),
    }
}

#[derive(Debug, Arbitrary)]
enum Cap {
    Exact,
    Less(u8),
    More(u8),
    Null(u8),
}

#[derive(Debug, Arbitrary)]
enum Batch {
    /// `texts` and `lens` arrays.
    Lens(Vec<Str>),
    /// `lens` NULL: NUL-terminated strings (cut at the first NUL or `cut`), `None` is NULL.
    Terminated(Vec<Option<(Vec<u8>, u16)>>),
    /// `texts` NULL with `n` texts (with `huge`: `usize::MAX - n`).
    Null(u8, bool),
}

#[derive(Debug, Arbitrary)]
enum Call {
    Variant(Str),
    Device(Str),
    OrtLibrary(Str),
    BackboneDir(Str),
    BackboneName(Str),
    Threads(u32),
    Batching(u32, u32),
    Extract(Batch, Cap),
    FeatureName(u16),
    CodeName(u32),
    /// Functions on handles, with a NULL handle and real strings: always NULL_ARGUMENT.
    NullHandle(u8, Str, Str),
    /// Accessors and frees with NULL, at any index.
    NullAccessors(u16, u16, u16),
    /// `tandem_ensemble_open` on a batch of directories, called only where the contract gives
    /// the code before anything is loaded (with `null_out`: a NULL out-pointer).
    EnsembleOpen(Batch, bool),
    /// `tandem_ensemble_new` on `n` NULL models (or a NULL array), with a NULL out-pointer or
    /// not.
    EnsembleNew(u8, bool, bool),
    /// `tandem_pretrain_encoder` on a batch of texts and a config (JSON or TOML text), with an
    /// output directory that is NULL (with a length) or empty: the code is known before any
    /// training (and the config is parsed before the directory is checked).
    Pretrain(Batch, Str, bool),
}

/// Checks an error object (NULL is success), returns its code and frees it.
fn take(e: *mut tandem_error) -> u32 {
    if e.is_null() {
        return 0;
    }
    // SAFETY: a live error from the library, freed once below.
    unsafe {
        let code = tandem_error_code(e);
        assert!((1..=16).contains(&code), "code {code}");
        assert!(
            code != TANDEM_ERR_PANIC && code != TANDEM_ERR_INTERNAL,
            "{code}: {}",
            c_str(tandem_error_message(e))
        );
        assert!(!c_str(tandem_error_message(e)).is_empty());
        assert_ne!(c_str(tandem_error_code_name(code)), "unknown");
        tandem_error_free(e);
        code
    }
}

/// A string the library returned: NUL-terminated UTF-8.
unsafe fn c_str<'a>(p: *const c_char) -> &'a str {
    assert!(!p.is_null());
    // SAFETY: the library returns NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .expect("the library returned invalid UTF-8")
}

fn code_of<T>(r: Result<T, tandem::Error>) -> u32 {
    r.map_or_else(|e| e.code(), |_| 0)
}

/// The expected code of a path setter: the string, and it must not be empty.
fn path_code(a: &Arg) -> u32 {
    match str_code(a) {
        Err(c) => c,
        Ok("") => TANDEM_ERR_INVALID_ARGUMENT,
        Ok(_) => 0,
    }
}

/// A batch of texts made ready: pointer and length arrays (kept alive), `n`, and the texts the
/// library must see, or the code it must fail with.
struct Texts {
    _bufs: Vec<Box<[u8]>>,
    _args: Vec<Arg>,
    ptrs: Vec<*const c_char>,
    lens: Option<Vec<usize>>,
    null_texts: bool,
    n: usize,
    expect: Result<Vec<String>, u32>,
}

impl Texts {
    fn new(b: &Batch) -> Texts {
        match b {
            Batch::Lens(strs) => {
                let args: Vec<Arg> = strs.iter().map(Str::arg).collect();
                let expect = args
                    .iter()
                    .map(|a| str_code(a).map(str::to_string))
                    .collect();
                Texts {
                    ptrs: args.iter().map(|a| a.ptr).collect(),
                    lens: Some(args.iter().map(|a| a.len).collect()),
                    n: args.len(),
                    _args: args,
                    _bufs: vec![],
                    null_texts: false,
                    expect,
                }
            }
            Batch::Terminated(items) => {
                let mut bufs = Vec::new();
                let mut ptrs = Vec::new();
                let mut expect = Ok(Vec::new());
                for item in items {
                    let Some((bytes, cut)) = item else {
                        ptrs.push(null());
                        if expect.is_ok() {
                            expect = Err(TANDEM_ERR_NULL_ARGUMENT);
                        }
                        continue;
                    };
                    let end = bytes
                        .iter()
                        .position(|&b| b == 0)
                        .unwrap_or(bytes.len())
                        .min(*cut as usize);
                    let mut buf = bytes[..end].to_vec();
                    buf.push(0);
                    let buf = buf.into_boxed_slice();
                    ptrs.push(buf.as_ptr().cast());
                    bufs.push(buf);
                    if let Ok(seen) = &mut expect {
                        match std::str::from_utf8(&bytes[..end]) {
                            Ok(s) => seen.push(s.to_string()),
                            Err(_) => expect = Err(TANDEM_ERR_INVALID_UTF8),
                        }
                    }
                }
                Texts {
                    n: ptrs.len(),
                    ptrs,
                    lens: None,
                    _bufs: bufs,
                    _args: vec![],
                    null_texts: false,
                    expect,
                }
            }
            Batch::Null(n, huge) => {
                let n = if *huge {
                    usize::MAX - *n as usize
                } else {
                    *n as usize
                };
                Texts {
                    _bufs: vec![],
                    _args: vec![],
                    ptrs: vec![],
                    lens: None,
                    null_texts: true,
                    n,
                    expect: if n == 0 {
                        Ok(vec![])
                    } else {
                        Err(TANDEM_ERR_NULL_ARGUMENT)
                    },
                }
            }
        }
    }

    fn texts(&self) -> *const *const c_char {
        if self.null_texts {
            null()
        } else {
            self.ptrs.as_ptr()
        }
    }

    fn lens(&self) -> *const usize {
        self.lens.as_ref().map_or(null(), |l| l.as_ptr())
    }
}

const SENTINEL: f32 = -1234.5;

/// `tandem_metadata_extract` on a batch, with an output buffer of the given capacity.
fn extract(batch: &Batch, cap: &Cap) {
    let t = Texts::new(batch);
    let f = tandem_metadata_feature_count();
    let needed = t.n.saturating_mul(f);
    let (cap, null_out) = match *cap {
        Cap::Exact => (needed, false),
        Cap::Less(d) => (needed.saturating_sub(d as usize + 1), false),
        Cap::More(d) => (needed.saturating_add(d as usize), false),
        Cap::Null(d) => (d as usize, true),
    };
    // What is passed is what is allocated (only a NULL `texts` can ask for more).
    let cap = cap.min(1 << 16);
    let mut out = vec![SENTINEL; if null_out { 0 } else { cap }].into_boxed_slice();
    let out_ptr = if null_out {
        null_mut()
    } else {
        out.as_mut_ptr()
    };
    let expect = match &t.expect {
        Err(c) => Err(*c),
        Ok(_) if needed == 0 => Ok(()),
        Ok(_) if null_out => Err(TANDEM_ERR_NULL_ARGUMENT),
        Ok(_) if cap < needed => Err(TANDEM_ERR_BUFFER_TOO_SMALL),
        Ok(_) => Ok(()),
    };
    // SAFETY: the arrays hold `n` entries (or `texts` is NULL), every string is readable for
    // its length (or NUL-terminated), and `out` holds `cap` floats (or is NULL).
    let code = take(unsafe { tandem_metadata_extract(t.texts(), t.lens(), t.n, out_ptr, cap) });
    assert_eq!(code, expect.err().unwrap_or(0), "{batch:?}");
    let bits = |xs: &[f32]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    match (&t.expect, code) {
        (Ok(texts), 0) => {
            for (i, text) in texts.iter().enumerate() {
                let row = &out[i * f..(i + 1) * f];
                assert_eq!(bits(row), bits(&tandem::metadata::extract(text)), "row {i}");
            }
            assert!(out[needed.min(out.len())..]
                .iter()
                .all(|&x| x.to_bits() == SENTINEL.to_bits()));
        }
        _ => assert!(
            out.iter().all(|&x| x.to_bits() == SENTINEL.to_bits()),
            "written on error"
        ),
    }
}

/// A function on a handle, called with a NULL handle and real strings or texts.
fn null_handle(which: u8, a: &Str, b: &Str) {
    let (a, b) = (a.arg(), b.arg());
    let texts = Texts::new(&Batch::Lens(vec![]));
    let dangling = std::ptr::NonNull::dangling().as_ptr();
    let mut out_ptr: *mut std::ffi::c_void = dangling;
    let mut out_str: *mut c_char = dangling.cast();
    let mut version = 77u64;
    let mut floats = [SENTINEL; 4];
    // SAFETY: NULL handles; strings readable for their lengths; out-pointers to live locals.
    let code = unsafe {
        match which % 27 {
            0 => tandem_model_load(null(), a.ptr, a.len, (&raw mut out_ptr).cast()),
            1 => tandem_trainer_new(null(), a.ptr, a.len, (&raw mut out_ptr).cast()),
            2 => tandem_trainer_add_example(null_mut(), a.ptr, a.len, b.ptr, b.len),
            3 => tandem_trainer_add_validation_example(null_mut(), a.ptr, a.len, b.ptr, b.len),
            4 => tandem_trainer_save(null(), a.ptr, a.len),
            5 => tandem_model_swap_bundle(null(), a.ptr, a.len, &mut version),
            6 => tandem_model_predict(
                null(),
                texts.texts(),
                texts.lens(),
                0,
                (&raw mut out_ptr).cast(),
            ),
            7 => tandem_backbone_embed(
                null(),
                texts.texts(),
                texts.lens(),
                0,
                floats.as_mut_ptr(),
                4,
            ),
            8 => tandem_model_manifest_json(null(), &mut out_str),
            9 => tandem_trainer_report_json(null(), &mut out_str),
            10 => tandem_model_swap_heads(null(), null(), &mut version),
            11 => tandem_predictions_json(null(), &mut out_str),
            12 => tandem_predictions_probabilities(null(), a.len, b.len, floats.as_mut_ptr(), 4),
            13 => tandem_predictions_value(null(), a.len, b.len, floats.as_mut_ptr()),
            14 => tandem_options_set_variant(null_mut(), a.ptr, a.len),
            15 => tandem_options_set_device(null_mut(), a.ptr, a.len),
            16 => tandem_options_set_ort_library(null_mut(), a.ptr, a.len),
            17 => tandem_options_set_backbone_dir(null_mut(), a.ptr, a.len),
            18 => tandem_options_set_threads(null_mut(), a.len as u32),
            19 => tandem_options_set_batching(null_mut(), a.len, b.len),
            20 => tandem_options_set_backbone_name(null_mut(), a.ptr, a.len),
            21 => tandem_model_predict_sampled(
                null(),
                texts.texts(),
                texts.lens(),
                0,
                a.len,
                b.len as u64,
                (&raw mut out_ptr).cast(),
            ),
            22 => tandem_predictions_spread(null(), a.len, b.len, floats.as_mut_ptr(), 4),
            23 => tandem_ensemble_predict(
                null(),
                texts.texts(),
                texts.lens(),
                0,
                (&raw mut out_ptr).cast(),
            ),
            24 => tandem_ensemble_predict_groups(
                null(),
                texts.texts(),
                texts.lens(),
                texts.texts(),
                texts.lens(),
                0,
                b.len as u32,
                (&raw mut out_ptr).cast(),
            ),
            25 => tandem_trainer_add_unlabelled(null_mut(), a.ptr, a.len),
            // A NULL out-pointer is refused before the options are read or anything is loaded.
            _ => tandem_backbone_load(null(), null_mut()),
        }
    };
    assert_eq!(take(code), TANDEM_ERR_NULL_ARGUMENT, "call {}", which % 27);
    assert_eq!(out_ptr, dangling);
    assert_eq!(out_str, dangling.cast());
    assert_eq!(version, 77);
    assert!(floats.iter().all(|x| x.to_bits() == SENTINEL.to_bits()));
}

/// `tandem_ensemble_open` on the directories `batch`, where the code is known without loading:
/// the batch's own error, a NULL out-pointer, no directories or an empty one.
fn ensemble_open(batch: &Batch, null_out: bool, options: *const tandem_options) {
    let t = Texts::new(batch);
    let expect = match &t.expect {
        Err(c) => *c,
        Ok(_) if null_out => TANDEM_ERR_NULL_ARGUMENT,
        Ok(dirs) if dirs.is_empty() || dirs.iter().any(String::is_empty) => {
            TANDEM_ERR_INVALID_ARGUMENT
        }
        // It would open bundles (from wherever the fuzzed paths point): not called.
        Ok(_) => return,
    };
    let dangling = std::ptr::NonNull::dangling().as_ptr();
    let mut out: *mut tandem_ensemble = dangling;
    let out_ptr = if null_out { null_mut() } else { &raw mut out };
    // SAFETY: the arrays hold `n` entries (or `dirs` is NULL), every string is readable for its
    // length (or NUL-terminated); `options` is live; `out_ptr` is NULL or a live local.
    let code = take(unsafe { tandem_ensemble_open(t.texts(), t.lens(), t.n, options, out_ptr) });
    assert_eq!(code, expect, "{batch:?}");
    assert_eq!(out, dangling, "written on error");
}

/// `tandem_ensemble_new` on `n` NULL models (or a NULL array): NULL_ARGUMENT, or with no
/// models INVALID_ARGUMENT (NULL_ARGUMENT for a NULL out-pointer).
fn ensemble_new(n: u8, null_array: bool, null_out: bool) {
    let models: Vec<*const tandem_model> = vec![null(); n as usize];
    let array = if null_array { null() } else { models.as_ptr() };
    let dangling = std::ptr::NonNull::dangling().as_ptr();
    let mut out: *mut tandem_ensemble = dangling;
    let out_ptr = if null_out { null_mut() } else { &raw mut out };
    let expect = if n == 0 && !null_out {
        TANDEM_ERR_INVALID_ARGUMENT
    } else {
        TANDEM_ERR_NULL_ARGUMENT
    };
    // SAFETY: `array` is NULL or holds `n` (NULL) model pointers; `out_ptr` is NULL or a live
    // local.
    let code = take(unsafe { tandem_ensemble_new(array, n as usize, out_ptr) });
    assert_eq!(
        code, expect,
        "n {n}, null array {null_array}, null out {null_out}"
    );
    assert_eq!(out, dangling, "written on error");
}

/// `tandem_pretrain_encoder` with a directory that fails (NULL with a length, or empty), so the
/// code is the batch's, the config's (a NULL or non-UTF-8 string, or what
/// `TrainConfig::parse` says of it), or the directory's; nothing is trained or written.
fn pretrain(batch: &Batch, config: &Str, null_dir: bool) {
    let t = Texts::new(batch);
    let c = config.arg();
    let config_code = str_code(&c).map_or_else(
        |code| code,
        |s| {
            if s.trim().is_empty() {
                0
            } else {
                code_of(tandem::train::TrainConfig::parse(s))
            }
        },
    );
    let expect = match &t.expect {
        Err(code) => *code,
        Ok(_) if config_code != 0 => config_code,
        Ok(_) if null_dir => TANDEM_ERR_NULL_ARGUMENT,
        Ok(_) => TANDEM_ERR_INVALID_ARGUMENT,
    };
    let (dir, dir_len): (*const c_char, usize) = if null_dir {
        (null(), 3)
    } else {
        (c"".as_ptr(), 0)
    };
    let mut report: *mut c_char = std::ptr::NonNull::dangling().as_ptr();
    let dangling = report;
    // SAFETY: the arrays hold `n` entries (or are NULL), every string is readable for its
    // length (or NUL-terminated); `report` is a live local.
    let code = take(unsafe {
        tandem_pretrain_encoder(
            t.texts(),
            t.lens(),
            t.n,
            c.ptr,
            c.len,
            dir,
            dir_len,
            None,
            null_mut(),
            &raw mut report,
        )
    });
    assert_eq!(code, expect, "{batch:?} {config:?}");
    assert_eq!(report, dangling, "written on error");
}

fn null_accessors(a: u16, b: u16, c: u16) {
    let (a, b, c) = (a as usize, b as usize, c as usize);
    // SAFETY: NULL handles only.
    unsafe {
        assert_eq!(tandem_error_code(null()), 0);
        assert_eq!(c_str(tandem_error_message(null())), "");
        tandem_error_free(null_mut());
        tandem_string_free(null_mut());
        tandem_options_free(null_mut());
        tandem_backbone_free(null_mut());
        tandem_model_free(null_mut());
        tandem_trainer_free(null_mut());
        tandem_predictions_free(null_mut());
        tandem_ensemble_free(null_mut());
        assert_eq!(tandem_ensemble_member_count(null()), 0);
        assert_eq!(tandem_backbone_dim(null()), 0);
        assert_eq!(c_str(tandem_backbone_graph_sha256(null())), "");
        assert_eq!(tandem_model_heads_version(null()), 0);
        assert_eq!(tandem_trainer_example_count(null()), 0);
        assert_eq!(tandem_trainer_validation_count(null()), 0);
        assert_eq!(tandem_trainer_unlabelled_count(null()), 0);
        assert_eq!(tandem_predictions_len(null()), 0);
        assert_eq!(tandem_predictions_task_count(null()), 0);
        assert_eq!(tandem_predictions_heads_version(null()), 0);
        assert!(tandem_predictions_task_name(null(), a).is_null());
        assert_eq!(tandem_predictions_task_kind(null(), a), u32::MAX);
        assert_eq!(tandem_predictions_class_count(null(), a), 0);
        assert!(tandem_predictions_class_name(null(), a, b).is_null());
        assert!(tandem_predictions_group(null(), a).is_null());
        assert_eq!(tandem_predictions_label_count(null(), a, b), 0);
        assert!(tandem_predictions_label(null(), a, b, c).is_null());
        assert_eq!(c_str(tandem_version()), tandem::VERSION);
        assert_eq!(tandem_abi_version(), TANDEM_ABI_VERSION);
    }
}

fuzz_target!(|calls: Vec<Call>| {
    let options = tandem_options_new();
    assert!(!options.is_null());
    for call in &calls {
        // SAFETY: `options` is live until freed below; every string argument is readable for
        // its length.
        unsafe {
            match call {
                Call::Variant(s) => {
                    let a = s.arg();
                    let want = str_code(&a).map_or_else(|c| c, |s| code_of(s.parse::<Variant>()));
                    assert_eq!(
                        take(tandem_options_set_variant(options, a.ptr, a.len)),
                        want
                    );
                }
                Call::Device(s) => {
                    let a = s.arg();
                    let want = str_code(&a).map_or_else(|c| c, |s| code_of(s.parse::<Device>()));
                    assert_eq!(take(tandem_options_set_device(options, a.ptr, a.len)), want);
                }
                Call::OrtLibrary(s) => {
                    let a = s.arg();
                    let got = take(tandem_options_set_ort_library(options, a.ptr, a.len));
                    assert_eq!(got, path_code(&a));
                }
                Call::BackboneDir(s) => {
                    let a = s.arg();
                    let got = take(tandem_options_set_backbone_dir(options, a.ptr, a.len));
                    assert_eq!(got, path_code(&a));
                }
                Call::BackboneName(s) => {
                    let a = s.arg();
                    let got = take(tandem_options_set_backbone_name(options, a.ptr, a.len));
                    // Looked up in the cache: the library and this lookup see the same one.
                    let want = str_code(&a)
                        .map_or_else(|c| c, |n| code_of(tandem::home::named_backbone(n)));
                    assert_eq!(got, want);
                }
                Call::Threads(t) => {
                    let o = BackboneOptions {
                        threads: (*t > 0).then_some(*t as usize),
                        ..Default::default()
                    };
                    let got = take(tandem_options_set_threads(options, *t));
                    assert_eq!(got, code_of(o.validate()));
                }
                Call::Batching(b, s) => {
                    let o = BackboneOptions {
                        batch_size: *b as usize,
                        sessions: *s as usize,
                        ..Default::default()
                    };
                    let got = take(tandem_options_set_batching(
                        options,
                        *b as usize,
                        *s as usize,
                    ));
                    assert_eq!(got, code_of(o.validate()));
                }
                Call::Extract(batch, cap) => extract(batch, cap),
                Call::FeatureName(i) => {
                    let p = tandem_metadata_feature_name(*i as usize);
                    match tandem::metadata::feature_names().get(*i as usize) {
                        Some(name) => assert_eq!(c_str(p), *name),
                        None => assert!(p.is_null()),
                    }
                }
                Call::CodeName(code) => {
                    let name = c_str(tandem_error_code_name(*code));
                    match tandem::ErrorKind::from_code(*code) {
                        Some(k) => assert_eq!(name, k.name()),
                        None => assert_eq!(name, "unknown"),
                    }
                }
                Call::NullHandle(which, a, b) => null_handle(*which, a, b),
                Call::NullAccessors(a, b, c) => null_accessors(*a, *b, *c),
                Call::EnsembleOpen(batch, null_out) => ensemble_open(batch, *null_out, options),
                Call::EnsembleNew(n, null_array, null_out) => {
                    ensemble_new(*n, *null_array, *null_out)
                }
                Call::Pretrain(batch, config, null_dir) => pretrain(batch, config, *null_dir),
            }
        }
    }
    // SAFETY: created above, freed once.
    unsafe { tandem_options_free(options) };
});
