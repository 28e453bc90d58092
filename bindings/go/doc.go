// Package tandem is the Go binding of tandem, on-device text classification that learns on
// the device: a frozen sentence-embedding backbone (all-MiniLM-L6-v2 by default, run by ONNX
// Runtime) with small trainable heads on top.
//
// The binding wraps tandem's C ABI (include/tandem.h) through cgo. The flow:
//
//	b, err := tandem.LoadBackbone(tandem.WithThreads(2))
//	defer b.Close()
//
//	t, err := tandem.NewTrainer(b, tandem.TrainerSpec{
//		Tasks:  []tandem.TaskSpec{{Name: "label", Kind: tandem.TaskMulticlass}},
//		Config: &tandem.TrainConfig{Mode: tandem.ModeEmbeddingOnly},
//	})
//	defer t.Close()
//	err = t.AddExample("Who wrote Hamlet ?", map[string]any{"label": "HUM"})
//	...
//	err = t.Train(ctx, func(p tandem.Progress) bool { log.Println(p); return true })
//	err = t.Save("bundle")
//
//	m, err := tandem.LoadModel(b, "bundle")
//	defer m.Close()
//	preds, err := m.Predict([]string{"How far is the moon ?"})
//	fmt.Println(preds[0].Tasks[0].Label())
//
//	// Several bundles with the same tasks, their probabilities averaged:
//	e, err := tandem.OpenEnsemble([]string{"bundle", "bundle2"}) // or NewEnsemble(m, m2)
//	defer e.Close()
//	preds, err = e.Predict([]string{"How far is the moon ?"})
//
// # Handles and concurrency
//
// Backbone, Trainer, Model and Ensemble own native handles. Each has an idempotent Close that
// frees the handle, and a finalizer that frees it if Close was never called; after Close every
// method fails with an error satisfying errors.Is(err, ErrClosed). A Backbone, a Model and an
// Ensemble may be used from many goroutines at once (Close waits for calls in flight). A Trainer is used by one
// goroutine at a time: a call made while another call on the same trainer is running (also
// from inside Train's progress function) fails with ErrBusy instead of racing. Models and
// trainers keep their backbone alive, so a Backbone may be closed before them; an Ensemble
// keeps its members' backbones and heads, so its Models may be closed before it.
//
// # Errors
//
// Errors from the library are *Error values with a Code mirroring TANDEM_ERR_*; compare them
// with errors.Is against the sentinels (ErrNotFound, ErrCancelled, ...) or extract them with
// errors.As. Training cancelled through its context fails with an error that satisfies both
// errors.Is(err, ErrCancelled) and errors.Is(err, ctx.Err()).
//
// # Building
//
// By default the package links the library built in this repository (target/release, from
// `cargo build --release --lib`) and records its directory as an rpath. With the build tag
// tandem_system it links -ltandem only, and CGO_CFLAGS / CGO_LDFLAGS name an installed
// prefix. At run time the library finds ONNX Runtime and the default backbone in
// ~/.cache/tandem (scripts/setup.sh fills it) unless options say otherwise.
package tandem
