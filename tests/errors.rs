//! Bad input gets a clear error with the right kind, never a panic.

mod common;

use std::path::Path;

use common::backbone_dir;
use tandem::{Backbone, BackboneOptions, Device, ErrorKind, Variant};

fn copy_backbone(to: &Path, drop_file: Option<&str>) {
    let src = backbone_dir(tandem::home::DEFAULT_BACKBONE);
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if Some(name.as_str()) == drop_file {
            continue;
        }
        // Symlinks keep the test cheap: the graphs are ~90 MB.
        std::os::unix::fs::symlink(entry.path(), to.join(&name)).unwrap();
    }
}

fn tmp(name: &str) -> std::path::PathBuf {
    common::tmp("errors", name)
}

#[test]
fn missing_backbone_dir_names_setup() {
    let e = Backbone::load("/nonexistent/backbone", BackboneOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains("scripts/setup.sh"));
}

#[test]
fn missing_graph_and_missing_tokenizer_are_not_found() {
    let d = tmp("nograph");
    copy_backbone(&d, Some("model.int8.onnx"));
    let e = Backbone::load(
        &d,
        BackboneOptions {
            variant: Variant::Int8,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.message());
    assert!(e.message().contains("model.int8.onnx"));
    let d2 = tmp("notok");
    copy_backbone(&d2, Some("tokenizer.json"));
    let e = Backbone::load(&d2, BackboneOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{}", e.message());
    let _ = std::fs::remove_dir_all(d);
    let _ = std::fs::remove_dir_all(d2);
}

#[test]
fn corrupted_graph_fails_verification_and_loading() {
    let d = tmp("corrupt");
    copy_backbone(&d, Some("model.int8.onnx"));
    std::fs::write(d.join("model.int8.onnx"), b"not an onnx graph").unwrap();
    let opts = BackboneOptions {
        variant: Variant::Int8,
        verify: true,
        ..Default::default()
    };
    let e = Backbone::load(&d, opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Format, "{}", e.message());
    assert!(e.message().contains("sha256"));
    let opts = BackboneOptions {
        variant: Variant::Int8,
        ..Default::default()
    };
    let e = Backbone::load(&d, opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Onnx, "{}", e.message());
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn unknown_manifest_format_is_a_format_error() {
    let d = tmp("format");
    copy_backbone(&d, Some("manifest.json"));
    std::fs::write(
        d.join("manifest.json"),
        r#"{"format":"tandem-backbone/99","name":"x","dim":384,"max_length":256,"pooling":"mean","normalize":true,"graphs":{},"files":{}}"#,
    )
    .unwrap();
    let e = Backbone::load(&d, BackboneOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Format);
    assert!(e.message().contains("tandem-backbone/99"));
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn the_cpu_int8_graph_is_refused_on_cuda() {
    let opts = BackboneOptions {
        variant: Variant::Int8,
        device: Device::Cuda { device_id: 0 },
        ..Default::default()
    };
    let e = Backbone::load(backbone_dir(tandem::home::DEFAULT_BACKBONE), opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e.message());
    assert!(e.message().contains("fp32 or opt"), "{}", e.message());
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_an_error_not_a_cpu_fallback() {
    let opts = BackboneOptions {
        device: Device::Cuda { device_id: 0 },
        ..Default::default()
    };
    let e = Backbone::load(backbone_dir(tandem::home::DEFAULT_BACKBONE), opts).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::ExecutionProviderUnavailable,
        "{}",
        e.message()
    );
}

#[cfg(feature = "cuda")]
#[test]
fn cuda_where_it_cannot_run_is_an_error_not_a_cpu_fallback() {
    // Where a GPU and a CUDA build of ONNX Runtime exist (TANDEM_EXPECT_CUDA=1), CUDA must load;
    // everywhere else asking for it must fail with ExecutionProviderUnavailable.
    let opts = BackboneOptions {
        device: Device::Cuda { device_id: 0 },
        ..Default::default()
    };
    let r = Backbone::load(backbone_dir(tandem::home::DEFAULT_BACKBONE), opts);
    if std::env::var("TANDEM_EXPECT_CUDA").as_deref() == Ok("1") {
        let b = r.unwrap();
        assert_eq!(b.embed(&["gpu"]).unwrap().dim(), (1, 384));
    } else {
        assert_eq!(
            r.unwrap_err().kind(),
            ErrorKind::ExecutionProviderUnavailable
        );
    }
}

#[test]
fn different_ort_library_in_the_same_process_is_refused() {
    // Load the real one first, then ask for a different file.
    let _b = common::load(Variant::Int8);
    let e =
        tandem::runtime::runtime(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e.message());
}
