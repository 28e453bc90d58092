package tandem

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// secondBundle trains another TREC bundle (other seed, fewer epochs) and saves it.
func secondBundle(t *testing.T) string {
	t.Helper()
	tr := newTrainer(t, labelSpec(11, 3))
	if err := tr.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "second")
	if err := tr.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// otherTasksBundle trains a metadata-only bundle with a task "topic" and saves it.
func otherTasksBundle(t *testing.T) string {
	t.Helper()
	tr, err := NewTrainer(backbone, TrainerSpec{
		Tasks:  []TaskSpec{{Name: "topic", Kind: TaskMulticlass}},
		Config: &TrainConfig{Mode: ModeMetadataOnly, Seed: Ptr(uint64(0))},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for i := 0; i < 20; i++ {
		text, topic := "It is here.", "s"
		if i%2 == 1 {
			text, topic = "Where is it ?", "q"
		}
		if err := tr.AddExample(text, map[string]any{"topic": topic}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "other")
	if err := tr.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func argmax32(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// TestEnsemble: an ensemble's probabilities are its members' mean (from Model.Predict) and its
// label their top class, whether made from loaded models or opened from directories; an
// ensemble of one is its model; groups combine the averaged outputs; the models may be closed
// first.
func TestEnsemble(t *testing.T) {
	_, dir := trainedFixture(t)
	dir2 := secondBundle(t)
	a := loadModel(t, dir)
	b := loadModel(t, dir2)
	in := texts(evalSet()[:6])
	pa, err := a.Predict(in)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.Predict(in)
	if err != nil {
		t.Fatal(err)
	}
	mean := make([][]float32, len(in))
	for i := range in {
		x, y := probsOf(pa[i]), probsOf(pb[i])
		mean[i] = make([]float32, len(x))
		for k := range x {
			mean[i][k] = (x[k] + y[k]) / 2
		}
	}

	e, err := NewEnsemble(a, b)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if n := e.MemberCount(); n != 2 {
		t.Fatalf("%d members, want 2", n)
	}
	got, err := e.Predict(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("%d predictions for %d texts", len(got), len(in))
	}
	for i, p := range got {
		if d := maxDiff(probsOf(p), mean[i]); d > 1e-6 {
			t.Errorf("row %d: %v is not the members' mean %v (%g)", i, probsOf(p), mean[i], d)
		}
		tp := p.Tasks[0]
		if want := tp.Probabilities[argmax32(mean[i])].Class; tp.Label() != want || tp.Task != "label" {
			t.Errorf("row %d: task %q label %q, want label %q", i, tp.Task, tp.Label(), want)
		}
		if p.HeadsVersion != 0 {
			t.Errorf("row %d: heads version %d", i, p.HeadsVersion)
		}
	}

	// Opened from the directories, it predicts the same.
	opened, err := OpenEnsemble([]string{dir, dir2}, WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	defer opened.Close()
	got2, err := opened.Predict(in)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range got2 {
		if d := maxDiff(probsOf(p), mean[i]); d > 1e-5 {
			t.Errorf("opened, row %d: %g from the members' mean", i, d)
		}
	}

	// An ensemble of one is its model; one model given twice is two members.
	one, err := NewEnsemble(a)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	twice, err := NewEnsemble(a, a)
	if err != nil {
		t.Fatal(err)
	}
	defer twice.Close()
	if one.MemberCount() != 1 || twice.MemberCount() != 2 {
		t.Errorf("members: %d and %d, want 1 and 2", one.MemberCount(), twice.MemberCount())
	}
	p1, err := one.Predict(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if d := maxDiff(probsOf(p1[i]), probsOf(pa[i])); d > 1e-6 || p1[i].Tasks[0].Label() != pa[i].Tasks[0].Label() {
			t.Errorf("ensemble of one, row %d: %g from the model, label %q vs %q", i, d, p1[i].Tasks[0].Label(), pa[i].Tasks[0].Label())
		}
	}

	// Groups average the ensemble's rows: a = rows 1 and 4, b = 0, 2 and 5, c = 3.
	groups := []string{"b", "a", "b", "c", "a", "b"}
	g, err := e.PredictGroups(in, groups, AggregateMean)
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != 3 || g[0].Group != "a" || g[1].Group != "b" || g[2].Group != "c" {
		t.Fatalf("groups: %+v", g)
	}
	wantA := make([]float32, len(mean[1]))
	for k := range wantA {
		wantA[k] = (mean[1][k] + mean[4][k]) / 2
	}
	if d := maxDiff(probsOf(g[0]), wantA); d > 1e-5 {
		t.Errorf("group a: %g from the mean of its rows", d)
	}
	if d := maxDiff(probsOf(g[2]), mean[3]); d > 1e-6 {
		t.Errorf("group c: %g from its one row", d)
	}
	_, err = e.PredictGroups(in, groups[1:], AggregateMean)
	wantCode(t, err, CodeInvalidArgument)
	_, err = e.PredictGroups(in, groups, Aggregation(9))
	wantCode(t, err, CodeInvalidArgument)
	_, err = e.Predict([]string{"ok", "\xff"})
	wantCode(t, err, CodeInvalidUTF8)

	// Many goroutines predict at once, each getting what one alone gets.
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 3; k++ {
				p, err := e.Predict(in)
				if err != nil {
					errs <- err.Error()
					return
				}
				for i := range in {
					if d := maxDiff(probsOf(p[i]), probsOf(got[i])); d > 1e-6 {
						errs <- fmt.Sprintf("row %d moved by %g under concurrency", i, d)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}

	// The members' models closed, the ensemble still predicts the same.
	a.Close()
	b.Close()
	again, err := e.Predict(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if d := maxDiff(probsOf(again[i]), probsOf(got[i])); d != 0 {
			t.Errorf("after closing the models, row %d moved by %g", i, d)
		}
	}
}

func TestEnsembleErrors(t *testing.T) {
	_, dir := trainedFixture(t)
	other := otherTasksBundle(t)
	a := loadModel(t, dir)
	o := loadModel(t, other)

	_, err := NewEnsemble(a, o)
	te := wantCode(t, err, CodeInvalidArgument)
	if !strings.Contains(te.Message, "member 2") || !strings.Contains(te.Message, "topic") {
		t.Errorf("the message does not name the member and its tasks: %s", te.Message)
	}
	_, err = OpenEnsemble([]string{dir, other})
	wantCode(t, err, CodeInvalidArgument)
	_, err = NewEnsemble()
	wantCode(t, err, CodeInvalidArgument)
	_, err = OpenEnsemble(nil)
	wantCode(t, err, CodeInvalidArgument)
	_, err = OpenEnsemble([]string{dir, ""})
	wantCode(t, err, CodeInvalidArgument)
	_, err = OpenEnsemble([]string{dir, filepath.Join(t.TempDir(), "missing")})
	wantCode(t, err, CodeNotFound)
	_, err = OpenEnsemble([]string{"\xff"})
	wantCode(t, err, CodeInvalidUTF8)
	_, err = NewEnsemble(a, nil)
	checkClosed(t, err)
	closed := loadModel(t, dir)
	closed.Close()
	_, err = NewEnsemble(a, closed)
	checkClosed(t, err)

	// A closed (or nil) ensemble fails cleanly.
	e, err := NewEnsemble(a)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	e.Close()
	_, err = e.Predict([]string{"x"})
	checkClosed(t, err)
	_, err = e.PredictGroups([]string{"x"}, []string{"g"}, AggregateMean)
	checkClosed(t, err)
	if e.MemberCount() != 0 {
		t.Error("a closed ensemble has members")
	}
	var none *Ensemble
	_, err = none.Predict([]string{"x"})
	checkClosed(t, err)
	if none.Close() != nil || none.MemberCount() != 0 {
		t.Error("a nil ensemble")
	}
}

func TestEnsembleFinalizer(t *testing.T) {
	_, dir := trainedFixture(t)
	a := loadModel(t, dir)
	runtime.GC()
	before := atomic.LoadInt64(&liveHandles)
	func() {
		// Never closed.
		if _, err := NewEnsemble(a, a); err != nil {
			t.Fatal(err)
		}
	}()
	if n := atomic.LoadInt64(&liveHandles); n != before+1 {
		t.Fatalf("%d live handles, want %d", n, before+1)
	}
	deadline := time.Now().Add(10 * time.Second)
	for atomic.LoadInt64(&liveHandles) > before {
		if time.Now().After(deadline) {
			t.Fatalf("an unreachable ensemble was not finalized")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
