// Shims over include/tandem.h for the Go binding; the cgo preambles include this file.
//
// Single (ptr, len) string arguments take Go strings (_GoString_), so they reach the library
// without a copy: the library copies them or only reads them during the call.

#ifndef TANDEM_GO_SHIM_H
#define TANDEM_GO_SHIM_H

#include <stdint.h>
#include <stdlib.h>
#include "tandem.h"

static inline tandem_error *tg_cache_prune(_GoString_ root, uint64_t max_bytes,
                                           uint64_t older_than_s, uint64_t *freed) {
	return tandem_cache_prune(_GoStringPtr(root), _GoStringLen(root), max_bytes, older_than_s,
	                          freed);
}

static inline tandem_error *tg_options_set_variant(tandem_options *o, _GoString_ s) {
	return tandem_options_set_variant(o, _GoStringPtr(s), _GoStringLen(s));
}

static inline tandem_error *tg_options_set_device(tandem_options *o, _GoString_ s) {
	return tandem_options_set_device(o, _GoStringPtr(s), _GoStringLen(s));
}

static inline tandem_error *tg_options_set_heads(tandem_options *o, _GoString_ s) {
	return tandem_options_set_heads(o, _GoStringPtr(s), _GoStringLen(s));
}

static inline tandem_error *tg_model_export_onnx(const tandem_model *m, _GoString_ path,
                                                 _GoString_ variant) {
	return tandem_model_export_onnx(m, _GoStringPtr(path), _GoStringLen(path),
	                                _GoStringPtr(variant), _GoStringLen(variant));
}

static inline tandem_error *tg_options_set_ort_library(tandem_options *o, _GoString_ s) {
	return tandem_options_set_ort_library(o, _GoStringPtr(s), _GoStringLen(s));
}

static inline tandem_error *tg_options_set_backbone_dir(tandem_options *o, _GoString_ s) {
	return tandem_options_set_backbone_dir(o, _GoStringPtr(s), _GoStringLen(s));
}

static inline tandem_error *tg_options_set_backbone_name(tandem_options *o, _GoString_ s) {
	return tandem_options_set_backbone_name(o, _GoStringPtr(s), _GoStringLen(s));
}

static inline tandem_error *tg_model_load(const tandem_backbone *b, _GoString_ dir,
                                          tandem_model **out) {
	return tandem_model_load(b, _GoStringPtr(dir), _GoStringLen(dir), out);
}

static inline tandem_error *tg_model_open(_GoString_ dir, const tandem_options *o,
                                          tandem_model **out) {
	return tandem_model_open(_GoStringPtr(dir), _GoStringLen(dir), o, out);
}

static inline tandem_error *tg_model_swap_bundle(const tandem_model *m, _GoString_ dir,
                                                 uint64_t *version) {
	return tandem_model_swap_bundle(m, _GoStringPtr(dir), _GoStringLen(dir), version);
}

static inline tandem_error *tg_trainer_new(const tandem_backbone *b, _GoString_ spec,
                                           tandem_trainer **out) {
	return tandem_trainer_new(b, _GoStringPtr(spec), _GoStringLen(spec), out);
}

static inline tandem_error *tg_trainer_add_example(tandem_trainer *t, _GoString_ text,
                                                   _GoString_ labels, int validation) {
	if (validation) {
		return tandem_trainer_add_validation_example(t, _GoStringPtr(text), _GoStringLen(text),
		                                             _GoStringPtr(labels), _GoStringLen(labels));
	}
	return tandem_trainer_add_example(t, _GoStringPtr(text), _GoStringLen(text),
	                                  _GoStringPtr(labels), _GoStringLen(labels));
}

static inline tandem_error *tg_trainer_add_unlabelled(tandem_trainer *t, _GoString_ text) {
	return tandem_trainer_add_unlabelled(t, _GoStringPtr(text), _GoStringLen(text));
}

static inline tandem_error *tg_trainer_save(const tandem_trainer *t, _GoString_ dir) {
	return tandem_trainer_save(t, _GoStringPtr(dir), _GoStringLen(dir));
}

// The progress trampoline: user_data carries the runtime/cgo.Handle of the Go side of one
// Trainer.Train call, and tandemGoProgress (callback.go) is its exported Go function.
extern _Bool tandemGoProgress(uintptr_t handle, char *stage, uint32_t epoch, uint32_t epochs,
                              float train_loss, float valid_loss);

static inline bool tg_progress(void *user_data, const char *stage, uint32_t epoch,
                               uint32_t epochs, float train_loss, float valid_loss) {
	return tandemGoProgress((uintptr_t)user_data, (char *)stage, epoch, epochs, train_loss,
	                        valid_loss);
}

static inline tandem_error *tg_trainer_train(tandem_trainer *t, uintptr_t handle) {
	return tandem_trainer_train(t, tg_progress, (void *)handle);
}

static inline tandem_error *tg_pretrain_encoder(char **texts, size_t *lens, size_t n,
                                                _GoString_ config, _GoString_ out_dir,
                                                uintptr_t handle, char **report) {
	return tandem_pretrain_encoder((const char *const *)texts, lens, n, _GoStringPtr(config),
	                               _GoStringLen(config), _GoStringPtr(out_dir),
	                               _GoStringLen(out_dir), tg_progress, (void *)handle, report);
}

#endif
