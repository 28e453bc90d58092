package tandem

// #include "shim.h"
import "C"

import (
	"fmt"
	"runtime"
)

// Model is a trained bundle on a backbone, ready to serve. It is safe for concurrent use by
// multiple goroutines, hot swaps included: predictions in flight finish on the heads they
// started with. Close it when done; it keeps its backbone alive.
type Model struct {
	h *handle[C.tandem_model]
}

// LoadModel loads the bundle in directory dir onto backbone b.
//
// Errors: ErrInvalidUTF8, ErrInvalidArgument (empty dir), ErrNotFound (no bundle there),
// ErrFormat (unknown format or corrupt weights), ErrBackboneMismatch (trained on another
// backbone).
func LoadModel(b *Backbone, dir string) (*Model, error) {
	bp, err := b.acquire()
	if err != nil {
		return nil, err
	}
	defer b.release()
	var ptr *C.tandem_model
	err = takeError(C.tg_model_load(bp, dir, &ptr))
	runtime.KeepAlive(b)
	if err != nil {
		return nil, err
	}
	return &Model{h: newHandle(ptr, freeModel)}, nil
}

// OpenModel loads the bundle in directory dir on the backbone it records, with no backbone
// loaded or named: its own fine-tuned one, else the cached backbone of the name it was trained
// on (as scripts/setup.sh installs them), else the default one, with the graph variant it was
// trained with. opts give threads, device and the like; a variant or backbone directory set
// there overrides the bundle's. The model owns its backbone.
//
// Errors: ErrInvalidUTF8, ErrNotFound (no bundle there), ErrFormat, ErrBackboneMismatch (its
// backbone is not installed), ErrOnnx, ErrRuntimeLoad.
func OpenModel(dir string, opts ...Option) (*Model, error) {
	var ptr *C.tandem_model
	err := withCOptions(opts, func(c *C.tandem_options) *C.tandem_error {
		return C.tg_model_open(dir, c, &ptr)
	})
	if err != nil {
		return nil, err
	}
	return &Model{h: newHandle(ptr, freeModel)}, nil
}

func freeModel(p *C.tandem_model) { C.tandem_model_free(p) }

// acquire returns the live handle with the read lock held, or an error when closed.
func (m *Model) acquire() (*C.tandem_model, error) {
	if m == nil {
		return nil, closedError("Model (nil)")
	}
	return m.h.acquire("Model")
}

func (m *Model) release() { m.h.release() }

// Close frees the model, waiting for calls in flight. It is idempotent and always returns
// nil.
func (m *Model) Close() error {
	if m != nil {
		m.h.close()
	}
	return nil
}

// Predict predicts every task for each text: one Prediction per text, in order.
//
// Errors: ErrInvalidUTF8, ErrTokenizer, ErrONNX.
func (m *Model) Predict(texts []string) ([]Prediction, error) {
	ptr, err := m.acquire()
	if err != nil {
		return nil, err
	}
	defer m.release()
	in := newCStrings(texts)
	defer in.free()
	var out *C.tandem_predictions
	err = takeError(C.tandem_model_predict(ptr, in.ptrs, in.lens, C.size_t(len(texts)), &out))
	runtime.KeepAlive(m)
	if err != nil {
		return nil, err
	}
	return takePredictions(out)
}

// Aggregation is how PredictGroups combines the outputs of a group's texts.
type Aggregation uint32

// Aggregations, as TANDEM_AGGREGATE_* in include/tandem.h.
const (
	// AggregateMean averages each probability (or value).
	AggregateMean Aggregation = C.TANDEM_AGGREGATE_MEAN
	// AggregateMedian takes the median of each probability (or value).
	AggregateMedian Aggregation = C.TANDEM_AGGREGATE_MEDIAN
	// AggregateMajority lets each text vote for its top class: the vote share per class
	// (values are averaged).
	AggregateMajority Aggregation = C.TANDEM_AGGREGATE_MAJORITY
	// AggregateTotalVote takes majority's vote shares as the group's probabilities, decided
	// on the tuned thresholds of binary and multi-label heads (a group can be positive with a
	// minority of positive texts when the threshold is low).
	AggregateTotalVote Aggregation = C.TANDEM_AGGREGATE_TOTAL_VOTE
)

// String returns "mean", "median", "majority", "total_vote" or "Aggregation(n)".
func (a Aggregation) String() string {
	switch a {
	case AggregateMean:
		return "mean"
	case AggregateMedian:
		return "median"
	case AggregateMajority:
		return "majority"
	case AggregateTotalVote:
		return "total_vote"
	}
	return fmt.Sprintf("Aggregation(%d)", uint32(a))
}

// PredictSampled predicts with Monte-Carlo dropout: each task's probabilities (or value) are
// the mean of samples passes of the heads with dropout on, their masks drawn from seed (the
// same seed and texts give the same numbers), labels are decided on that mean, and each
// TaskPrediction's Spread holds the passes' standard deviation.
//
// Errors: ErrInvalidArgument (samples 0, or heads without dropout), ErrInvalidUTF8,
// ErrTokenizer, ErrONNX.
func (m *Model) PredictSampled(texts []string, samples int, seed uint64) ([]Prediction, error) {
	if samples < 0 {
		return nil, invalidArgument("samples %d must not be negative", samples)
	}
	ptr, err := m.acquire()
	if err != nil {
		return nil, err
	}
	defer m.release()
	in := newCStrings(texts)
	defer in.free()
	var out *C.tandem_predictions
	err = takeError(C.tandem_model_predict_sampled(ptr, in.ptrs, in.lens, C.size_t(len(texts)), C.size_t(samples), C.uint64_t(seed), &out))
	runtime.KeepAlive(m)
	if err != nil {
		return nil, err
	}
	return takePredictionsOf(out, true)
}

// PredictGroups makes one prediction per group: texts[i] belongs to group groups[i] (an
// author id, say), and each group's outputs are combined by agg. Predictions come back in
// sorted group order, with Prediction.Group set.
//
// Errors: ErrInvalidUTF8, ErrInvalidArgument (unknown aggregation, len(groups) !=
// len(texts)), ErrTokenizer, ErrONNX.
func (m *Model) PredictGroups(texts, groups []string, agg Aggregation) ([]Prediction, error) {
	if len(texts) != len(groups) {
		return nil, invalidArgument("%d texts but %d group keys", len(texts), len(groups))
	}
	ptr, err := m.acquire()
	if err != nil {
		return nil, err
	}
	defer m.release()
	in, keys := newCStrings(texts), newCStrings(groups)
	defer in.free()
	defer keys.free()
	var out *C.tandem_predictions
	err = takeError(C.tandem_model_predict_groups(ptr, in.ptrs, in.lens, keys.ptrs, keys.lens, C.size_t(len(texts)), C.uint32_t(agg), &out))
	runtime.KeepAlive(m)
	if err != nil {
		return nil, err
	}
	return takePredictions(out)
}

// SwapHeads hot-swaps the heads t last trained into the model, without reloading the
// backbone, and returns the new heads version. Predictions already running finish on the old
// heads; later ones use the new. t stays usable (train it again, swap again).
//
// Errors: ErrInvalidArgument (t not trained yet, or heads for another embedding size; ErrBusy
// while t is in use), ErrBackboneMismatch (t on a different backbone).
func (m *Model) SwapHeads(t *Trainer) (uint64, error) {
	ptr, err := m.acquire()
	if err != nil {
		return 0, err
	}
	defer m.release()
	tp, err := t.acquire()
	if err != nil {
		return 0, err
	}
	defer t.release()
	var v C.uint64_t
	err = takeError(C.tandem_model_swap_heads(ptr, tp, &v))
	runtime.KeepAlive(m)
	runtime.KeepAlive(t)
	if err != nil {
		return 0, err
	}
	return uint64(v), nil
}

// SwapBundle hot-swaps the heads of the bundle in directory dir into the model (checked like
// LoadModel) and returns the new heads version.
//
// Errors: ErrInvalidUTF8, ErrNotFound, ErrFormat, ErrBackboneMismatch.
func (m *Model) SwapBundle(dir string) (uint64, error) {
	ptr, err := m.acquire()
	if err != nil {
		return 0, err
	}
	defer m.release()
	var v C.uint64_t
	err = takeError(C.tg_model_swap_bundle(ptr, dir, &v))
	runtime.KeepAlive(m)
	if err != nil {
		return 0, err
	}
	return uint64(v), nil
}

// ExportONNX writes the model (its backbone's variant graph, "fp32", "opt" or "int8", followed
// by the heads it serves now) as one ONNX graph to path, with tokenizer.json and
// <stem>.tandem.json (labels, thresholds, metadata feature names) beside it: what
// `tandem export` writes, for stock ONNX Runtime.
func (m *Model) ExportONNX(path, variant string) error {
	ptr, err := m.acquire()
	if err != nil {
		return err
	}
	defer m.release()
	err = takeError(C.tg_model_export_onnx(ptr, path, variant))
	runtime.KeepAlive(m)
	return err
}

// HeadsVersion returns the version of the heads now serving: 0 as loaded, +1 per swap (0 once
// closed).
func (m *Model) HeadsVersion() uint64 {
	ptr, err := m.acquire()
	if err != nil {
		return 0
	}
	defer m.release()
	v := uint64(C.tandem_model_heads_version(ptr))
	runtime.KeepAlive(m)
	return v
}

// ManifestJSON returns the manifest of the bundle the model was loaded from (tasks, labels,
// thresholds, metrics, provenance) as JSON. It describes the bundle as loaded: hot swaps do
// not change it.
func (m *Model) ManifestJSON() (string, error) {
	ptr, err := m.acquire()
	if err != nil {
		return "", err
	}
	defer m.release()
	var out *C.char
	err = takeError(C.tandem_model_manifest_json(ptr, &out))
	runtime.KeepAlive(m)
	if err != nil {
		return "", err
	}
	return takeString(out), nil
}
