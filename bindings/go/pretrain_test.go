package tandem

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestPretrainEncoder(t *testing.T) {
	corpus := texts(trainSet())
	config := &TrainConfig{
		Seed: Ptr(uint64(5)),
		Metadata: &MetadataConfig{
			Stage1Targets: &[]string{"masked_features", "length"},
			Stage:         &StageConfig{Epochs: Ptr(3)},
		},
	}
	dir := t.TempDir()
	enc, again := filepath.Join(dir, "encoder"), filepath.Join(dir, "again")
	var stages []string
	report, err := PretrainEncoder(context.Background(), corpus, config, enc, func(p Progress) bool {
		stages = append(stages, p.Stage)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 3 || stages[0] != "pretrain" {
		t.Fatalf("progress stages %v", stages)
	}
	if report.EpochsRun != 3 || report.NTrain+report.NValid != len(corpus) || len(report.TargetLosses) != 2 {
		t.Fatalf("report %+v", report)
	}
	// The same seed through the text form: the same weights.
	toml := "seed = 5\n[metadata]\nstage1_targets = [\"masked_features\", \"length\"]\n[metadata.stage]\nepochs = 3\n"
	if _, err := PretrainEncoderConfig(context.Background(), corpus, toml, again, nil); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(enc, "weights.safetensors"))
	b, _ := os.ReadFile(filepath.Join(again, "weights.safetensors"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("same seed, different encoder weights (%d and %d bytes)", len(a), len(b))
	}
	// Serving refuses it; a two-stage trainer starts from it.
	if _, err := LoadModel(backbone, enc); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("loading an encoder as a model: %v", err)
	}
	spec := labelSpec(2, 3)
	spec.Config.Mode = ModeTwoStage
	spec.Config.Metadata = &MetadataConfig{InitEncoder: &enc, Stage: &StageConfig{Epochs: Ptr(2)}}
	if err := newTrainer(t, spec).Train(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	// Errors: labels as a target, cancelling (by the callback or the context), a panic.
	never := filepath.Join(dir, "never")
	bad := &TrainConfig{Metadata: &MetadataConfig{Stage1Targets: &[]string{"labels"}}}
	if _, err := PretrainEncoder(context.Background(), corpus, bad, never, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("labels target: %v", err)
	}
	stop := func(Progress) bool { return false }
	if _, err := PretrainEncoder(context.Background(), corpus, config, never, stop); !errors.Is(err, ErrCancelled) {
		t.Fatalf("cancelled: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := PretrainEncoder(ctx, corpus, config, never, nil); !errors.Is(err, ErrCancelled) {
		t.Fatalf("cancelled context: %v", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v", r)
			}
		}()
		PretrainEncoder(context.Background(), corpus, config, never, func(Progress) bool { panic("boom") })
		t.Fatal("no panic")
	}()
	if _, err := os.Stat(never); !os.IsNotExist(err) {
		t.Fatalf("a failed run wrote %s (%v)", never, err)
	}
}
