//! Bounded, type-checked reads of files tandem does not control: bundles, manifests, configs,
//! caches and data. Every such read has a documented size cap (the [`Limit`] constants), and a
//! path must name the kind of file it should: `/dev/zero` as a manifest would otherwise read
//! until memory runs out, and a FIFO as weights would block forever.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

/// How much of a file tandem reads, and what to call the file in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// What the file is, for messages ("bundle manifest").
    pub what: &'static str,
    /// The most bytes it may have.
    pub bytes: u64,
    /// Whether a pipe (FIFO, `/dev/stdin` from a pipe) is accepted as well as a regular file.
    /// Only for inputs a user may stream in; never for files tandem wrote itself.
    pub streams: bool,
    /// The error kind of a file over the cap.
    pub too_big: ErrorKind,
}

const MIB: u64 = 1 << 20;

/// A bundle's `manifest.json`: 64 MiB (a manifest with its per-epoch history is a few KB).
pub const BUNDLE_MANIFEST: Limit = Limit {
    what: "bundle manifest",
    bytes: 64 * MIB,
    streams: false,
    too_big: ErrorKind::Format,
};

/// A bundle's `weights.safetensors`: 2 GiB (heads are about 1 MB).
pub const BUNDLE_WEIGHTS: Limit = Limit {
    what: "bundle weights",
    bytes: 2048 * MIB,
    streams: false,
    too_big: ErrorKind::Format,
};

/// A backbone's `manifest.json`: 1 MiB.
pub const BACKBONE_MANIFEST: Limit = Limit {
    what: "backbone manifest",
    bytes: MIB,
    streams: false,
    too_big: ErrorKind::Format,
};

/// A backbone's files hashed at load (graphs, tokenizer): 8 GiB.
pub const BACKBONE_FILE: Limit = Limit {
    what: "backbone file",
    bytes: 8192 * MIB,
    streams: false,
    too_big: ErrorKind::Format,
};

/// An ONNX graph read by tandem's own reader (imported heads, a backbone merged into an
/// export): 2 GiB, protobuf's own ceiling for one message.
pub const ONNX_GRAPH: Limit = Limit {
    what: "ONNX graph",
    bytes: 2048 * MIB,
    streams: false,
    too_big: ErrorKind::Format,
};

/// A training config (TOML or JSON): 1 MiB.
pub const CONFIG: Limit = Limit {
    what: "config file",
    bytes: MIB,
    streams: true,
    too_big: ErrorKind::InvalidArgument,
};

/// A dataset (`--data`, `--valid`, eval data: JSONL or CSV): 2 GiB, a regular file or a pipe.
pub const DATA: Limit = Limit {
    what: "data file",
    bytes: 2048 * MIB,
    streams: true,
    too_big: ErrorKind::InvalidArgument,
};

/// Opens `path` for reading after checking that it is a regular file (or, where `limit`
/// allows, a pipe), and returns it with its size (0 for a pipe).
pub fn open(path: &Path, limit: Limit) -> Result<(File, u64)> {
    // Metadata first: opening a FIFO for reading blocks until a writer appears.
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let ft = meta.file_type();
    let pipe = is_fifo(&ft);
    if !(ft.is_file() || (limit.streams && pipe)) {
        let kind = if ft.is_dir() {
            "a directory"
        } else if pipe {
            "a pipe"
        } else {
            "a device or special file"
        };
        return Err(Error::invalid(format!(
            "{}: is {kind}, not a {} (a regular file{})",
            path.display(),
            limit.what,
            if limit.streams { " or a pipe" } else { "" }
        )));
    }
    if meta.len() > limit.bytes {
        return Err(too_big(path, limit));
    }
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok((f, if pipe { 0 } else { meta.len() }))
}

/// The whole of `path`, at most `limit.bytes` of it: more is an error, not a truncation.
pub fn read(path: &Path, limit: Limit) -> Result<Vec<u8>> {
    let (f, len) = open(path, limit)?;
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // The file may grow after the size check, and a pipe has no size: read one byte past the
    // cap to tell "exactly at the cap" from "over it".
    f.take(limit.bytes + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > limit.bytes {
        return Err(too_big(path, limit));
    }
    Ok(out)
}

/// [`read`] as UTF-8 text; a leading byte-order mark is dropped (editors on Windows write one).
pub fn read_text(path: &Path, limit: Limit) -> Result<String> {
    let bytes = read(path, limit)?;
    let mut text = String::from_utf8(bytes).map_err(|e| {
        Error::new(
            ErrorKind::InvalidUtf8,
            format!("{}: not valid UTF-8 ({e})", path.display()),
        )
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Hex sha256 of a file, streamed (a regular file of at most `limit.bytes`).
pub fn sha256_file(path: &Path, limit: Limit) -> Result<String> {
    use sha2::Digest;
    let (f, _) = open(path, limit)?;
    let mut f = f.take(limit.bytes);
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(h.finalize()))
}

fn too_big(path: &Path, limit: Limit) -> Error {
    Error::new(
        limit.too_big,
        format!(
            "{}: larger than the {} MiB a {} may have",
            path.display(),
            limit.bytes / MIB,
            limit.what
        ),
    )
}

#[cfg(unix)]
fn is_fifo(ft: &std::fs::FileType) -> bool {
    std::os::unix::fs::FileTypeExt::is_fifo(ft)
}

#[cfg(not(unix))]
fn is_fifo(_: &std::fs::FileType) -> bool {
    false
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it into place, so a
/// reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .and_then(|s| s.to_str())
        .ok_or_else(|| Error::invalid(format!("{}: not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Limit = Limit {
        what: "test file",
        bytes: 8,
        streams: false,
        too_big: ErrorKind::Format,
    };

    #[test]
    fn caps_sizes_and_refuses_devices_and_directories() {
        let dir = std::env::temp_dir().join(format!("tandem-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok");
        std::fs::write(&ok, b"12345678").unwrap();
        assert_eq!(read(&ok, TINY).unwrap(), b"12345678");
        let big = dir.join("big");
        std::fs::write(&big, b"123456789").unwrap();
        assert_eq!(read(&big, TINY).unwrap_err().kind(), ErrorKind::Format);
        // Before: /dev/zero read until memory ran out.
        let e = read(Path::new("/dev/zero"), TINY).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.message().contains("device"), "{}", e.message());
        let e = read(Path::new("/dev/zero"), DATA).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(read(&dir, TINY)
            .unwrap_err()
            .message()
            .contains("directory"));
        assert_eq!(
            read(&dir.join("missing"), TINY).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_where_streams_are_not_allowed_and_capped_where_they_are() {
        let dir = std::env::temp_dir().join(format!("tandem-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            return; // no mkfifo here: nothing to test
        }
        // Before: reading weights from a FIFO with no writer blocked forever.
        let e = read(&fifo, TINY).unwrap_err();
        assert!(e.message().contains("pipe"), "{}", e.message());
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                // Ignore the error: the reader stops after the cap and closes its end.
                let _ = std::fs::write(&fifo, vec![b'x'; 64]);
            })
        };
        let streams = Limit {
            streams: true,
            ..TINY
        };
        assert_eq!(read(&fifo, streams).unwrap_err().kind(), ErrorKind::Format);
        writer.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn read_text_drops_a_byte_order_mark() {
        let dir = std::env::temp_dir().join(format!("tandem-bom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bom.jsonl");
        std::fs::write(&p, "\u{feff}{\"a\":1}\n").unwrap();
        assert_eq!(read_text(&p, DATA).unwrap(), "{\"a\":1}\n");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert_eq!(
            read_text(&p, DATA).unwrap_err().kind(),
            ErrorKind::InvalidUtf8
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
