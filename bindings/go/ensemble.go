package tandem

// #include "shim.h"
import "C"

import (
	"runtime"
)

// Ensemble is several bundles with the same tasks predicting together: each task's
// probabilities (or values) are the mean of the members', and labels are decided on them as
// one model's would be, with each binary and multi-label threshold the mean of the members'
// tuned ones. Members on one loaded backbone share its run (texts are embedded once). It is
// immutable and safe for concurrent use by multiple goroutines. Close it when done; it keeps
// its backbones alive.
type Ensemble struct {
	h *handle[C.tandem_ensemble]
}

// OpenEnsemble loads the bundles in directories dirs as one ensemble, as
// `tandem predict --model A --model B` does: the first on the backbone it records (as
// OpenModel, with opts), the others onto that same loaded backbone.
//
// Errors: ErrInvalidArgument (no directories, an empty one, or a bundle with other tasks than
// the first: the message names both), ErrInvalidUTF8, ErrNotFound (no bundle there), ErrFormat,
// ErrBackboneMismatch (a bundle trained on another backbone than the first, or whose backbone
// is not installed), ErrONNX, ErrRuntimeLoad.
func OpenEnsemble(dirs []string, opts ...Option) (*Ensemble, error) {
	var ptr *C.tandem_ensemble
	err := withCOptions(opts, func(c *C.tandem_options) *C.tandem_error {
		in := newCStrings(dirs)
		defer in.free()
		return C.tandem_ensemble_open(in.ptrs, in.lens, C.size_t(len(dirs)), c, &ptr)
	})
	if err != nil {
		return nil, err
	}
	return &Ensemble{h: newHandle(ptr, freeEnsemble)}, nil
}

// NewEnsemble makes an ensemble of loaded models, which must have the same tasks. It takes the
// heads each model serves now (later swaps into a model do not change it) and shares their
// backbones, so the models may be closed before it.
//
// Errors: ErrInvalidArgument (no models, or one with other tasks than the first: the message
// names both), ErrClosed (a nil or closed model; code CodeNullArgument).
func NewEnsemble(models ...*Model) (*Ensemble, error) {
	// Each distinct model is acquired once (a second read lock by this goroutine could
	// deadlock against a Close waiting for the first).
	held := make(map[*Model]*C.tandem_model, len(models))
	defer func() {
		for m := range held {
			m.release()
		}
	}()
	ptrs := make([]*C.tandem_model, len(models))
	for i, m := range models {
		p, ok := held[m]
		if !ok {
			var err error
			if p, err = m.acquire(); err != nil {
				return nil, err
			}
			held[m] = p
		}
		ptrs[i] = p
	}
	var arr **C.tandem_model
	if len(ptrs) > 0 {
		// A Go slice of C pointers: no Go pointers reach C.
		arr = &ptrs[0]
	}
	var ptr *C.tandem_ensemble
	err := takeError(C.tandem_ensemble_new(arr, C.size_t(len(ptrs)), &ptr))
	runtime.KeepAlive(models)
	if err != nil {
		return nil, err
	}
	return &Ensemble{h: newHandle(ptr, freeEnsemble)}, nil
}

func freeEnsemble(p *C.tandem_ensemble) { C.tandem_ensemble_free(p) }

// acquire returns the live handle with the read lock held, or an error when closed.
func (e *Ensemble) acquire() (*C.tandem_ensemble, error) {
	if e == nil {
		return nil, closedError("Ensemble (nil)")
	}
	return e.h.acquire("Ensemble")
}

func (e *Ensemble) release() { e.h.release() }

// Close frees the ensemble, waiting for calls in flight. It is idempotent and always returns
// nil. The models it was made from are not affected.
func (e *Ensemble) Close() error {
	if e != nil {
		e.h.close()
	}
	return nil
}

// MemberCount returns the number of members (0 once closed).
func (e *Ensemble) MemberCount() int {
	ptr, err := e.acquire()
	if err != nil {
		return 0
	}
	defer e.release()
	n := int(C.tandem_ensemble_member_count(ptr))
	runtime.KeepAlive(e)
	return n
}

// Predict predicts every task for each text with every member and averages them: one
// Prediction per text, in order (HeadsVersion is 0).
//
// Errors: ErrInvalidUTF8, ErrTokenizer, ErrONNX.
func (e *Ensemble) Predict(texts []string) ([]Prediction, error) {
	ptr, err := e.acquire()
	if err != nil {
		return nil, err
	}
	defer e.release()
	in := newCStrings(texts)
	defer in.free()
	var out *C.tandem_predictions
	err = takeError(C.tandem_ensemble_predict(ptr, in.ptrs, in.lens, C.size_t(len(texts)), &out))
	runtime.KeepAlive(e)
	if err != nil {
		return nil, err
	}
	return takePredictions(out)
}

// PredictGroups makes one prediction per group from the members' averaged outputs, as
// Model.PredictGroups combines one model's: texts[i] belongs to group groups[i]. Predictions
// come back in sorted group order, with Prediction.Group set.
//
// Errors: ErrInvalidUTF8, ErrInvalidArgument (unknown aggregation, len(groups) !=
// len(texts)), ErrTokenizer, ErrONNX.
func (e *Ensemble) PredictGroups(texts, groups []string, agg Aggregation) ([]Prediction, error) {
	if len(texts) != len(groups) {
		return nil, invalidArgument("%d texts but %d group keys", len(texts), len(groups))
	}
	ptr, err := e.acquire()
	if err != nil {
		return nil, err
	}
	defer e.release()
	in, keys := newCStrings(texts), newCStrings(groups)
	defer in.free()
	defer keys.free()
	var out *C.tandem_predictions
	err = takeError(C.tandem_ensemble_predict_groups(ptr, in.ptrs, in.lens, keys.ptrs, keys.lens, C.size_t(len(texts)), C.uint32_t(agg), &out))
	runtime.KeepAlive(e)
	if err != nil {
		return nil, err
	}
	return takePredictions(out)
}
