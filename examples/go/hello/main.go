// Command hello is the smallest complete tandem program in Go (examples/c/hello.c through the Go
// binding): train an intent classifier from a few examples held in memory, save it as a bundle,
// load it back and classify new text.
//
//	cd examples/go && go run ./hello
//
// Needs the backbone and ONNX Runtime that scripts/setup.sh installs (or TANDEM_HOME).
package main

import (
	"context"
	"fmt"
	"log"

	tandem "github.com/tandem-ai/tandem/bindings/go"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err) // a *tandem.Error: "tandem: <code name>: <message>"
	}
}

func run() error {
	examples := []struct{ text, intent string }{
		{"I was charged twice this month", "billing"},
		{"Please refund my last payment", "billing"},
		{"How do I update my credit card?", "billing"},
		{"My invoice shows the wrong amount", "billing"},
		{"Can I get a receipt for my subscription?", "billing"},
		{"Why did my bill go up?", "billing"},
		{"The app crashes when I open it", "technical"},
		{"I can't log in, the page keeps loading", "technical"},
		{"The upload button does nothing", "technical"},
		{"I get an error 500 when saving", "technical"},
		{"Sync stopped working after the update", "technical"},
		{"The screen stays blank on my phone", "technical"},
	}

	backbone, err := tandem.LoadBackbone() // no options: the default backbone, fp32, all cores
	if err != nil {
		return err
	}
	defer backbone.Close()

	// One multiclass task named "intent"; TrainConfig has the keys of docs/config.toml.
	trainer, err := tandem.NewTrainer(backbone, tandem.TrainerSpec{
		Tasks: []tandem.TaskSpec{{Name: "intent", Kind: tandem.TaskMulticlass}},
		Config: &tandem.TrainConfig{
			Mode:          tandem.ModeEmbeddingOnly,
			Seed:          tandem.Ptr[uint64](0),
			ValidFraction: tandem.Ptr(0.34),
		},
	})
	if err != nil {
		return err
	}
	defer trainer.Close()
	for _, ex := range examples {
		if err := trainer.AddExample(ex.text, map[string]any{"intent": ex.intent}); err != nil {
			return err
		}
	}
	if err := trainer.Train(context.Background(), nil); err != nil { // no progress function
		return err
	}
	if err := trainer.Save("hello-bundle"); err != nil {
		return err
	}

	model, err := tandem.LoadModel(backbone, "hello-bundle")
	if err != nil {
		return err
	}
	defer model.Close()
	texts := []string{"you billed me two times", "the app won't start"}
	preds, err := model.Predict(texts)
	if err != nil {
		return err
	}
	for i, p := range preds {
		intent := p.Tasks[0]
		fmt.Printf("%-10s", intent.Label())
		for _, c := range intent.Probabilities { // in class order
			fmt.Printf(" %s=%.2f", c.Class, c.Probability)
		}
		fmt.Printf("  %s\n", texts[i])
	}
	return nil
}
