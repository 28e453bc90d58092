package tandem

// This file holds the only //export of the package, so its preamble has declarations only.

// #include <stdbool.h>
// #include <stdint.h>
import "C"

import "runtime/cgo"

// tandemGoProgress is the progress callback tandem_trainer_train calls (through tg_progress
// in shim.h) on the goroutine that called Trainer.Train; handle is the cgo.Handle of that
// call's *trainCall. It returns false to cancel.
//
//export tandemGoProgress
func tandemGoProgress(handle C.uintptr_t, stage *C.char, epoch, epochs C.uint32_t, trainLoss, validLoss C.float) C.bool {
	call, ok := cgo.Handle(handle).Value().(*trainCall)
	if !ok {
		return false
	}
	return C.bool(call.report(Progress{
		Stage:     C.GoString(stage),
		Epoch:     int(epoch),
		Epochs:    int(epochs),
		TrainLoss: float32(trainLoss),
		ValidLoss: float32(validLoss),
	}))
}
