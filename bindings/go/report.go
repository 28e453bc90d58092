package tandem

import (
	"encoding/json"
	"math"
)

// Report is the report of a trainer's last successful training run.
type Report struct {
	// Mode is the mode trained.
	Mode Mode `json:"mode"`
	// Stages has one report per stage, in order.
	Stages []StageReport `json:"stages"`
	// ValidMetrics are the validation metrics per task, after threshold tuning.
	ValidMetrics Evaluation `json:"valid_metrics"`
	// TrainSeconds is the wall time of all stages.
	TrainSeconds float64 `json:"train_seconds"`
	// SecondsToBest is the wall time to the best epoch of the last stage, counting earlier
	// stages in full.
	SecondsToBest float64 `json:"seconds_to_best"`
	// NTrain is the number of training examples.
	NTrain int `json:"n_train"`
	// NValid is the number of validation examples.
	NValid int `json:"n_valid"`
	// Recipe names the recipe trained ("linear", "two_stage", "sequence", ...).
	Recipe string `json:"recipe"`
	// Reason says in one sentence why a RecipeAuto search chose it ("" otherwise).
	Reason string `json:"reason,omitempty"`
	// Selection is the RecipeAuto search's outcome (nil otherwise).
	Selection *Selection `json:"selection,omitempty"`
	// Raw is the report's JSON as the library wrote it.
	Raw json.RawMessage `json:"-"`
}

// Selection is the outcome of a recipe search.
type Selection struct {
	// Metric is the metric candidates were ranked by (of the first task).
	Metric string `json:"metric"`
	// HigherIsBetter tells the metric's direction.
	HigherIsBetter bool `json:"higher_is_better"`
	// Candidates are every recipe tried, in order.
	Candidates []Candidate `json:"candidates"`
	// Chosen is the winner's name.
	Chosen string `json:"chosen"`
	// BudgetSeconds is the search's budget.
	BudgetSeconds float64 `json:"budget_seconds"`
	// SearchSeconds is the search's wall time (the final fit excluded).
	SearchSeconds float64 `json:"search_seconds"`
}

// Candidate is one recipe of a search.
type Candidate struct {
	// Arm is the recipe's name.
	Arm string `json:"arm"`
	// Score is its validation score (nil when it was not measured).
	Score *float64 `json:"score"`
	// FoldScores are its scores per fold, or per part of the hold-out.
	FoldScores []float64 `json:"fold_scores,omitempty"`
	// Seconds is the wall time spent on it.
	Seconds float64 `json:"seconds"`
	// Skipped says why it was not measured (nil when it was).
	Skipped *string `json:"skipped"`
}

// StageReport reports one finished training stage.
type StageReport struct {
	// Stage is the stage's name ("stage1", "stage2", "joint", "heads", ...).
	Stage string `json:"stage"`
	// EpochsRun is the number of epochs actually run.
	EpochsRun int `json:"epochs_run"`
	// BestEpoch is the 0-based epoch with the best validation loss, whose weights are kept.
	BestEpoch int `json:"best_epoch"`
	// BestValidLoss is that validation loss.
	BestValidLoss float64 `json:"best_valid_loss"`
	// Seconds is the stage's wall time.
	Seconds float64 `json:"seconds"`
	// SecondsToBest is the wall time from the stage's start to the end of its best epoch.
	SecondsToBest float64 `json:"seconds_to_best"`
	// History has one record per epoch.
	History []EpochRecord `json:"history"`
}

// EpochRecord is one epoch of a stage's history.
type EpochRecord struct {
	// Stage is the stage's name.
	Stage string `json:"stage"`
	// Epoch is the 0-based epoch.
	Epoch int `json:"epoch"`
	// Epochs is the stage's maximum number of epochs.
	Epochs int `json:"epochs"`
	// TrainLoss is the epoch's mean training loss (NaN when not available).
	TrainLoss float64 `json:"train_loss"`
	// ValidLoss is the validation loss (NaN when not available).
	ValidLoss float64 `json:"valid_loss"`
	// TaskLosses is each task's own validation loss, in task order, then each
	// self-supervised stage-1 target's (MetadataConfig.Stage1Targets); empty where no
	// validation ran.
	TaskLosses []float64 `json:"task_losses,omitempty"`
	// LR is the learning rate at the end of the epoch.
	LR float64 `json:"lr"`
	// Elapsed is the number of seconds since the stage started.
	Elapsed float64 `json:"elapsed"`
}

// UnmarshalJSON decodes a record, reading the null that JSON has for NaN losses as NaN.
func (r *EpochRecord) UnmarshalJSON(b []byte) error {
	type plain EpochRecord
	var v struct {
		plain
		TrainLoss *float64 `json:"train_loss"`
		ValidLoss *float64 `json:"valid_loss"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = EpochRecord(v.plain)
	r.TrainLoss, r.ValidLoss = orNaN(v.TrainLoss), orNaN(v.ValidLoss)
	return nil
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// Evaluation holds metrics for every task, as Trainer.Evaluate and Report.ValidMetrics return
// them.
type Evaluation struct {
	// Tasks maps each task's name to its metrics.
	Tasks map[string]Metrics `json:"tasks"`
	// Raw is the metrics JSON as the library wrote it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the library's metrics object and keeps its raw JSON.
func (e *Evaluation) UnmarshalJSON(b []byte) error {
	var v struct {
		Tasks map[string]Metrics `json:"tasks"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	e.Tasks = v.Tasks
	e.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// Metrics are the metrics of one task. Which fields are set depends on the task's kind:
// classification (multiclass, binary), multi-label or regression; the others are zero.
type Metrics struct {
	// N is the number of rows evaluated.
	N int `json:"n"`

	// Accuracy is the fraction of rows predicted correctly (classification), or of individual
	// label decisions (multi-label).
	Accuracy float64 `json:"accuracy"`
	// MacroF1 is the unweighted mean of per-class (per-label) F1.
	MacroF1 float64 `json:"macro_f1"`
	// MicroF1 is F1 from pooled counts (equal to Accuracy for single-label tasks).
	MicroF1 float64 `json:"micro_f1"`
	// MacroPrecision is the unweighted mean of per-class precision (classification).
	MacroPrecision float64 `json:"macro_precision"`
	// MacroRecall is the unweighted mean of per-class recall (classification).
	MacroRecall float64 `json:"macro_recall"`
	// PerClass has precision, recall, F1 and support per class (classification).
	PerClass []ClassMetrics `json:"per_class"`
	// Confusion holds Confusion[true][predicted] counts (classification).
	Confusion [][]int `json:"confusion"`
	// ROCAUC is the ROC AUC of the positive class (binary tasks with both classes present).
	ROCAUC *float64 `json:"-"`
	// Threshold is the decision threshold of a binary task.
	Threshold *float64 `json:"threshold"`

	// SubsetAccuracy is the fraction of rows whose whole label set is right (multi-label).
	SubsetAccuracy float64 `json:"subset_accuracy"`
	// PerLabel has precision, recall, F1 and support per label (multi-label).
	PerLabel []ClassMetrics `json:"per_label"`
	// ROCAUCPerLabel is each label's ROC AUC, nil where a label has one class only
	// (multi-label).
	ROCAUCPerLabel []*float64 `json:"-"`
	// Thresholds are the per-label decision thresholds (multi-label).
	Thresholds []float64 `json:"thresholds"`

	// MAE is the mean absolute error (regression).
	MAE float64 `json:"mae"`
	// RMSE is the root mean squared error (regression).
	RMSE float64 `json:"rmse"`
	// Pearson is the Pearson correlation (regression; 0 when either side is constant).
	Pearson float64 `json:"pearson"`
	// R2 is the coefficient of determination (regression).
	R2 float64 `json:"r2"`
}

// UnmarshalJSON decodes a task's metrics; "roc_auc" is a number for binary tasks and a list
// for multi-label ones.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	type plain Metrics
	var v struct {
		plain
		ROCAUC json.RawMessage `json:"roc_auc"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = Metrics(v.plain)
	if len(v.ROCAUC) > 0 && v.ROCAUC[0] == '[' {
		return json.Unmarshal(v.ROCAUC, &m.ROCAUCPerLabel)
	}
	if len(v.ROCAUC) > 0 {
		return json.Unmarshal(v.ROCAUC, &m.ROCAUC)
	}
	return nil
}

// ClassMetrics are precision, recall, F1 and support of one class or label.
type ClassMetrics struct {
	// Label is the class or label name.
	Label string `json:"label"`
	// Precision is TP / (TP + FP).
	Precision float64 `json:"precision"`
	// Recall is TP / (TP + FN).
	Recall float64 `json:"recall"`
	// F1 is the harmonic mean of precision and recall.
	F1 float64 `json:"f1"`
	// Support is the number of true members.
	Support int `json:"support"`
}
