package tandem

// #include "shim.h"
import "C"

import (
	"fmt"
	"math"
)

// Prediction holds the outputs for one input text (Predict) or one group (PredictGroups).
type Prediction struct {
	// Group is the group key of a PredictGroups row; "" for Predict.
	Group string
	// HeadsVersion is the version of the heads that made the prediction (0 as loaded, +1 per
	// hot swap). All predictions of one call share it: a call never mixes two versions.
	HeadsVersion uint64
	// Tasks has one result per task, in the bundle's task order.
	Tasks []TaskPrediction
}

// Task returns the result for the task named name.
func (p Prediction) Task(name string) (TaskPrediction, bool) {
	for _, t := range p.Tasks {
		if t.Task == name {
			return t, true
		}
	}
	return TaskPrediction{}, false
}

// TaskPrediction is one task's result for one row.
type TaskPrediction struct {
	// Task is the task's name.
	Task string
	// Kind is the task's kind.
	Kind TaskKind
	// Labels are the predicted labels: exactly one for multiclass and binary tasks, any number
	// for multi-label tasks, none for regression. Binary and multi-label decisions use the
	// thresholds tuned on validation data, so a binary label can be the less probable class.
	Labels []string
	// Probabilities has the probability of every class, in class order (for binary tasks
	// [1-p, p] with the positive class second; for multi-label tasks independent per-label
	// probabilities). Nil for regression.
	Probabilities []ClassProbability
	// Value is the predicted value of a regression task (NaN for other kinds).
	Value float32
	// Spread, from PredictSampled only, is the standard deviation over the Monte-Carlo
	// dropout passes of each probability (in Probabilities' order) or of the value (one
	// number); nil otherwise.
	Spread []float32
}

// Label returns the first predicted label, or "" when there is none.
func (t TaskPrediction) Label() string {
	if len(t.Labels) == 0 {
		return ""
	}
	return t.Labels[0]
}

// Probability returns the probability of class, and whether the task has that class.
func (t TaskPrediction) Probability(class string) (float32, bool) {
	for _, p := range t.Probabilities {
		if p.Class == class {
			return p.Probability, true
		}
	}
	return 0, false
}

// ClassProbability is the probability of one class.
type ClassProbability struct {
	// Class is the class (label) name.
	Class string
	// Probability is its probability.
	Probability float32
}

// taskKind maps a TANDEM_TASK_* code to a TaskKind.
func taskKind(code C.uint32_t) TaskKind {
	switch code {
	case C.TANDEM_TASK_MULTICLASS:
		return TaskMulticlass
	case C.TANDEM_TASK_BINARY:
		return TaskBinary
	case C.TANDEM_TASK_MULTILABEL:
		return TaskMultilabel
	case C.TANDEM_TASK_REGRESSION:
		return TaskRegression
	}
	return TaskKind(fmt.Sprintf("unknown(%d)", uint32(code)))
}

// takePredictions copies a predictions object into Go values and frees it.
func takePredictions(p *C.tandem_predictions) ([]Prediction, error) {
	return takePredictionsOf(p, false)
}

// takePredictionsOf is takePredictions, reading each task's Spread when sampled (predictions
// made by tandem_model_predict_sampled).
func takePredictionsOf(p *C.tandem_predictions, sampled bool) ([]Prediction, error) {
	defer C.tandem_predictions_free(p)
	n := int(C.tandem_predictions_len(p))
	nt := int(C.tandem_predictions_task_count(p))
	version := uint64(C.tandem_predictions_heads_version(p))
	type taskInfo struct {
		name    string
		kind    TaskKind
		classes []string
		index   map[string]string
	}
	tasks := make([]taskInfo, nt)
	for j := range tasks {
		ti := &tasks[j]
		ti.name = C.GoString(C.tandem_predictions_task_name(p, C.size_t(j)))
		ti.kind = taskKind(C.tandem_predictions_task_kind(p, C.size_t(j)))
		ti.classes = make([]string, int(C.tandem_predictions_class_count(p, C.size_t(j))))
		ti.index = make(map[string]string, len(ti.classes))
		for k := range ti.classes {
			ti.classes[k] = C.GoString(C.tandem_predictions_class_name(p, C.size_t(j), C.size_t(k)))
			ti.index[ti.classes[k]] = ti.classes[k]
		}
	}
	out := make([]Prediction, n)
	var probs []float32
	for i := range out {
		row := C.size_t(i)
		pr := Prediction{HeadsVersion: version, Tasks: make([]TaskPrediction, nt)}
		if g := C.tandem_predictions_group(p, row); g != nil {
			pr.Group = C.GoString(g)
		}
		for j := range tasks {
			ti := &tasks[j]
			task := C.size_t(j)
			tp := TaskPrediction{Task: ti.name, Kind: ti.kind, Value: float32(math.NaN())}
			if ti.kind == TaskRegression {
				var v C.float
				if err := takeError(C.tandem_predictions_value(p, row, task, &v)); err != nil {
					return nil, err
				}
				tp.Value = float32(v)
			} else {
				nl := int(C.tandem_predictions_label_count(p, row, task))
				tp.Labels = make([]string, nl)
				for k := range tp.Labels {
					l := C.GoString(C.tandem_predictions_label(p, row, task, C.size_t(k)))
					if s, ok := ti.index[l]; ok {
						l = s // share the class name's storage
					}
					tp.Labels[k] = l
				}
				if cap(probs) < len(ti.classes) {
					probs = make([]float32, len(ti.classes))
				}
				probs = probs[:len(ti.classes)]
				if err := takeError(C.tandem_predictions_probabilities(p, row, task, floatPtr(probs), C.size_t(len(probs)))); err != nil {
					return nil, err
				}
				tp.Probabilities = make([]ClassProbability, len(probs))
				for k, q := range probs {
					tp.Probabilities[k] = ClassProbability{Class: ti.classes[k], Probability: q}
				}
			}
			if sampled {
				n := len(ti.classes)
				if n == 0 {
					n = 1
				}
				tp.Spread = make([]float32, n)
				if err := takeError(C.tandem_predictions_spread(p, row, task, floatPtr(tp.Spread), C.size_t(n))); err != nil {
					return nil, err
				}
			}
			pr.Tasks[j] = tp
		}
		out[i] = pr
	}
	return out, nil
}
