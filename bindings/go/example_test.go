package tandem_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	tandem "github.com/tandem-ai/tandem/bindings/go"
)

// Train a question classifier on a handful of examples, save it, and serve it.
func Example() {
	b, err := tandem.LoadBackbone(tandem.WithThreads(2))
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	t, err := tandem.NewTrainer(b, tandem.TrainerSpec{
		Tasks: []tandem.TaskSpec{{Name: "type", Kind: tandem.TaskMulticlass}},
		Config: &tandem.TrainConfig{
			Mode: tandem.ModeEmbeddingOnly,
			Seed: tandem.Ptr[uint64](1),
			Head: &tandem.HeadConfig{Stage: &tandem.StageConfig{Epochs: tandem.Ptr(20)}},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	for _, ex := range []struct{ text, label string }{
		{"Who wrote Hamlet ?", "person"}, {"Who painted the Mona Lisa ?", "person"},
		{"Who invented the telephone ?", "person"}, {"Who discovered penicillin ?", "person"},
		{"Where is the Eiffel Tower ?", "place"}, {"Where is Mount Everest ?", "place"},
		{"Where do kangaroos live ?", "place"}, {"Where is the Golden Gate Bridge ?", "place"},
	} {
		if err := t.AddExample(ex.text, map[string]any{"type": ex.label}); err != nil {
			log.Fatal(err)
		}
	}
	err = t.Train(context.Background(), func(p tandem.Progress) bool { return true })
	if errors.Is(err, tandem.ErrCancelled) {
		log.Fatal("cancelled")
	} else if err != nil {
		log.Fatal(err)
	}

	dir := filepath.Join(os.TempDir(), "tandem-example-bundle")
	defer os.RemoveAll(dir)
	if err := t.Save(dir); err != nil {
		log.Fatal(err)
	}
	m, err := tandem.LoadModel(b, dir)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	preds, err := m.Predict([]string{"Who composed the Moonlight Sonata ?", "Where is the Taj Mahal ?"})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range preds {
		fmt.Println(p.Tasks[0].Label())
	}
	// Output:
	// person
	// place
}

// Errors carry a stable code; compare them with errors.Is.
func ExampleError() {
	b, err := tandem.LoadBackbone()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	_, err = tandem.LoadModel(b, "/no/such/bundle")
	var te *tandem.Error
	fmt.Println(errors.Is(err, tandem.ErrNotFound), errors.As(err, &te) && te.Code == tandem.CodeNotFound)
	// Output: true true
}
