//! tandem: an embedded runtime for text classification that learns on the device.
//!
//! A frozen transformer backbone (all-MiniLM-L6-v2 by default) runs through ONNX Runtime and turns
//! text into embeddings; native code computes text metadata and trains small heads on top. The
//! same capability is exported as a C ABI for C, C++ and Go hosts.
//!
//! ```no_run
//! use tandem::{Backbone, BackboneOptions, Variant};
//! let backbone = Backbone::load_default(BackboneOptions { variant: Variant::Int8, ..Default::default() })?;
//! let emb = backbone.embed(&["hello world", "good morning"])?;
//! assert_eq!(emb.dim(), (2, backbone.dim()));
//! # Ok::<(), tandem::Error>(())
//! ```

#![deny(missing_docs)]
// Unsafe code is confined to the FFI module, which opts back in.
#![deny(unsafe_code)]

pub mod backbone;
pub mod bundle;
pub mod cache;
pub mod compare;
pub mod data;
pub mod doctor;
pub mod ensemble;
pub mod error;
pub mod eval;
#[allow(unsafe_code)]
pub mod ffi;
pub mod files;
pub mod heads;
pub mod home;
pub mod metadata;
pub mod model;
pub mod nn;
pub mod onnx;
pub mod report;
pub mod runtime;
pub mod train;

pub use backbone::{
    Backbone, BackboneOptions, Device, HeadsEngine, PackedBatch, TokenSeqs, Variant,
};
pub use error::{Error, ErrorKind, Result};

/// tandem's version, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
