package tandem

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestInvalidUTF8(t *testing.T) {
	tr, err := NewTrainer(backbone, labelSpec(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	err = tr.AddExample("bad \xc3\x28 text", map[string]any{"label": "HUM"})
	wantCode(t, err, CodeInvalidUTF8)
	if !errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("errors.Is(%v, ErrInvalidUTF8) is false", err)
	}
	if n := tr.ExampleCount(); n != 0 {
		t.Errorf("a rejected example was added (%d)", n)
	}
	// Valid UTF-8 with a NUL byte in the middle is a fine text: lengths are passed, not NULs.
	if err := tr.AddExample("nul\x00inside", map[string]any{"label": "HUM"}); err != nil {
		t.Errorf("text with a NUL byte: %v", err)
	}

	_, dir := trainedFixture(t)
	m := loadModel(t, dir)
	_, err = m.Predict([]string{"fine", "\xff\xfe"})
	wantCode(t, err, CodeInvalidUTF8)
	_, err = LoadModel(backbone, "dir\xff")
	wantCode(t, err, CodeInvalidUTF8)
}

func TestMissingBundle(t *testing.T) {
	_, err := LoadModel(backbone, filepath.Join(t.TempDir(), "no-such-bundle"))
	te := wantCode(t, err, CodeNotFound)
	if !errors.Is(err, ErrNotFound) || te.Message == "" {
		t.Errorf("error %v", err)
	}
	_, err = LoadModel(backbone, "")
	wantCode(t, err, CodeInvalidArgument)
}

func TestBadSpec(t *testing.T) {
	for name, js := range map[string]string{
		"not json":      `{"tasks": [`,
		"no tasks":      `{"tasks": []}`,
		"unknown kind":  `{"tasks": [{"name": "y", "kind": "ordinal"}]}`,
		"unknown key":   `{"tasks": [{"name": "y", "kind": "binary"}], "config": {"epochz": 3}}`,
		"duplicate":     `{"tasks": [{"name": "y", "kind": "binary"}, {"name": "y", "kind": "binary"}]}`,
		"positive":      `{"tasks": [{"name": "y", "kind": "regression", "positive": "a"}]}`,
		"unknown field": `{"tasks": [{"name": "y", "kind": "binary"}], "bogus": 1}`,
	} {
		tr, err := NewTrainerJSON(backbone, js)
		if tr != nil {
			t.Errorf("%s: got a trainer", name)
		}
		te := wantCode(t, err, CodeInvalidArgument)
		if name == "unknown key" && !strings.Contains(te.Message, "epochz") {
			t.Errorf("message %q does not name the key", te.Message)
		}
	}
	_, err := NewTrainer(backbone, TrainerSpec{Tasks: []TaskSpec{{Name: "y", Kind: TaskMulticlass}},
		Config: &TrainConfig{Mode: "fast"}})
	wantCode(t, err, CodeInvalidArgument)
	_, err = NewTrainer(backbone, TrainerSpec{})
	wantCode(t, err, CodeInvalidArgument)
}

func TestBadLabels(t *testing.T) {
	tr, err := NewTrainer(backbone, labelSpec(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	err = tr.AddExample("Who ?", map[string]any{"label": "HUM", "topic": "x"})
	te := wantCode(t, err, CodeInvalidArgument)
	if !strings.Contains(te.Message, "topic") {
		t.Errorf("message %q does not name the unknown task", te.Message)
	}
	wantCode(t, tr.AddExample("Who ?", map[string]any{}), CodeInvalidArgument)
	wantCode(t, tr.AddExample("Who ?", map[string]any{"label": []string{"HUM"}}), CodeInvalidArgument)
	wantCode(t, tr.AddExampleJSON("Who ?", `{"label":`), CodeInvalidArgument)
	wantCode(t, tr.AddValidationExample("Who ?", map[string]any{"nope": 1}), CodeInvalidArgument)
	wantCode(t, tr.AddExample("Who ?", map[string]any{"label": make(chan int)}), CodeInvalidArgument)
	if n := tr.ExampleCount(); n != 0 {
		t.Errorf("rejected examples were added: %d", n)
	}

	// Nothing trained yet.
	wantCode(t, tr.Train(context.Background(), nil), CodeInvalidArgument) // no examples
	_, err = tr.Report()
	wantCode(t, err, CodeInvalidArgument)
	wantCode(t, tr.Save(filepath.Join(t.TempDir(), "b")), CodeInvalidArgument)
	_, err = tr.Evaluate([]string{"Who ?"}, []map[string]any{{"label": "HUM"}})
	wantCode(t, err, CodeInvalidArgument)

	// Evaluate checks its labels too.
	trained, _ := trainedFixture(t)
	_, err = trained.Evaluate([]string{"Who ?"}, []map[string]any{{"topic": "HUM"}})
	wantCode(t, err, CodeInvalidArgument)
	_, err = trained.Evaluate([]string{"Who ?", "What ?"}, []map[string]any{{"label": "HUM"}})
	wantCode(t, err, CodeInvalidArgument)
	_, err = trained.Evaluate(nil, nil)
	wantCode(t, err, CodeInvalidArgument)
}

func TestBadOptions(t *testing.T) {
	_, err := LoadBackbone(WithVariant("fp64"))
	wantCode(t, err, CodeInvalidArgument)
	_, err = LoadBackbone(WithDevice("tpu"))
	wantCode(t, err, CodeInvalidArgument)
	_, err = LoadBackbone(WithBatching(0, 1))
	wantCode(t, err, CodeInvalidArgument)
	_, err = LoadBackbone(WithBackboneDir(filepath.Join(t.TempDir(), "none")))
	wantCode(t, err, CodeNotFound)
	_, err = LoadBackbone(WithBackbone("no-such-backbone"))
	wantCode(t, err, CodeNotFound)
	_, err = LoadBackbone(WithBackbone("../models"))
	wantCode(t, err, CodeInvalidArgument)
}

// A backbone by the name setup installs it under (CI's setup installs minilm-l3 with --tests).
func TestBackboneByName(t *testing.T) {
	b, err := LoadBackbone(WithBackbone("minilm-l3"), WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Dim() != 384 {
		t.Errorf("minilm-l3: dim %d, want 384", b.Dim())
	}
	if b.GraphSHA256() == backbone.GraphSHA256() {
		t.Error("minilm-l3 loaded the default backbone's graph")
	}
}

func TestOtherVariant(t *testing.T) {
	b, err := LoadBackbone(WithVariant("int8"), WithThreads(2), WithBatching(8, 2))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.GraphSHA256() == backbone.GraphSHA256() {
		t.Error("the int8 graph has the fp32 graph's sha256")
	}
	in := []string{"How far is the moon ?"}
	q, err := b.Embed(in)
	if err != nil {
		t.Fatal(err)
	}
	f, err := backbone.Embed(in)
	if err != nil {
		t.Fatal(err)
	}
	// Quantized, so close to the fp32 embedding but not the same.
	if c := dot(q[0], f[0]); c < 0.9 || c > 0.999999 {
		t.Errorf("int8 vs fp32 cosine %v", c)
	}
}

func TestCancelFromProgress(t *testing.T) {
	tr := newTrainer(t, labelSpec(5, 50))
	calls := 0
	err := tr.Train(context.Background(), func(p Progress) bool {
		calls++
		return p.Stage != "heads" || p.Epoch < 1
	})
	wantCode(t, err, CodeCancelled)
	if !errors.Is(err, ErrCancelled) || errors.Is(err, context.Canceled) {
		t.Errorf("error %v", err)
	}
	if calls == 0 {
		t.Error("progress never called")
	}
	// Nothing changed: no heads yet, examples kept, and the trainer is usable.
	_, err = tr.Report()
	wantCode(t, err, CodeInvalidArgument)
	if n := tr.ExampleCount(); n != nTrain {
		t.Errorf("%d examples after cancelling", n)
	}
	if err := tr.Train(context.Background(), nil); err != nil {
		t.Fatalf("training after a cancel: %v", err)
	}
}

func TestCancelWithContext(t *testing.T) {
	tr := newTrainer(t, labelSpec(6, 3))
	if err := tr.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	first, err := tr.ReportJSON()
	if err != nil {
		t.Fatal(err)
	}

	// Cancelled from inside the progress function.
	ctx, cancel := context.WithCancel(context.Background())
	err = tr.Train(ctx, func(p Progress) bool {
		if p.Stage == "heads" {
			cancel()
		}
		return true
	})
	cancel()
	wantCode(t, err, CodeCancelled)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCancelled) {
		t.Errorf("errors.Is fails for %v", err)
	}

	// Already cancelled.
	err = tr.Train(ctx, func(Progress) bool {
		t.Error("progress called with a cancelled context")
		return true
	})
	wantCode(t, err, CodeCancelled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(%v, context.Canceled) is false", err)
	}

	// A deadline that passes during training (the progress function is slow).
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	slow := newTrainer(t, labelSpec(7, 1000))
	start := time.Now()
	err = slow.Train(ctx, func(Progress) bool {
		time.Sleep(20 * time.Millisecond)
		return true
	})
	wantCode(t, err, CodeCancelled)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) is false", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancelling took %v", d)
	}

	// The previous heads and report survive the cancelled runs.
	again, err := tr.ReportJSON()
	if err != nil || again != first {
		t.Errorf("the report changed after cancelled runs (%v)", err)
	}
	if err := tr.Train(context.Background(), nil); err != nil {
		t.Errorf("training after cancels: %v", err)
	}
}

func TestCancelWhileEmbedding(t *testing.T) {
	// Without the embedding cache every text is embedded, reported in chunks of texts.
	spec := labelSpec(0, 2)
	spec.EmbeddingCache = Ptr(false)
	tr, err := NewTrainer(backbone, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, e := range trainSet()[:40] {
		if err := tr.AddExample(e.Text, map[string]any{"label": e.Label}); err != nil {
			t.Fatal(err)
		}
	}
	var stages []string
	err = tr.Train(context.Background(), func(p Progress) bool {
		stages = append(stages, p.Stage)
		return false
	})
	te := wantCode(t, err, CodeCancelled)
	if len(stages) != 1 || stages[0] != "embed" || !strings.Contains(te.Message, "embedding") {
		t.Errorf("progress stages %v, error %v; want one embed report", stages, err)
	}
}

func TestPanicInProgress(t *testing.T) {
	tr := newTrainer(t, labelSpec(0, 3))
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		_ = tr.Train(context.Background(), func(Progress) bool { panic("boom") })
		t.Error("Train returned instead of panicking")
	}()
	if err := tr.Train(context.Background(), nil); err != nil {
		t.Errorf("training after a panic: %v", err)
	}
}

func TestTrainerBusy(t *testing.T) {
	tr := newTrainer(t, labelSpec(0, 2))
	_, dir := trainedFixture(t)
	m := loadModel(t, dir)
	var inner []error
	err := tr.Train(context.Background(), func(p Progress) bool {
		if len(inner) == 0 {
			inner = append(inner, tr.AddExample("x", map[string]any{"label": "HUM"}))
			_, err := m.SwapHeads(tr)
			inner = append(inner, err)
			inner = append(inner, tr.Train(context.Background(), nil))
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range inner {
		wantCode(t, e, CodeInvalidArgument)
		if !errors.Is(e, ErrBusy) {
			t.Errorf("call %d: %v is not ErrBusy", i, e)
		}
	}
	if m.HeadsVersion() != 0 {
		t.Error("a busy swap swapped")
	}
	if n := tr.ExampleCount(); n != nTrain {
		t.Errorf("%d examples", n)
	}

	// Close from inside the progress function: the run finishes, then the trainer is gone.
	err = tr.Train(context.Background(), func(Progress) bool {
		tr.Close()
		return true
	})
	if err != nil {
		t.Errorf("train with a close inside: %v", err)
	}
	if err := tr.Save(filepath.Join(t.TempDir(), "b")); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close: %v", err)
	}
}

func TestOpenModelOnTheBackboneItRecords(t *testing.T) {
	b, err := LoadBackbone(WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, dir := trainedFixture(t)
	loaded, err := LoadModel(b, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	// No backbone given: the bundle names the one it was trained on, found in the cache.
	opened, err := OpenModel(dir, WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	defer opened.Close()
	texts := []string{"Who wrote Hamlet ?", "Where is Rome ?"}
	a, err := loaded.Predict(texts)
	if err != nil {
		t.Fatal(err)
	}
	o, err := opened.Predict(texts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		pa, pb := a[i].Tasks[0].Probabilities, o[i].Tasks[0].Probabilities
		if len(pa) == 0 || len(pa) != len(pb) {
			t.Fatalf("text %d: %d and %d probabilities", i, len(pa), len(pb))
		}
		for k := range pa {
			if d := pa[k].Probability - pb[k].Probability; d > 1e-6 || d < -1e-6 {
				t.Errorf("text %d class %d: %v loaded, %v opened", i, k, pa[k], pb[k])
			}
		}
	}
	if _, err := OpenModel(filepath.Join(t.TempDir(), "no-such-bundle")); !errors.Is(err, ErrNotFound) {
		t.Errorf("opening a missing bundle: %v", err)
	}
}

func TestClosedHandles(t *testing.T) {
	b, err := LoadBackbone(WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	_, dir := trainedFixture(t)
	m, err := LoadModel(b, dir)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(b, labelSpec(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	// Models and trainers keep the backbone alive.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Predict([]string{"Who wrote Hamlet ?"}); err != nil {
		t.Errorf("predicting after closing the backbone: %v", err)
	}
	if err := tr.AddExample("Who ?", map[string]any{"label": "HUM"}); err != nil {
		t.Errorf("adding an example after closing the backbone: %v", err)
	}

	_, err = b.Embed([]string{"x"})
	checkClosed(t, err)
	_, err = LoadModel(b, dir)
	checkClosed(t, err)
	_, err = NewTrainer(b, labelSpec(0, 1))
	checkClosed(t, err)
	if b.Dim() != 0 || b.GraphSHA256() != "" {
		t.Error("a closed backbone reports a dimension or graph")
	}

	for i := 0; i < 2; i++ { // Close is idempotent
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = m.Predict([]string{"x"})
	checkClosed(t, err)
	_, err = m.PredictGroups([]string{"x"}, []string{"g"}, AggregateMean)
	checkClosed(t, err)
	_, err = m.SwapBundle(dir)
	checkClosed(t, err)
	_, err = m.ManifestJSON()
	checkClosed(t, err)
	if m.HeadsVersion() != 0 {
		t.Error("a closed model reports a heads version")
	}
	checkClosed(t, tr.AddExample("x", map[string]any{"label": "HUM"}))
	checkClosed(t, tr.Train(context.Background(), nil))
	_, err = tr.Report()
	checkClosed(t, err)
	if tr.ExampleCount() != 0 {
		t.Error("a closed trainer counts examples")
	}
	live, err := LoadModel(backbone, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	_, err = live.SwapHeads(tr)
	checkClosed(t, err)

	var nilModel *Model
	_, err = nilModel.Predict([]string{"x"})
	checkClosed(t, err)
	if err := nilModel.Close(); err != nil {
		t.Error(err)
	}
}

func checkClosed(t *testing.T, err error) {
	t.Helper()
	wantCode(t, err, CodeNullArgument)
	if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("%v does not say the handle is closed", err)
	}
}

func TestFinalizersFreeHandles(t *testing.T) {
	_, dir := trainedFixture(t)
	runtime.GC()
	before := atomic.LoadInt64(&liveHandles)
	func() {
		// Handles that are never closed.
		if _, err := LoadModel(backbone, dir); err != nil {
			t.Fatal(err)
		}
		if _, err := NewTrainer(backbone, labelSpec(0, 1)); err != nil {
			t.Fatal(err)
		}
	}()
	if n := atomic.LoadInt64(&liveHandles); n != before+2 {
		t.Fatalf("%d live handles, want %d", n, before+2)
	}
	deadline := time.Now().Add(10 * time.Second)
	for atomic.LoadInt64(&liveHandles) > before {
		if time.Now().After(deadline) {
			t.Fatalf("unreachable handles were not finalized: %d live, %d before", atomic.LoadInt64(&liveHandles), before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConcurrentPredictAndSwap(t *testing.T) {
	_, dir := trainedFixture(t)
	m := loadModel(t, dir)
	other := newTrainer(t, labelSpec(11, 2))
	if err := other.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	probe := texts(evalSet()[:4])
	refA, err := m.Predict(probe) // version 0: the bundle's heads
	if err != nil {
		t.Fatal(err)
	}
	// Even versions serve the bundle's heads, odd versions the other trainer's.
	if v, err := m.SwapHeads(other); err != nil || v != 1 {
		t.Fatalf("swap: %d, %v", v, err)
	}
	refB, err := m.Predict(probe)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := m.SwapBundle(dir); err != nil || v != 2 {
		t.Fatalf("swap back: %d, %v", v, err)
	}

	const workers, rounds = 4, 6
	var wg sync.WaitGroup
	var predictions, sawOdd, sawEven int64
	errs := make(chan error, workers+1)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				got, err := m.Predict(probe)
				if err != nil {
					errs <- err
					return
				}
				v := got[0].HeadsVersion
				ref := refA
				if v%2 == 1 {
					ref = refB
					atomic.AddInt64(&sawOdd, 1)
				} else {
					atomic.AddInt64(&sawEven, 1)
				}
				for i := range got {
					if got[i].HeadsVersion != v {
						errs <- errors.New("one call mixed heads versions")
						return
					}
					if d := maxDiff(probsOf(got[i]), probsOf(ref[i])); d > 1e-4 {
						errs <- fmt.Errorf("predictions of version %d do not match its heads (diff %v)", v, d)
						return
					}
				}
				atomic.AddInt64(&predictions, 1)
			}
		}()
	}
	// Swap back and forth until the predictions are done.
	done := make(chan struct{})
	swapped := make(chan int)
	go func() {
		n := 0
		defer func() { swapped <- n }()
		for {
			select {
			case <-done:
				return
			default:
			}
			var err error
			if m.HeadsVersion()%2 == 0 {
				_, err = m.SwapHeads(other)
			} else {
				_, err = m.SwapBundle(dir)
			}
			if err != nil {
				errs <- err
				return
			}
			n++
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	close(done)
	swaps := <-swapped
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if predictions != workers*rounds {
		t.Errorf("%d of %d predictions finished", predictions, workers*rounds)
	}
	if v := m.HeadsVersion(); v != uint64(2+swaps) || swaps < 2 {
		t.Errorf("HeadsVersion %d after %d swaps, want %d", v, swaps, 2+swaps)
	}
	t.Logf("%d predictions on even heads, %d on odd heads", sawEven, sawOdd)
}

func TestCloseWaitsForPredictions(t *testing.T) {
	_, dir := trainedFixture(t)
	m, err := LoadModel(backbone, dir)
	if err != nil {
		t.Fatal(err)
	}
	probe := texts(evalSet()[:8])
	var wg sync.WaitGroup
	results := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.Predict(probe)
			results <- err
		}()
	}
	time.Sleep(5 * time.Millisecond)
	m.Close()
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("a prediction racing Close failed with %v", err)
		}
	}
}

// Every field of TrainConfig marshals to a key the library knows (unknown keys are errors).
func TestFullConfigAccepted(t *testing.T) {
	stage := func(epochs int) *StageConfig {
		return &StageConfig{
			Epochs: Ptr(epochs), LR: Ptr(1e-3), WeightDecay: Ptr(0.0), BatchSize: Ptr(32),
			Patience: Ptr(0), MinDelta: Ptr(1e-3), Schedule: SchedulePlateau,
			WarmupFraction: Ptr(0.1), ClipNorm: Ptr(0.0),
		}
	}
	spec := TrainerSpec{
		Tasks: []TaskSpec{{Name: "label", Kind: TaskMulticlass}, {Name: "person", Kind: TaskBinary, Positive: "yes"}},
		Config: &TrainConfig{
			Mode: ModeJoint, Seed: Ptr[uint64](9), ValidFraction: Ptr(0.25),
			TuneThresholds: Ptr(false), F16Weights: Ptr(true),
			Metadata: &MetadataConfig{TopK: Ptr(8), Hidden: Ptr([]int{}), CodeDim: Ptr(8), Dropout: Ptr(0.0), Stage: stage(2)},
			Head:     &HeadConfig{Hidden: Ptr([]int{32, 16}), Dropout: Ptr(0.1), Stage: stage(3)},
			Unfreeze: &UnfreezeConfig{AtEpoch: Ptr(1), LRScale: Ptr(0.5)},
			Loss: &LossConfig{
				Classification: LossFocal, Regression: LossHuber, LabelSmoothing: Ptr(0.1),
				FocalGamma: Ptr(1.5), HuberDelta: Ptr(0.5), ClassWeights: ClassWeightsBalanced,
				MultiTask: MultiTaskUncertainty,
			},
		},
		EmbeddingCache: Ptr(true),
	}
	tr, err := NewTrainer(backbone, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, e := range trainSet()[:200] {
		person := "no"
		if e.Label == "HUM" {
			person = "yes"
		}
		if err := tr.AddExample(e.Text, map[string]any{"label": e.Label, "person": person}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	rep, err := tr.Report()
	if err != nil {
		t.Fatal(err)
	}
	// Joint mode, one stage of 3 epochs (patience 0), a quarter held out, untuned thresholds.
	if rep.Mode != ModeJoint || rep.NValid < 45 || rep.NValid > 55 || len(rep.Stages) != 1 || len(rep.Stages[0].History) != 3 {
		t.Errorf("report does not follow the config: %s", rep.Raw)
	}
	if th := rep.ValidMetrics.Tasks["person"].Threshold; th == nil || *th != 0.5 {
		t.Errorf("binary threshold %v with tune_thresholds false", th)
	}
	// Each enum value is accepted too.
	for _, c := range []TrainConfig{
		{Mode: ModeTwoStage}, {Mode: ModeMetadataOnly}, {Mode: ModeEmbeddingOnly},
		{Head: &HeadConfig{Stage: &StageConfig{Schedule: ScheduleConstant}}},
		{Head: &HeadConfig{Stage: &StageConfig{Schedule: ScheduleCosine}}},
		{Loss: &LossConfig{Classification: LossCrossEntropy, Regression: LossMSE, MultiTask: MultiTaskFixed}},
		{Loss: &LossConfig{ClassWeights: ClassWeightsNone}}, {Loss: &LossConfig{ClassWeights: ClassWeightsSqrt}},
		{Loss: &LossConfig{ClassWeights: ClassWeightsEffectiveNumber}},
	} {
		c := c
		other, err := NewTrainer(backbone, TrainerSpec{Tasks: spec.Tasks, Config: &c})
		if err != nil {
			t.Errorf("%+v: %v", c, err)
			continue
		}
		other.Close()
	}
}
