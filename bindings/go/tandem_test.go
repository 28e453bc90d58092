package tandem

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestVersions(t *testing.T) {
	if v := Version(); !strings.HasPrefix(v, "0.") || strings.Count(v, ".") != 2 {
		t.Errorf("Version() = %q, want a 0.x.y version", v)
	}
	if ABIVersion() != HeaderABIVersion {
		t.Errorf("ABIVersion() = %d, header says %d", ABIVersion(), HeaderABIVersion)
	}
	if got := CodeNotFound.String(); got != "not_found" {
		t.Errorf("CodeNotFound.String() = %q", got)
	}
	if got := ErrorCode(999).String(); got != "unknown" {
		t.Errorf("ErrorCode(999).String() = %q", got)
	}
}

func TestPruneCache(t *testing.T) {
	root := t.TempDir()
	graph := filepath.Join(root, "0123456789abcdef")
	if err := os.MkdirAll(graph, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]int{"pooled.v2": 1000, "tokens.v3": 3000} {
		if err := os.WriteFile(filepath.Join(graph, name), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if freed, err := PruneCache(root, NoCacheCap, time.Hour); err != nil || freed != 0 {
		t.Fatalf("nothing is an hour old: freed %d, %v", freed, err)
	}
	if freed, err := PruneCache(root, 0, 0); err != nil || freed != 4000 {
		t.Fatalf("a cap of 0 frees everything: freed %d, %v", freed, err)
	}
	if _, err := PruneCache("\xff", 0, 0); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("invalid UTF-8: %v", err)
	}
}

func TestDoctor(t *testing.T) {
	r, err := Doctor()
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK {
		t.Fatalf("doctor reports a failure: %s", r.Raw)
	}
	names := map[string]bool{}
	for _, c := range r.Checks {
		if !c.OK {
			t.Errorf("check %q failed: %s", c.Name, c.Detail)
		}
		names[c.Name] = true
	}
	if !names["tandem"] || len(r.Checks) < 3 {
		t.Errorf("unexpected checks: %s", r.Raw)
	}
	cpu := false
	for _, p := range r.ExecutionProviders {
		cpu = cpu || (p.Name == "CPUExecutionProvider" && p.Available)
	}
	if !cpu {
		t.Errorf("no CPU execution provider in %s", r.Raw)
	}
}

func TestEmbedShapeAndNorm(t *testing.T) {
	if d := backbone.Dim(); d != 384 {
		t.Fatalf("Dim() = %d, want 384", d)
	}
	if s := backbone.GraphSHA256(); len(s) != 64 {
		t.Errorf("GraphSHA256() = %q, want 64 hex digits", s)
	}
	in := []string{
		"How far is the moon from the earth ?",
		"What is the distance between the earth and the moon ?",
		"Free entry! Text WIN to 87121 to claim your prize",
		"How far is the moon from the earth ?",
		"",
	}
	emb, err := backbone.Embed(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(emb) != len(in) {
		t.Fatalf("%d rows for %d texts", len(emb), len(in))
	}
	for i, row := range emb {
		if len(row) != 384 {
			t.Fatalf("row %d has %d floats", i, len(row))
		}
		if n := norm(row); math.Abs(n-1) > 1e-4 {
			t.Errorf("row %d has norm %v, want 1", i, n)
		}
	}
	if d := dot(emb[0], emb[3]); math.Abs(d-1) > 1e-5 {
		t.Errorf("the same text embeds differently (cos %v)", d)
	}
	if para, other := dot(emb[0], emb[1]), dot(emb[0], emb[2]); para < other+0.3 {
		t.Errorf("paraphrase cos %v not well above unrelated cos %v", para, other)
	}
	// Appending to a row must not overwrite the next one.
	_ = append(emb[0], 42)
	if emb[1][0] == 42 {
		t.Error("rows alias each other")
	}
	empty, err := backbone.Embed(nil)
	if err != nil || len(empty) != 0 {
		t.Errorf("Embed(nil) = %v, %v", empty, err)
	}
}

func TestEmbedInvalidUTF8(t *testing.T) {
	_, err := backbone.Embed([]string{"fine", "caf\xe9"})
	te := wantCode(t, err, CodeInvalidUTF8)
	if !errors.Is(err, ErrInvalidUTF8) || errors.Is(err, ErrInvalidArgument) {
		t.Errorf("errors.Is is wrong for %v", err)
	}
	if !strings.Contains(te.Message, "texts[1]") {
		t.Errorf("message %q does not name texts[1]", te.Message)
	}
}

func TestMetadata(t *testing.T) {
	names := MetadataFeatureNames()
	if len(names) < 10 {
		t.Fatalf("only %d metadata features: %v", len(names), names)
	}
	col := map[string]int{}
	for i, n := range names {
		if n == "" {
			t.Errorf("feature %d has no name", i)
		}
		col[n] = i
	}
	for _, want := range []string{"char_count", "word_count", "question_rate"} {
		if _, ok := col[want]; !ok {
			t.Fatalf("no feature %q in %v", want, names)
		}
	}
	rows, err := ExtractMetadata([]string{"héllo wörld", "Why?", ""})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || len(rows[0]) != len(names) {
		t.Fatalf("shape %dx%d, want 3x%d", len(rows), len(rows[0]), len(names))
	}
	// Characters, not bytes: "héllo wörld" is 13 bytes.
	if got := rows[0][col["char_count"]]; got != 11 {
		t.Errorf("char_count = %v, want 11", got)
	}
	if got := rows[0][col["word_count"]]; got != 2 {
		t.Errorf("word_count = %v, want 2", got)
	}
	if got := rows[1][col["question_rate"]]; math.Abs(float64(got)-0.25) > 1e-6 {
		t.Errorf("question_rate of \"Why?\" = %v, want 0.25", got)
	}
	for i, r := range rows {
		for j, v := range r {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Errorf("row %d feature %s = %v", i, names[j], v)
			}
		}
	}
	_, err = ExtractMetadata([]string{"\xff"})
	wantCode(t, err, CodeInvalidUTF8)
}

func TestTrainSaveLoadPredict(t *testing.T) {
	tr, dir := trainedFixture(t)
	if n := tr.ExampleCount(); n != nTrain {
		t.Errorf("ExampleCount() = %d, want %d", n, nTrain)
	}
	rep, err := tr.Report()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mode != ModeEmbeddingOnly || rep.NTrain+rep.NValid != nTrain || rep.NValid == 0 {
		t.Errorf("report: mode %q, %d train + %d valid", rep.Mode, rep.NTrain, rep.NValid)
	}
	if len(rep.Stages) != 1 || len(rep.Stages[0].History) == 0 || len(rep.Stages[0].History) > 8 {
		t.Fatalf("unexpected stages: %s", rep.Raw)
	}
	h := rep.Stages[0].History
	if math.IsNaN(h[0].TrainLoss) || h[len(h)-1].TrainLoss >= h[0].TrainLoss {
		t.Errorf("training loss did not fall: %v -> %v", h[0].TrainLoss, h[len(h)-1].TrainLoss)
	}
	vm, ok := rep.ValidMetrics.Tasks["label"]
	if !ok || vm.N != rep.NValid || vm.Accuracy < 0.6 || len(vm.PerClass) != 6 || len(vm.Confusion) != 6 {
		t.Errorf("validation metrics: %+v (raw %s)", vm, rep.ValidMetrics.Raw)
	}

	m := loadModel(t, dir)
	if v := m.HeadsVersion(); v != 0 {
		t.Errorf("HeadsVersion() = %d after load", v)
	}
	eval := evalSet()
	preds, err := m.Predict(texts(eval))
	if err != nil {
		t.Fatal(err)
	}
	if len(preds) != len(eval) {
		t.Fatalf("%d predictions for %d texts", len(preds), len(eval))
	}
	if none, err := m.Predict(nil); err != nil || len(none) != 0 {
		t.Errorf("Predict(nil) = %v, %v", none, err)
	}
	classes := []string{"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"}
	correct := 0
	for i, p := range preds {
		if p.Group != "" || p.HeadsVersion != 0 || len(p.Tasks) != 1 {
			t.Fatalf("prediction %d: %+v", i, p)
		}
		tp, ok := p.Task("label")
		if !ok || tp.Kind != TaskMulticlass || len(tp.Labels) != 1 || !math.IsNaN(float64(tp.Value)) {
			t.Fatalf("prediction %d: %+v", i, tp)
		}
		if len(tp.Probabilities) != len(classes) {
			t.Fatalf("prediction %d has %d probabilities", i, len(tp.Probabilities))
		}
		sum, best := 0.0, 0
		for k, cp := range tp.Probabilities {
			if cp.Class != classes[k] {
				t.Fatalf("class %d is %q, want %q", k, cp.Class, classes[k])
			}
			sum += float64(cp.Probability)
			if cp.Probability > tp.Probabilities[best].Probability {
				best = k
			}
		}
		if math.Abs(sum-1) > 1e-4 {
			t.Errorf("prediction %d: probabilities sum to %v", i, sum)
		}
		if tp.Label() != classes[best] {
			t.Errorf("prediction %d: label %q but the most probable class is %q", i, tp.Label(), classes[best])
		}
		if pr, _ := tp.Probability(tp.Label()); pr != tp.Probabilities[best].Probability {
			t.Errorf("Probability(%q) = %v", tp.Label(), pr)
		}
		if tp.Label() == eval[i].Label {
			correct++
		}
	}
	acc := float64(correct) / float64(len(eval))
	if acc < 0.6 {
		t.Errorf("held-out accuracy %.3f, want at least 0.6 (6 classes)", acc)
	}

	// The trainer's own evaluation of the same texts agrees with the loaded bundle.
	ev, err := tr.Evaluate(texts(eval), labelMaps(eval))
	if err != nil {
		t.Fatal(err)
	}
	em := ev.Tasks["label"]
	if em.N != len(eval) || math.Abs(em.Accuracy-acc) > 1e-9 || em.MacroF1 <= 0 || em.MacroF1 > 1 {
		t.Errorf("Evaluate: n %d accuracy %v macro-F1 %v; Predict accuracy %v", em.N, em.Accuracy, em.MacroF1, acc)
	}
	if len(em.PerClass) != 6 || em.PerClass[3].Label != "HUM" {
		t.Errorf("per-class metrics: %+v", em.PerClass)
	}

	// The manifest describes the bundle.
	js, err := m.ManifestJSON()
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Format string `json:"format"`
		Tasks  []struct {
			Name   string   `json:"name"`
			Kind   string   `json:"kind"`
			Labels []string `json:"labels"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(js), &man); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if !strings.HasPrefix(man.Format, "tandem-bundle/") || len(man.Tasks) != 1 || man.Tasks[0].Name != "label" ||
		strings.Join(man.Tasks[0].Labels, ",") != strings.Join(classes, ",") {
		t.Errorf("manifest: %+v", man)
	}
}

func TestProgressReports(t *testing.T) {
	tr := newTrainer(t, labelSpec(3, 4))
	var got []Progress
	if err := tr.Train(context.Background(), func(p Progress) bool {
		got = append(got, p)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	var heads []Progress
	for _, p := range got {
		switch p.Stage {
		case "embed":
			if !math.IsNaN(float64(p.TrainLoss)) {
				t.Errorf("embed progress with a loss: %v", p)
			}
		case "heads":
			heads = append(heads, p)
		default:
			t.Errorf("unexpected stage in %v", p)
		}
	}
	if len(heads) == 0 || len(heads) > 4 {
		t.Fatalf("%d epochs reported: %v", len(heads), got)
	}
	for i, p := range heads {
		if p.Epoch != i || p.Epochs != 4 || math.IsNaN(float64(p.TrainLoss)) || math.IsNaN(float64(p.ValidLoss)) {
			t.Errorf("epoch report %d: %v", i, p)
		}
	}
	rep, err := tr.Report()
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Stages[0].EpochsRun; n != len(heads) {
		t.Errorf("report says %d epochs, progress saw %d", n, len(heads))
	}
}

func TestMultiTaskPredictions(t *testing.T) {
	spec := TrainerSpec{
		Tasks: []TaskSpec{
			{Name: "label", Kind: TaskMulticlass},
			{Name: "person", Kind: TaskBinary, Positive: "yes"},
			{Name: "words", Kind: TaskRegression},
			{Name: "cues", Kind: TaskMultilabel},
		},
		Config: &TrainConfig{
			Mode: ModeTwoStage,
			Head: &HeadConfig{Stage: &StageConfig{Epochs: Ptr(4)}},
			Metadata: &MetadataConfig{
				Hidden: Ptr([]int{16}),
				Stage:  &StageConfig{Epochs: Ptr(2)},
				// A self-supervised target beside the labels in stage 1.
				Stage1Targets: Ptr([]string{"labels", "masked_features"}),
			},
		},
	}
	tr, err := NewTrainer(backbone, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	labels := func(e example) map[string]any {
		person := "no"
		if e.Label == "HUM" {
			person = "yes"
		}
		var cues []string
		lower := strings.ToLower(e.Text)
		for _, w := range []string{"what", "who", "how"} {
			if strings.HasPrefix(lower, w+" ") {
				cues = append(cues, w)
			}
		}
		if cues == nil {
			cues = []string{}
		}
		return map[string]any{
			"label":  e.Label,
			"person": person,
			"words":  len(strings.Fields(e.Text)),
			"cues":   cues,
		}
	}
	for _, e := range trainSet() {
		if err := tr.AddExample(e.Text, labels(e)); err != nil {
			t.Fatalf("AddExample: %v", err)
		}
	}
	// An explicit validation set replaces the held-out fraction.
	for _, e := range evalSet()[:60] {
		if err := tr.AddValidationExample(e.Text, labels(e)); err != nil {
			t.Fatalf("AddValidationExample: %v", err)
		}
	}
	var stages []string
	if err := tr.Train(context.Background(), func(p Progress) bool {
		if len(stages) == 0 || stages[len(stages)-1] != p.Stage {
			stages = append(stages, p.Stage)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	// A binary task is among them: its thresholds are tuned last, and reported.
	if got := strings.Join(stages, ","); got != "embed,stage1,stage2,thresholds" && got != "stage1,stage2,thresholds" {
		t.Errorf("stages %v", stages)
	}
	rep, err := tr.Report()
	if err != nil {
		t.Fatal(err)
	}
	if rep.NTrain != nTrain || rep.NValid != 60 {
		t.Errorf("report sizes %d/%d, want %d/60", rep.NTrain, rep.NValid, nTrain)
	}
	// Stage 1 reports the four tasks' losses, then the masked features'.
	if h := rep.Stages[0].History; rep.Stages[0].Stage != "stage1" || len(h) == 0 || len(h[0].TaskLosses) != 5 {
		t.Errorf("stage 1 history: %+v", rep.Stages[0])
	}
	ev, err := tr.Evaluate(texts(evalSet()[60:]), func() []map[string]any {
		var out []map[string]any
		for _, e := range evalSet()[60:] {
			out = append(out, labels(e))
		}
		return out
	}())
	if err != nil {
		t.Fatal(err)
	}
	if m := ev.Tasks["words"]; m.MAE <= 0 || m.RMSE < m.MAE || m.Pearson <= 0.3 {
		t.Errorf("regression metrics: %+v", m)
	}
	if m := ev.Tasks["person"]; m.ROCAUC == nil || *m.ROCAUC < 0.7 || m.Threshold == nil {
		t.Errorf("binary metrics: %+v", m)
	}
	if m := ev.Tasks["cues"]; len(m.PerLabel) != 3 || len(m.Thresholds) != 3 || len(m.ROCAUCPerLabel) != 3 || m.SubsetAccuracy <= 0 {
		t.Errorf("multilabel metrics: %+v", m)
	}

	dir := filepath.Join(t.TempDir(), "multi")
	if err := tr.Save(dir); err != nil {
		t.Fatal(err)
	}
	m := loadModel(t, dir)
	in := []string{"Who was the first president of the United States ?", "What is the capital of France ?"}
	preds, err := m.Predict(in)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range preds {
		if len(p.Tasks) != 4 {
			t.Fatalf("%d tasks", len(p.Tasks))
		}
		for _, tp := range p.Tasks {
			switch tp.Task {
			case "label":
				if tp.Kind != TaskMulticlass || len(tp.Labels) != 1 || len(tp.Probabilities) != 6 {
					t.Errorf("label: %+v", tp)
				}
			case "person":
				if tp.Kind != TaskBinary || len(tp.Labels) != 1 || len(tp.Probabilities) != 2 ||
					tp.Probabilities[1].Class != "yes" {
					t.Errorf("person: %+v", tp)
				}
				if s := tp.Probabilities[0].Probability + tp.Probabilities[1].Probability; math.Abs(float64(s)-1) > 1e-5 {
					t.Errorf("binary probabilities sum to %v", s)
				}
			case "words":
				if tp.Kind != TaskRegression || tp.Labels != nil || tp.Probabilities != nil ||
					math.IsNaN(float64(tp.Value)) || tp.Value < 2 || tp.Value > 20 {
					t.Errorf("words: %+v", tp)
				}
			case "cues":
				if tp.Kind != TaskMultilabel || len(tp.Probabilities) != 3 {
					t.Errorf("cues: %+v", tp)
				}
				for _, l := range tp.Labels {
					if p, ok := tp.Probability(l); !ok || p < 0 || p > 1 {
						t.Errorf("cues label %q probability %v %v", l, p, ok)
					}
				}
			default:
				t.Errorf("unexpected task %q", tp.Task)
			}
		}
		// The binary label is the positive class exactly when its probability reaches the
		// tuned threshold.
		person, _ := p.Task("person")
		pYes, _ := person.Probability("yes")
		th := *ev.Tasks["person"].Threshold
		if (person.Label() == "yes") != (float64(pYes) >= th) {
			t.Errorf("%q: person = %+v with threshold %v", in[i], person, th)
		}
		if i == 0 && pYes < 0.5 {
			t.Errorf("%q: P(person) = %v", in[i], pYes)
		}
	}
}

func TestPredictGroups(t *testing.T) {
	_, dir := trainedFixture(t)
	m := loadModel(t, dir)
	eval := evalSet()[:18]
	in := texts(eval)
	groups := make([]string, len(eval))
	for i, e := range eval {
		groups[i] = "g-" + e.Label
	}
	single, err := m.Predict(in)
	if err != nil {
		t.Fatal(err)
	}
	// Expected group means and majority shares from the single predictions.
	type acc struct {
		sum   []float64
		votes []float64
		n     int
	}
	want := map[string]*acc{}
	for i, p := range single {
		a := want[groups[i]]
		if a == nil {
			a = &acc{sum: make([]float64, 6), votes: make([]float64, 6)}
			want[groups[i]] = a
		}
		tp := p.Tasks[0]
		best := 0
		for k, cp := range tp.Probabilities {
			a.sum[k] += float64(cp.Probability)
			if cp.Probability > tp.Probabilities[best].Probability {
				best = k
			}
		}
		a.votes[best]++
		a.n++
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	for _, agg := range []Aggregation{AggregateMean, AggregateMajority, AggregateMedian, AggregateTotalVote} {
		got, err := m.PredictGroups(in, groups, agg)
		if err != nil {
			t.Fatalf("%v: %v", agg, err)
		}
		if len(got) != len(keys) {
			t.Fatalf("%v: %d rows for %d groups", agg, len(got), len(keys))
		}
		for r, p := range got {
			if p.Group != keys[r] {
				t.Fatalf("%v: row %d is group %q, want %q (sorted)", agg, r, p.Group, keys[r])
			}
			a := want[p.Group]
			for k, cp := range p.Tasks[0].Probabilities {
				var exp float64
				switch agg {
				case AggregateMean:
					exp = a.sum[k] / float64(a.n)
				case AggregateMajority, AggregateTotalVote:
					// The same vote shares; they differ in how sigmoid outputs are decided.
					exp = a.votes[k] / float64(a.n)
				default:
					continue
				}
				if math.Abs(float64(cp.Probability)-exp) > 1e-4 {
					t.Errorf("%v: group %s class %s = %v, want %v", agg, p.Group, cp.Class, cp.Probability, exp)
				}
			}
		}
	}
	_, err = m.PredictGroups(in, groups, Aggregation(7))
	wantCode(t, err, CodeInvalidArgument)
	_, err = m.PredictGroups(in, groups[1:], AggregateMean)
	wantCode(t, err, CodeInvalidArgument)
	_, err = m.PredictGroups([]string{"ok"}, []string{"\xff"}, AggregateMean)
	wantCode(t, err, CodeInvalidUTF8)
}

func probsOf(p Prediction) []float32 {
	out := make([]float32, len(p.Tasks[0].Probabilities))
	for i, cp := range p.Tasks[0].Probabilities {
		out[i] = cp.Probability
	}
	return out
}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func TestHotSwap(t *testing.T) {
	_, dir := trainedFixture(t)
	m := loadModel(t, dir)
	probe := []string{"Who wrote Hamlet ?", "How far is the moon ?"}
	before, err := m.Predict(probe)
	if err != nil {
		t.Fatal(err)
	}
	other := newTrainer(t, labelSpec(42, 2))
	if err := other.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	v, err := m.SwapHeads(other)
	if err != nil {
		t.Fatal(err)
	}
	if v != 1 || m.HeadsVersion() != 1 {
		t.Fatalf("after one swap: version %d, HeadsVersion %d", v, m.HeadsVersion())
	}
	after, err := m.Predict(probe)
	if err != nil {
		t.Fatal(err)
	}
	if after[0].HeadsVersion != 1 {
		t.Errorf("predictions carry version %d", after[0].HeadsVersion)
	}
	if d := maxDiff(probsOf(before[0]), probsOf(after[0])); d < 1e-3 {
		t.Errorf("swapped heads predict the same probabilities (max diff %v)", d)
	}
	// The trainer is still usable after a swap, and swapping a bundle back restores the
	// original predictions exactly.
	if n := other.ExampleCount(); n != nTrain {
		t.Errorf("trainer has %d examples after the swap", n)
	}
	v, err = m.SwapBundle(dir)
	if err != nil || v != 2 {
		t.Fatalf("SwapBundle: %d, %v", v, err)
	}
	back, err := m.Predict(probe)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(probsOf(before[0]), probsOf(back[0])); d > 1e-6 || back[0].HeadsVersion != 2 {
		t.Errorf("after swapping the bundle back: diff %v, version %d", d, back[0].HeadsVersion)
	}

	_, err = m.SwapBundle(filepath.Join(t.TempDir(), "missing"))
	wantCode(t, err, CodeNotFound)
	untrained, err := NewTrainer(backbone, labelSpec(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer untrained.Close()
	_, err = m.SwapHeads(untrained)
	wantCode(t, err, CodeInvalidArgument)
	if m.HeadsVersion() != 2 {
		t.Errorf("failed swaps changed the version to %d", m.HeadsVersion())
	}
}

// TestONNX serves a saved bundle through ONNX Runtime (the same probabilities as the native
// heads) and exports the model as one ONNX graph.
func TestONNX(t *testing.T) {
	_, dir := trainedFixture(t)
	native := loadModel(t, dir)
	if _, err := LoadBackbone(WithThreads(1), WithHeads("tflite")); err == nil {
		t.Fatal("an unknown heads engine was accepted")
	} else {
		wantCode(t, err, CodeInvalidArgument)
	}
	ob, err := LoadBackbone(WithThreads(1), WithHeads("onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	om, err := LoadModel(ob, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer om.Close()
	probe := []string{"Who wrote Hamlet ?", "How far is the moon ?"}
	a, err := native.Predict(probe)
	if err != nil {
		t.Fatal(err)
	}
	b, err := om.Predict(probe)
	if err != nil {
		t.Fatal(err)
	}
	for i := range probe {
		if d := maxDiff(probsOf(a[i]), probsOf(b[i])); d > 1e-5 {
			t.Errorf("text %d: ONNX heads differ from native by %v", i, d)
		}
	}
	out := filepath.Join(t.TempDir(), "model.onnx")
	wantCode(t, native.ExportONNX(out, "fp64"), CodeInvalidArgument)
	if err := native.ExportONNX(out, "fp32"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{out, filepath.Join(filepath.Dir(out), "tokenizer.json"),
		filepath.Join(filepath.Dir(out), "model.tandem.json")} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestFineTune fine-tunes the backbone's top layer with the heads: the bundle carries the
// fine-tuned backbone, a model loaded from it predicts, and the heads refuse to be swapped into
// a model on the stock backbone.
func TestFineTune(t *testing.T) {
	spec := labelSpec(4, 3)
	spec.Config.Mode = ModeEmbeddingOnly
	spec.Config.Head = &HeadConfig{Hidden: Ptr([]int{16}), Stage: &StageConfig{Epochs: Ptr(3)}}
	spec.Config.Backbone = &BackboneConfig{TrainableLayers: Ptr(1), LR: Ptr(1e-3), Unfreeze: UnfreezePartial,
		ContrastiveEpochs: Ptr(1), ContrastivePairs: Ptr(2)}
	tr := newTrainer(t, spec)
	if err := tr.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := tr.Save(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "backbone", "model.onnx")); err != nil {
		t.Fatalf("the bundle has no fine-tuned backbone graph: %v", err)
	}
	m := loadModel(t, dir)
	manifest, err := m.ManifestJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(manifest, "fine-tuned") {
		t.Errorf("the manifest does not name the fine-tuned backbone: %.300s", manifest)
	}
	preds, err := m.Predict(texts(evalSet()))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range preds {
		if len(p.Tasks) != 1 || len(p.Tasks[0].Labels) != 1 {
			t.Fatalf("prediction %d: %+v", i, p)
		}
	}
	stockSpec := labelSpec(0, 2)
	stockTrainer := newTrainer(t, stockSpec)
	if err := stockTrainer.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	stockDir := filepath.Join(t.TempDir(), "stock")
	if err := stockTrainer.Save(stockDir); err != nil {
		t.Fatal(err)
	}
	stock := loadModel(t, stockDir)
	if _, err := stock.SwapHeads(tr); !errors.Is(err, ErrBackboneMismatch) {
		t.Errorf("swapping fine-tuned heads into a stock model: %v, want ErrBackboneMismatch", err)
	}
	bad := labelSpec(0, 1)
	bad.Config.Backbone = &BackboneConfig{TrainableLayers: Ptr(1), Unfreeze: "sideways"}
	if _, err := NewTrainer(backbone, bad); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("unknown unfreeze schedule: %v, want ErrInvalidArgument", err)
	}
}

// TestSequenceHead trains a sequence head (per-token vectors through attention pooling and
// convolutions), saves it, and serves it from a loaded model; a bad sequence config is refused.
func TestSequenceHead(t *testing.T) {
	spec := labelSpec(3, 4)
	spec.Config.Head = &HeadConfig{
		Kind: HeadSequence,
		Sequence: &SequenceConfig{
			AttentionQueries: Ptr(1), ConvKernels: Ptr([]int{1, 3}), ConvChannels: Ptr(16),
			Transformer: Ptr(false), Dropout: Ptr(0.1),
		},
		Hidden: Ptr([]int{32}),
		Stage:  &StageConfig{Epochs: Ptr(4)},
	}
	tr := newTrainer(t, spec)
	if err := tr.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := tr.Save(dir); err != nil {
		t.Fatal(err)
	}
	m := loadModel(t, dir)
	manifest, err := m.ManifestJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(manifest, `"sequence"`) || !strings.Contains(manifest, `"conv_kernels"`) {
		t.Errorf("the bundle does not record the sequence architecture: %s", manifest)
	}
	eval := evalSet()
	preds, err := m.Predict(texts(eval))
	if err != nil {
		t.Fatal(err)
	}
	correct := 0
	for i, p := range preds {
		if len(p.Tasks) != 1 || len(p.Tasks[0].Labels) != 1 {
			t.Fatalf("prediction %d: %+v", i, p)
		}
		if p.Tasks[0].Labels[0] == eval[i].Label {
			correct++
		}
	}
	// Six classes: chance is about one in six.
	if correct*3 < len(eval) {
		t.Errorf("sequence head: %d of %d correct", correct, len(eval))
	}
	bad := labelSpec(0, 1)
	bad.Config.Head = &HeadConfig{Kind: HeadSequence, Sequence: &SequenceConfig{ConvKernels: Ptr([]int{4})}}
	if _, err := NewTrainer(backbone, bad); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("even conv kernel: %v, want ErrInvalidArgument", err)
	}
}

func TestAutoRecipe(t *testing.T) {
	// A zero budget measures the first candidate only: the linear recipe.
	spec := labelSpec(3, 4)
	spec.Recipe = RecipeAuto
	spec.BudgetSeconds = Ptr(0.0)
	tr := newTrainer(t, spec)
	if err := tr.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	rep, err := tr.Report()
	if err != nil {
		t.Fatal(err)
	}
	sel := rep.Selection
	if rep.Recipe != "linear" || sel == nil || sel.Chosen != "linear" || len(sel.Candidates) != 8 {
		t.Fatalf("report of an auto recipe: %s", rep.Raw)
	}
	// Fine-tuning the top layers is a candidate too (last on a hold-out of 500 examples),
	// here unmeasured.
	last := sel.Candidates[len(sel.Candidates)-1]
	if sel.Candidates[0].Score == nil || sel.Candidates[1].Score != nil || sel.Candidates[1].Skipped == nil ||
		last.Arm != "finetune" || last.Score != nil {
		t.Errorf("candidates: %s", rep.Raw)
	}
	// Finetune false leaves it out.
	frozen := spec
	frozen.Finetune = Ptr(false)
	ft := newTrainer(t, frozen)
	if err := ft.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	frep, err := ft.Report()
	if err != nil {
		t.Fatal(err)
	}
	if frep.Selection == nil || len(frep.Selection.Candidates) != 7 {
		t.Fatalf("finetune false: %s", frep.Raw)
	}
	for _, c := range frep.Selection.Candidates {
		if c.Arm == "finetune" {
			t.Errorf("finetune false: %s", frep.Raw)
		}
	}
	if !strings.HasPrefix(rep.Reason, "chose linear") {
		t.Errorf("reason %q", rep.Reason)
	}
	// A budget without the auto recipe is refused.
	bad := labelSpec(3, 4)
	bad.BudgetSeconds = Ptr(5.0)
	if _, err := NewTrainer(backbone, bad); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("budget without auto: %v, want ErrInvalidArgument", err)
	}
	// Without a search the report still names the recipe, and has no selection.
	plain := newTrainer(t, labelSpec(3, 4))
	if err := plain.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if rep, err := plain.Report(); err != nil || rep.Recipe == "" || rep.Selection != nil {
		t.Errorf("plain report: %v %+v", err, rep)
	}
}

func TestPredictSampled(t *testing.T) {
	_, dir := trainedFixture(t)
	m := loadModel(t, dir)
	in := texts(evalSet()[:6])
	a, err := m.PredictSampled(in, 8, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.PredictSampled(in, 8, 3)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := m.Predict(in)
	if err != nil {
		t.Fatal(err)
	}
	spread := false
	for i := range a {
		tp := a[i].Tasks[0]
		if len(tp.Spread) != len(tp.Probabilities) {
			t.Fatalf("row %d: %d spreads for %d probabilities", i, len(tp.Spread), len(tp.Probabilities))
		}
		sum := 0.0
		for k, cp := range tp.Probabilities {
			sum += float64(cp.Probability)
			if cp.Probability != b[i].Tasks[0].Probabilities[k].Probability {
				t.Fatalf("row %d: the same seed gave other probabilities", i)
			}
			if tp.Spread[k] < 0 {
				t.Fatalf("row %d: negative spread %v", i, tp.Spread[k])
			}
			spread = spread || tp.Spread[k] > 0
		}
		if math.Abs(sum-1) > 1e-4 {
			t.Fatalf("row %d: probabilities sum to %v", i, sum)
		}
		if plain[i].Tasks[0].Spread != nil {
			t.Fatalf("row %d: a plain prediction has a spread", i)
		}
	}
	if !spread {
		t.Fatal("dropout made no pass differ")
	}
	if _, err := m.PredictSampled(in, 0, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("0 samples: %v", err)
	}
}

func TestCheckpointsByMonitor(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	spec := labelSpec(2, 4)
	spec.Config.Head.Stage.Monitor = "macro_f1"
	spec.Config.Head.Stage.Patience = Ptr(0)
	spec.Checkpoints = &Checkpoints{Dir: dir, KeepTop: Ptr(1), Every: 2}
	tr, err := NewTrainer(backbone, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, e := range trainSet() {
		if err := tr.AddExample(e.Text, map[string]any{"label": e.Label}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	var index struct {
		Monitor     string `json:"monitor"`
		Best        string `json:"best"`
		Checkpoints []struct {
			Bundle   string `json:"bundle"`
			Periodic bool   `json:"periodic"`
		} `json:"checkpoints"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	if index.Monitor != "macro_f1 of label (max)" || index.Best == "" {
		t.Fatalf("index %s", raw)
	}
	m := loadModel(t, filepath.Join(dir, index.Best))
	if _, err := m.Predict([]string{"Who wrote Hamlet ?"}); err != nil {
		t.Fatal(err)
	}
}

func TestDistillation(t *testing.T) {
	_, teacher := trainedFixture(t)
	spec := labelSpec(5, 4)
	spec.Config.Distill = &DistillConfig{Teachers: []string{teacher}, Weight: Ptr(0.7)}
	tr := newTrainer(t, spec)
	plain := newTrainer(t, labelSpec(5, 4))
	unlabelled := texts(evalSet()[:7])
	for _, text := range unlabelled {
		if err := tr.AddUnlabelled(text); err != nil {
			t.Fatal(err)
		}
	}
	if n := tr.UnlabelledCount(); n != len(unlabelled) {
		t.Fatalf("UnlabelledCount %d, want %d", n, len(unlabelled))
	}
	if err := tr.AddUnlabelled("\xff"); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	for _, x := range []*Trainer{tr, plain} {
		if err := x.Train(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	with, err := tr.Report()
	if err != nil {
		t.Fatal(err)
	}
	without, err := plain.Report()
	if err != nil {
		t.Fatal(err)
	}
	if with.NTrain != without.NTrain+len(unlabelled) {
		t.Fatalf("n_train %d with the unlabelled texts, %d without", with.NTrain, without.NTrain)
	}
	// Unlabelled texts without a teacher are refused at training.
	if err := plain.AddUnlabelled(unlabelled[0]); err != nil {
		t.Fatal(err)
	}
	if err := plain.Train(context.Background(), nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("no teacher: %v", err)
	}
}
