package tandem

// #include "shim.h"
import "C"

import (
	"context"
	"encoding/json"
	"runtime/cgo"
)

// PretrainReport summarises a PretrainEncoder run.
type PretrainReport struct {
	// BestEpoch is the 0-based epoch whose encoder was kept (lowest validation loss).
	BestEpoch int `json:"best_epoch"`
	// EpochsRun is the number of epochs run before early stopping or the epoch limit.
	EpochsRun int `json:"epochs_run"`
	// ValidLoss is the best epoch's self-supervised validation loss.
	ValidLoss float64 `json:"valid_loss"`
	// TargetLosses is each target's validation loss at the best epoch ("masked_features",
	// "length", ...).
	TargetLosses map[string]float64 `json:"target_losses"`
	// NTrain and NValid count the texts trained on and held out.
	NTrain int `json:"n_train"`
	NValid int `json:"n_valid"`
	// TrainSeconds is the wall time of training.
	TrainSeconds float64 `json:"train_seconds"`
}

// PretrainEncoder pre-trains a metadata encoder on unlabelled texts and saves it atomically
// as an encoder bundle in outDir, as `tandem pretrain` does. The encoder learns
// self-supervised targets computed from the texts (config.Metadata.Stage1Targets:
// "masked_features" and feature groups such as "length" and "readability"; the default is
// those three) and early-stops on a share of the texts (ValidFraction) held out by Seed. A
// trainer starts from it with Mode ModeTwoStage (or ModeJoint) and Metadata.InitEncoder set to
// outDir; loading it as a Model is refused (it predicts nothing).
// config may be nil (the defaults). progress and ctx work as for Trainer.Train (stage
// "pretrain"). The same seed on the same texts gives the same encoder. It returns the
// run's summary.
//
// Errors: ErrInvalidArgument (bad config, "labels" among the targets, too few texts),
// ErrInvalidUTF8, ErrIO, ErrCancelled (nothing is written).
func PretrainEncoder(ctx context.Context, texts []string, config *TrainConfig, outDir string, progress func(Progress) bool) (*PretrainReport, error) {
	cfg := ""
	if config != nil {
		b, err := json.Marshal(config)
		if err != nil {
			return nil, &Error{Code: CodeInvalidArgument, Message: "config: " + err.Error(), cause: err}
		}
		cfg = string(b)
	}
	return PretrainEncoderConfig(ctx, texts, cfg, outDir, progress)
}

// PretrainEncoderConfig is PretrainEncoder with the config as JSON or TOML text (the keys of
// `tandem train --config`); "" gives the defaults.
func PretrainEncoderConfig(ctx context.Context, texts []string, config, outDir string, progress func(Progress) bool) (*PretrainReport, error) {
	if err := checkABI(); err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Code: CodeCancelled, Message: "pre-training not started: " + err.Error(), cause: err}
	}
	in := newCStrings(texts)
	defer in.free()
	call := &trainCall{ctx: ctx, progress: progress}
	h := cgo.NewHandle(call)
	defer h.Delete()
	var out *C.char
	err := takeError(C.tg_pretrain_encoder(in.ptrs, in.lens, C.size_t(in.n), config, outDir, C.uintptr_t(h), &out))
	if call.panicked {
		takeString(out)
		panic(call.panicVal)
	}
	if err != nil {
		var te *Error
		if asError(err, &te) && te.Code == CodeCancelled {
			if cerr := ctx.Err(); cerr != nil {
				te.Message += " (" + cerr.Error() + ")"
				te.cause = cerr
			}
		}
		return nil, err
	}
	var r PretrainReport
	if err := json.Unmarshal([]byte(takeString(out)), &r); err != nil {
		return nil, &Error{Code: CodeInternal, Message: "pre-training report: " + err.Error(), cause: err}
	}
	return &r, nil
}
