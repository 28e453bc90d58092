package tandem

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Shared fixtures: one backbone for the whole run, one TREC slice, and one trained trainer
// and saved bundle (built on first use), so that every test runs in well under a second.

var (
	backbone *Backbone
	trec     []example
	tmpDir   string

	trainedOnce sync.Once
	trained     *Trainer
	trainedErr  error
	bundleDir   string
)

type example struct {
	Text  string `json:"text"`
	Label string `json:"label"`
}

const (
	nTrain = 500 // TREC examples trained on
	nEval  = 150 // the following examples, held out
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	tmpDir, err = os.MkdirTemp("", "tandem-go-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmpDir)
	trec, err = readJSONL(filepath.Join(dataDir(), "trec.jsonl"), nTrain+nEval)
	if err != nil {
		fmt.Fprintf(os.Stderr, "reading the TREC demo data (run scripts/setup.sh): %v\n", err)
		return 1
	}
	backbone, err = LoadBackbone(WithThreads(2))
	if err != nil {
		fmt.Fprintf(os.Stderr, "loading the backbone (run scripts/setup.sh): %v\n", err)
		return 1
	}
	defer backbone.Close()
	code := m.Run()
	if trained != nil {
		trained.Close()
	}
	return code
}

// dataDir is where the demo datasets are: $TANDEM_DATA_DIR, else the cache's data directory
// (as scripts/setup.sh lays it out).
func dataDir() string {
	if d := os.Getenv("TANDEM_DATA_DIR"); d != "" {
		return d
	}
	if h := os.Getenv("TANDEM_HOME"); h != "" {
		return filepath.Join(h, "data")
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "tandem", "data")
}

func readJSONL(path string, limit int) ([]example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []example
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(out) < limit {
		var e example
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) < limit {
		return nil, fmt.Errorf("%s: %d examples, want %d", path, len(out), limit)
	}
	return out, nil
}

func trainSet() []example { return trec[:nTrain] }
func evalSet() []example  { return trec[nTrain : nTrain+nEval] }

func texts(ex []example) []string {
	out := make([]string, len(ex))
	for i, e := range ex {
		out[i] = e.Text
	}
	return out
}

func labelMaps(ex []example) []map[string]any {
	out := make([]map[string]any, len(ex))
	for i, e := range ex {
		out[i] = map[string]any{"label": e.Label}
	}
	return out
}

// labelSpec is the TREC spec: one multiclass task, embedding-only heads, a few epochs.
func labelSpec(seed uint64, epochs int) TrainerSpec {
	return TrainerSpec{
		Tasks: []TaskSpec{{Name: "label", Kind: TaskMulticlass}},
		Config: &TrainConfig{
			Mode: ModeEmbeddingOnly,
			Seed: Ptr(seed),
			Head: &HeadConfig{Stage: &StageConfig{Epochs: Ptr(epochs)}},
		},
	}
}

// newTrainer makes a trainer with the TREC training slice added.
func newTrainer(t *testing.T, spec TrainerSpec) *Trainer {
	t.Helper()
	tr, err := NewTrainer(backbone, spec)
	if err != nil {
		t.Fatalf("NewTrainer: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	for _, e := range trainSet() {
		if err := tr.AddExample(e.Text, map[string]any{"label": e.Label}); err != nil {
			t.Fatalf("AddExample(%q): %v", e.Text, err)
		}
	}
	return tr
}

// trainedFixture returns the shared trainer, trained on the TREC slice, and the bundle it
// saved.
func trainedFixture(t *testing.T) (*Trainer, string) {
	t.Helper()
	trainedOnce.Do(func() {
		tr, err := NewTrainer(backbone, labelSpec(0, 8))
		if err != nil {
			trainedErr = err
			return
		}
		for _, e := range trainSet() {
			if err := tr.AddExample(e.Text, map[string]any{"label": e.Label}); err != nil {
				trainedErr = err
				return
			}
		}
		if err := tr.Train(context.Background(), nil); err != nil {
			trainedErr = err
			return
		}
		dir := filepath.Join(tmpDir, "trec-bundle")
		if err := tr.Save(dir); err != nil {
			trainedErr = err
			return
		}
		trained, bundleDir = tr, dir
	})
	if trainedErr != nil {
		t.Fatalf("training the shared fixture: %v", trainedErr)
	}
	return trained, bundleDir
}

func loadModel(t *testing.T, dir string) *Model {
	t.Helper()
	m, err := LoadModel(backbone, dir)
	if err != nil {
		t.Fatalf("LoadModel(%s): %v", dir, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// wantCode fails unless err is an *Error with the given code that errors.Is matches to the
// code's sentinel.
func wantCode(t *testing.T, err error, code ErrorCode) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", code)
	}
	var te *Error
	if !errors.As(err, &te) {
		t.Fatalf("got %T %v, want a *tandem.Error", err, err)
	}
	if te.Code != code {
		t.Fatalf("got code %v (%v), want %v", te.Code, err, code)
	}
	if !errors.Is(err, &Error{Code: code}) {
		t.Fatalf("errors.Is(%v, sentinel of %v) is false", err, code)
	}
	return te
}

func norm(v []float32) float64 {
	s := 0.0
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func dot(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}
