//! Configuration: defaults, serde, and what is refused.

use super::*;

#[test]
fn config_defaults_and_serde() {
    let d = SequenceConfig::default();
    assert_eq!(
        (
            d.attention_queries,
            d.conv_kernels.as_slice(),
            d.conv_channels
        ),
        (1, &[1usize, 3, 5][..], 128)
    );
    assert!(!d.transformer);
    assert_eq!(
        (d.transformer_heads, d.transformer_ffn, d.dropout),
        (4, 512, 0.1)
    );
    assert_eq!(d.out_dim(384), 384 + 384);
    let cfg: SequenceConfig =
        serde_json::from_str(r#"{"conv_kernels":[3,5,7],"transformer":true}"#).unwrap();
    assert_eq!(cfg.conv_kernels, [3, 5, 7]);
    assert!(cfg.transformer && cfg.attention_queries == 1);
    let back: SequenceConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    let t: SequenceConfig = toml::from_str("attention_queries = 0\nconv_channels = 64\n").unwrap();
    assert_eq!((t.attention_queries, t.conv_channels), (0, 64));
    assert!(serde_json::from_str::<SequenceConfig>(r#"{"conv_kernel":[3]}"#).is_err());
}

#[test]
fn bad_configs_are_refused_with_the_reason() {
    let err = |cfg: SequenceConfig, in_dim: usize| -> String {
        let e = SequenceEncoder::new(in_dim, &cfg, &mut rng(0)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        e.message().to_string()
    };
    let base = SequenceConfig::default;
    let m = err(
        SequenceConfig {
            conv_kernels: vec![3, 4],
            ..base()
        },
        8,
    );
    assert!(m.contains("odd") && m.contains('4'), "{m}");
    assert!(err(
        SequenceConfig {
            conv_kernels: vec![0],
            ..base()
        },
        8
    )
    .contains("odd"));
    assert!(err(
        SequenceConfig {
            conv_channels: 0,
            ..base()
        },
        8
    )
    .contains("channels"));
    let m = err(
        SequenceConfig {
            transformer: true,
            transformer_heads: 3,
            ..base()
        },
        8,
    );
    assert!(
        m.contains("divide") && m.contains('3') && m.contains('8'),
        "{m}"
    );
    assert!(err(
        SequenceConfig {
            transformer: true,
            transformer_ffn: 0,
            ..base()
        },
        8
    )
    .contains("positive"));
    assert!(err(
        SequenceConfig {
            attention_queries: 0,
            conv_kernels: vec![],
            ..base()
        },
        8
    )
    .contains("pooling"));
    for p in [1.0, -0.1, f32::NAN] {
        assert!(err(
            SequenceConfig {
                dropout: p,
                ..base()
            },
            8
        )
        .contains("dropout"));
    }
    assert!(err(base(), 0).contains("width"));
}

#[test]
fn settings_of_parts_that_are_off_are_not_checked() {
    let base = SequenceConfig::default;
    // validate() needs no width.
    let off = SequenceConfig {
        transformer_heads: 0,
        conv_kernels: vec![],
        conv_channels: 0,
        ..base()
    };
    assert!(off.validate().is_ok());
    assert!(SequenceConfig {
        transformer: true,
        transformer_heads: 5,
        ..base()
    }
    .validate()
    .is_ok());
    // The layers check their own arguments too.
    assert!(AttentionPool::new(4, 0, &mut rng(0)).is_err());
    assert!(MultiConv::new(4, &[], 2, &mut rng(0)).is_err());
    assert!(MultiConv::new(4, &[2], 2, &mut rng(0)).is_err());
    assert!(EncoderLayer::new(6, 4, 8, 0.0, &mut rng(0)).is_err());
    assert!(EncoderLayer::new(8, 4, 8, 1.0, &mut rng(0)).is_err());
}
