#pragma once
// The training loop: for each step, run it; at the points where the ranks meet (log, evaluation,
// checkpoint, stop), read the metrics, evaluate, hand the row to the observers, checkpoint, stop.
// SIGINT/SIGTERM finish the step, write the checkpoint and end with 130/143.
#include "train/session.h"

namespace resnet {

class RunDir;

// Runs `s` from its step to its end and writes its summary. `dir` is the run folder on rank 0 (or
// a single process), null on the other ranks: they train and evaluate their share and write
// nothing. Returns the exit code (0, 130, 143); a diverged loss, a write error or a lost rank
// throws.
int run_session(Session& s, const RunDir* dir, bool resumed);

}  // namespace resnet
