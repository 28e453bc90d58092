// Command tandem-go-demo trains a classification head on a JSONL dataset with the tandem Go
// binding, prints its validation and held-out metrics, and classifies new texts.
//
//	go run . [flags] [text ...]
//
// By default it learns SMS spam from the demo data scripts/setup.sh downloads
// (~/.cache/tandem/data/sms_spam.jsonl). Any JSONL file with a "text" field works: the label
// field (-field) may hold strings (binary with two distinct values, else multiclass), numbers
// (regression) or lists (multi-label). Ctrl-C cancels training cleanly.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"time"

	tandem "github.com/tandem-ai/tandem/bindings/go"
)

func main() {
	log := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	data := flag.String("data", filepath.Join(defaultDataDir(), "sms_spam.jsonl"), "JSONL dataset with a \"text\" field")
	field := flag.String("field", "label", "the label field of each line")
	n := flag.Int("n", 600, "examples to read (the last fifth is held out for testing)")
	mode := flag.String("mode", string(tandem.ModeTwoStage), "training mode: two_stage, joint, embedding_only or metadata_only")
	epochs := flag.Int("epochs", 12, "maximum epochs of the head stage (and of the metadata stage)")
	bundle := flag.String("bundle", "", "directory to save the trained bundle in (default: a temporary directory)")
	threads := flag.Uint("threads", 0, "ONNX Runtime threads (0 = all cores)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags] [text to classify ...]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()

	if err := run(*data, *field, *n, tandem.Mode(*mode), *epochs, *bundle, uint32(*threads), flag.Args(), log); err != nil {
		var te *tandem.Error
		if errors.As(err, &te) {
			log("error [%s]: %s", te.Code, te.Message)
		} else {
			log("error: %v", err)
		}
		os.Exit(1)
	}
}

func run(data, field string, n int, mode tandem.Mode, epochs int, bundle string, threads uint32, queries []string, log func(string, ...any)) error {
	texts, labels, err := readJSONL(data, field, n)
	if err != nil {
		return err
	}
	kind, positive := inferKind(labels)
	cut := len(texts) * 4 / 5
	log("tandem %s (C ABI %d): %d examples from %s, task %q is %s; %d to train, %d held out",
		tandem.Version(), tandem.ABIVersion(), len(texts), data, field, kind, cut, len(texts)-cut)

	b, err := tandem.LoadBackbone(tandem.WithThreads(threads))
	if err != nil {
		return err
	}
	defer b.Close()

	spec := tandem.TrainerSpec{
		Tasks: []tandem.TaskSpec{{Name: field, Kind: kind, Positive: positive}},
		Config: &tandem.TrainConfig{
			Mode:     mode,
			Head:     &tandem.HeadConfig{Stage: &tandem.StageConfig{Epochs: tandem.Ptr(epochs)}},
			Metadata: &tandem.MetadataConfig{Stage: &tandem.StageConfig{Epochs: tandem.Ptr(epochs)}},
		},
	}
	t, err := tandem.NewTrainer(b, spec)
	if err != nil {
		return err
	}
	defer t.Close()
	for i := 0; i < cut; i++ {
		if err := t.AddExample(texts[i], map[string]any{field: labels[i]}); err != nil {
			return fmt.Errorf("example %d: %w", i+1, err)
		}
	}

	// Ctrl-C cancels training through the context.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	err = t.Train(ctx, func(p tandem.Progress) bool {
		if p.Stage == "embed" {
			log("  embedding texts: chunk %d/%d", p.Epoch+1, p.Epochs)
		} else {
			log("  %-7s epoch %2d/%d  train loss %.4f  valid loss %.4f", p.Stage, p.Epoch+1, p.Epochs, p.TrainLoss, p.ValidLoss)
		}
		return true
	})
	if errors.Is(err, context.Canceled) {
		return errors.New("training interrupted")
	}
	if err != nil {
		return err
	}
	rep, err := t.Report()
	if err != nil {
		return err
	}
	fmt.Printf("trained %s in %.2fs (%d train / %d validation examples)\n", rep.Mode, time.Since(start).Seconds(), rep.NTrain, rep.NValid)
	printMetrics("validation", rep.ValidMetrics.Tasks[field])

	held := make([]map[string]any, 0, len(texts)-cut)
	for _, l := range labels[cut:] {
		held = append(held, map[string]any{field: l})
	}
	ev, err := t.Evaluate(texts[cut:], held)
	if err != nil {
		return err
	}
	printMetrics("held-out", ev.Tasks[field])

	if bundle == "" {
		dir, err := os.MkdirTemp("", "tandem-go-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bundle = filepath.Join(dir, "bundle")
	}
	if err := t.Save(bundle); err != nil {
		return err
	}
	m, err := tandem.LoadModel(b, bundle)
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Printf("saved and reloaded the bundle in %s\n", bundle)

	if len(queries) == 0 {
		queries = []string{
			"URGENT! You have won a 1 week FREE membership in our £100,000 prize Jackpot! Txt the word CLAIM to 81010",
			"Are we still meeting for lunch tomorrow? I'll be there around 1",
			"Who wrote the novel War and Peace ?",
			"How many feet are in a mile ?",
		}
	}
	preds, err := m.Predict(queries)
	if err != nil {
		return err
	}
	for i, p := range preds {
		fmt.Printf("%s\n    %s\n", quote(queries[i]), describe(p.Tasks[0]))
	}
	return nil
}

func printMetrics(name string, m tandem.Metrics) {
	switch {
	case m.PerClass != nil:
		fmt.Printf("%s metrics (n=%d): accuracy %.3f, macro-F1 %.3f", name, m.N, m.Accuracy, m.MacroF1)
		if m.ROCAUC != nil {
			fmt.Printf(", ROC AUC %.3f", *m.ROCAUC)
		}
		fmt.Println()
		for _, c := range m.PerClass {
			fmt.Printf("    %-12s precision %.3f  recall %.3f  F1 %.3f  support %d\n", c.Label, c.Precision, c.Recall, c.F1, c.Support)
		}
	case m.PerLabel != nil:
		fmt.Printf("%s metrics (n=%d): subset accuracy %.3f, micro-F1 %.3f, macro-F1 %.3f\n", name, m.N, m.SubsetAccuracy, m.MicroF1, m.MacroF1)
	default:
		fmt.Printf("%s metrics (n=%d): MAE %.3f, RMSE %.3f, Pearson %.3f\n", name, m.N, m.MAE, m.RMSE, m.Pearson)
	}
}

// describe formats one task's prediction: the value, or the labels with the top classes.
func describe(tp tandem.TaskPrediction) string {
	if tp.Kind == tandem.TaskRegression {
		return fmt.Sprintf("%s = %.3f", tp.Task, tp.Value)
	}
	probs := append([]tandem.ClassProbability(nil), tp.Probabilities...)
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Probability > probs[j].Probability })
	if len(probs) > 3 {
		probs = probs[:3]
	}
	top := make([]string, len(probs))
	for i, p := range probs {
		top[i] = fmt.Sprintf("%s %.2f", p.Class, p.Probability)
	}
	return fmt.Sprintf("%s = %s  (%s)", tp.Task, strings.Join(tp.Labels, ","), strings.Join(top, ", "))
}

func quote(s string) string {
	if r := []rune(s); len(r) > 90 {
		s = string(r[:87]) + "..."
	}
	return fmt.Sprintf("%q", s)
}

// readJSONL reads up to n lines' "text" and label field.
func readJSONL(path, field string, n int) ([]string, []any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (scripts/setup.sh downloads the demo datasets)", err)
	}
	defer f.Close()
	var texts []string
	var labels []any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan() && len(texts) < n; line++ {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		text, ok := row["text"].(string)
		label, has := row[field]
		if !ok || !has {
			return nil, nil, fmt.Errorf("%s:%d: no \"text\" string or no %q field", path, line, field)
		}
		texts = append(texts, text)
		labels = append(labels, label)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if len(texts) < 10 {
		return nil, nil, fmt.Errorf("%s: only %d examples", path, len(texts))
	}
	return texts, labels, nil
}

// inferKind picks the task kind from the label values, and for binary tasks the positive
// class: the rarer one.
func inferKind(labels []any) (tandem.TaskKind, string) {
	counts := map[string]int{}
	for _, l := range labels {
		switch v := l.(type) {
		case float64:
			return tandem.TaskRegression, ""
		case []any:
			return tandem.TaskMultilabel, ""
		case string:
			counts[v]++
		default:
			counts[fmt.Sprint(v)]++
		}
	}
	if len(counts) != 2 {
		return tandem.TaskMulticlass, ""
	}
	positive, rarest := "", len(labels)+1
	for c, k := range counts {
		if k < rarest || (k == rarest && c > positive) {
			positive, rarest = c, k
		}
	}
	return tandem.TaskBinary, positive
}

func defaultDataDir() string {
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
