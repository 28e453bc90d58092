package tandem

// #include "shim.h"
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/cgo"
	"sync"
	"sync/atomic"
)

// Trainer accumulates labelled examples and trains heads on them, on the device.
//
// A Trainer is used by one goroutine at a time: a method called while another call on the
// same trainer is running fails with an error wrapping ErrBusy (it never races or blocks).
// Close it when done; it keeps its backbone alive.
type Trainer struct {
	mu     sync.Mutex
	ptr    *C.tandem_trainer
	busy   bool
	closed bool
}

// NewTrainer creates a trainer on backbone b from spec.
//
// Errors: ErrInvalidArgument (a bad spec: no tasks, duplicate names, an unknown config key or
// value), ErrIO (the embedding cache).
func NewTrainer(b *Backbone, spec TrainerSpec) (*Trainer, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, invalidArgument("trainer spec: %v", err)
	}
	return NewTrainerJSON(b, string(js))
}

// NewTrainerJSON creates a trainer on backbone b from a JSON spec, e.g.
//
//	{"tasks": [{"name": "topic", "kind": "multiclass"}], "config": {"mode": "embedding_only"}}
//
// for settings TrainerSpec does not cover. Errors as NewTrainer.
func NewTrainerJSON(b *Backbone, specJSON string) (*Trainer, error) {
	bp, err := b.acquire()
	if err != nil {
		return nil, err
	}
	defer b.release()
	var ptr *C.tandem_trainer
	err = takeError(C.tg_trainer_new(bp, specJSON, &ptr))
	runtime.KeepAlive(b)
	if err != nil {
		return nil, err
	}
	t := &Trainer{ptr: ptr}
	atomic.AddInt64(&liveHandles, 1)
	runtime.SetFinalizer(t, (*Trainer).free)
	return t, nil
}

// acquire marks the trainer busy and returns its handle, or fails when it is closed or busy.
// Every successful acquire is paired with release.
func (t *Trainer) acquire() (*C.tandem_trainer, error) {
	if t == nil {
		return nil, closedError("Trainer (nil)")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ptr == nil || t.closed {
		return nil, closedError("Trainer")
	}
	if t.busy {
		return nil, busyError()
	}
	t.busy = true
	return t.ptr, nil
}

// release ends a call, freeing the handle if Close came while it ran.
func (t *Trainer) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.busy = false
	if t.closed {
		t.free()
	}
}

// Close frees the trainer. It is idempotent and always returns nil. Called while another call
// on the trainer runs (from its progress function, say), it frees the trainer when that call
// returns; later calls fail with ErrClosed.
func (t *Trainer) Close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if !t.busy {
		t.free()
	}
	runtime.SetFinalizer(t, nil)
	return nil
}

func (t *Trainer) free() {
	if t.ptr != nil {
		C.tandem_trainer_free(t.ptr)
		t.ptr = nil
		atomic.AddInt64(&liveHandles, -1)
	}
}

// AddExample adds a training example: text and one label per task, keyed by task name. A
// class is a string (or a number or bool), a multi-label value a []string, a regression value
// a number. A malformed example is rejected whole.
//
// Errors: ErrInvalidUTF8, ErrInvalidArgument (an unknown or missing task, a label of the
// wrong shape).
func (t *Trainer) AddExample(text string, labels map[string]any) error {
	js, err := labelsJSON(labels)
	if err != nil {
		return err
	}
	return t.add(text, js, false)
}

// AddExampleJSON is AddExample with the labels given as a JSON object, e.g. {"label":"HUM"}.
func (t *Trainer) AddExampleJSON(text, labelsJSON string) error {
	return t.add(text, labelsJSON, false)
}

// AddValidationExample adds a validation example (same arguments as AddExample). Without any,
// training holds out a stratified fraction (TrainConfig.ValidFraction) of the training
// examples.
func (t *Trainer) AddValidationExample(text string, labels map[string]any) error {
	js, err := labelsJSON(labels)
	if err != nil {
		return err
	}
	return t.add(text, js, true)
}

// AddValidationExampleJSON is AddValidationExample with the labels given as a JSON object.
func (t *Trainer) AddValidationExampleJSON(text, labelsJSON string) error {
	return t.add(text, labelsJSON, true)
}

func (t *Trainer) add(text, labels string, validation bool) error {
	ptr, err := t.acquire()
	if err != nil {
		return err
	}
	defer t.release()
	v := C.int(0)
	if validation {
		v = 1
	}
	err = takeError(C.tg_trainer_add_example(ptr, text, labels, v))
	runtime.KeepAlive(t)
	return err
}

// AddUnlabelled adds a text without labels, for distillation: with teacher bundles in the
// config (Distill.Teachers), it joins the training split labelled by the teachers' decisions,
// with their outputs as soft targets; Train without a teacher refuses it.
func (t *Trainer) AddUnlabelled(text string) error {
	ptr, err := t.acquire()
	if err != nil {
		return err
	}
	defer t.release()
	err = takeError(C.tg_trainer_add_unlabelled(ptr, text))
	runtime.KeepAlive(t)
	return err
}

// UnlabelledCount is the number of texts added with AddUnlabelled.
func (t *Trainer) UnlabelledCount() int {
	ptr, err := t.acquire()
	if err != nil {
		return 0
	}
	defer t.release()
	n := int(C.tandem_trainer_unlabelled_count(ptr))
	runtime.KeepAlive(t)
	return n
}

func labelsJSON(labels map[string]any) (string, error) {
	js, err := json.Marshal(labels)
	if err != nil {
		return "", invalidArgument("labels: %v", err)
	}
	return string(js), nil
}

// ExampleCount returns the number of training examples added so far (0 once closed or while
// busy).
func (t *Trainer) ExampleCount() int {
	ptr, err := t.acquire()
	if err != nil {
		return 0
	}
	defer t.release()
	n := int(C.tandem_trainer_example_count(ptr))
	runtime.KeepAlive(t)
	return n
}

// Progress is one progress report of Train.
type Progress struct {
	// Stage is "embed" while texts are embedded (then Epoch counts chunks of texts and the
	// losses are NaN), then the training stage ("stage1", "stage2", "joint", "heads", ...),
	// and last "thresholds", once per binary or multi-label task whose decision thresholds are
	// tuned (losses NaN).
	Stage string
	// Epoch is the 0-based epoch (or chunk) just finished.
	Epoch int
	// Epochs is the stage's maximum number of epochs (or chunks).
	Epochs int
	// TrainLoss is the epoch's mean training loss (NaN while embedding).
	TrainLoss float32
	// ValidLoss is the epoch's validation loss (NaN while embedding).
	ValidLoss float32
}

// String formats the report as "stage epoch/epochs train=… valid=…".
func (p Progress) String() string {
	return fmt.Sprintf("%s %d/%d train=%.4f valid=%.4f", p.Stage, p.Epoch+1, p.Epochs, p.TrainLoss, p.ValidLoss)
}

// trainCall is the Go side of one Train call, reached from the C progress callback through a
// cgo.Handle.
type trainCall struct {
	ctx      context.Context
	progress func(Progress) bool
	panicked bool
	panicVal any
}

// report runs on the goroutine that called Train, from inside tandem_trainer_train. It
// returns false to cancel. A panic in the progress function is caught here (unwinding through
// the library's frames is not allowed), cancels training, and is re-raised by Train.
func (c *trainCall) report(p Progress) (keepGoing bool) {
	if c.panicked || c.ctx.Err() != nil {
		return false
	}
	if c.progress == nil {
		return true
	}
	defer func() {
		if r := recover(); r != nil {
			c.panicked, c.panicVal = true, r
			keepGoing = false
		}
	}()
	return c.progress(p) && c.ctx.Err() == nil
}

// Train trains heads on the examples added so far, seeded and deterministic. progress (may be
// nil) is called on the calling goroutine after each chunk of texts embedded and after each
// epoch; returning false cancels. Cancelling ctx cancels too, at the next progress point.
//
// A cancelled run fails with an error satisfying errors.Is(err, ErrCancelled), and also
// errors.Is(err, ctx.Err()) when ctx caused it. On any error the trainer keeps its examples
// and its previously trained heads, and stays usable. progress must not call methods of this
// trainer (they fail with ErrBusy). A panic in progress cancels training and is re-raised.
//
// Errors: ErrInvalidArgument (no examples, too few to split, bad labels), ErrCancelled,
// ErrONNX, ErrTokenizer.
func (t *Trainer) Train(ctx context.Context, progress func(Progress) bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ptr, err := t.acquire()
	if err != nil {
		return err
	}
	defer t.release()
	if err := ctx.Err(); err != nil {
		return &Error{Code: CodeCancelled, Message: "training not started: " + err.Error(), cause: err}
	}
	call := &trainCall{ctx: ctx, progress: progress}
	h := cgo.NewHandle(call)
	defer h.Delete()
	err = takeError(C.tg_trainer_train(ptr, C.uintptr_t(h)))
	runtime.KeepAlive(t)
	if call.panicked {
		panic(call.panicVal)
	}
	var te *Error
	if err != nil && asError(err, &te) && te.Code == CodeCancelled {
		if cerr := ctx.Err(); cerr != nil {
			te.Message += " (" + cerr.Error() + ")"
			te.cause = cerr
		}
	}
	return err
}

func asError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

// ReportJSON returns the last training run's report as the library's JSON.
//
// Errors: ErrInvalidArgument (not trained yet).
func (t *Trainer) ReportJSON() (string, error) {
	ptr, err := t.acquire()
	if err != nil {
		return "", err
	}
	defer t.release()
	var out *C.char
	err = takeError(C.tandem_trainer_report_json(ptr, &out))
	runtime.KeepAlive(t)
	if err != nil {
		return "", err
	}
	return takeString(out), nil
}

// Report returns the last successful training run's report: stages with per-epoch history,
// validation metrics, timings and sizes.
//
// Errors: ErrInvalidArgument (not trained yet).
func (t *Trainer) Report() (*Report, error) {
	js, err := t.ReportJSON()
	if err != nil {
		return nil, err
	}
	r := &Report{Raw: json.RawMessage(js)}
	if err := json.Unmarshal(r.Raw, r); err != nil {
		return nil, &Error{Code: CodeFormat, Message: "training report: " + err.Error()}
	}
	return r, nil
}

// Evaluate computes metrics of the trained heads on labelled texts (labels[i] as for
// AddExample belongs to texts[i]).
//
// Errors: ErrInvalidUTF8, ErrInvalidArgument (not trained, bad or unknown labels, no texts,
// mismatched lengths), ErrONNX.
func (t *Trainer) Evaluate(texts []string, labels []map[string]any) (*Evaluation, error) {
	js := make([]string, len(labels))
	for i, l := range labels {
		s, err := labelsJSON(l)
		if err != nil {
			return nil, err
		}
		js[i] = s
	}
	return t.EvaluateJSON(texts, js)
}

// EvaluateJSON is Evaluate with each text's labels given as a JSON object.
func (t *Trainer) EvaluateJSON(texts, labelsJSON []string) (*Evaluation, error) {
	if len(texts) != len(labelsJSON) {
		return nil, invalidArgument("%d texts but %d label objects", len(texts), len(labelsJSON))
	}
	ptr, err := t.acquire()
	if err != nil {
		return nil, err
	}
	defer t.release()
	in, lab := newCStrings(texts), newCStrings(labelsJSON)
	defer in.free()
	defer lab.free()
	var out *C.char
	err = takeError(C.tandem_trainer_evaluate(ptr, in.ptrs, in.lens, lab.ptrs, lab.lens, C.size_t(len(texts)), &out))
	runtime.KeepAlive(t)
	if err != nil {
		return nil, err
	}
	e := &Evaluation{}
	if err := json.Unmarshal([]byte(takeString(out)), e); err != nil {
		return nil, &Error{Code: CodeFormat, Message: "evaluation: " + err.Error()}
	}
	return e, nil
}

// Save saves the trained heads as a bundle in directory dir, atomically (a crash never leaves
// a partial bundle); an existing bundle there is replaced.
//
// Errors: ErrInvalidUTF8, ErrInvalidArgument (not trained yet, empty dir), ErrIO.
func (t *Trainer) Save(dir string) error {
	ptr, err := t.acquire()
	if err != nil {
		return err
	}
	defer t.release()
	err = takeError(C.tg_trainer_save(ptr, dir))
	runtime.KeepAlive(t)
	return err
}
