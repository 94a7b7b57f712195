#pragma once
// The training run: data, model, optimizer, schedule, evaluations, checkpoints and the run
// directory, from one ExperimentConfig. Interruptible (SIGINT/SIGTERM finish the step, write
// the checkpoint, exit 130/143) and resumable bit for bit on the CPU.
#include <string>
#include <vector>

#include "config/config.h"

namespace resnet {

struct TrainOptions {
  std::string out_dir;   // run folder; "" = runs/<config name>
  std::string data_dir;  // --data-dir ("" = config / $CIFAR10_DIR / default)
  bool force = false;    // start over in an existing run folder
  bool progress = true;  // live progress line when stdout is a terminal
  bool console = true;   // log to stdout (train.log is always written)
  // Resume only: config keys (or sections: "data", "train.momentum") that may differ from the
  // run's although they change what the run computes. Each change is recorded.
  std::vector<std::string> allow_changes;
  // Fault injection (tests): the loss of this step (1-based, as the log counts) becomes NaN, as a
  // real divergence would (TrainStep::inject_non_finite_loss). 0: none.
  int64_t non_finite_loss_at = 0;
};

// The default run folder is runs/<name>: InputError("name: ...") unless `name` is one plain
// folder name (no '/', '\\', "..", control characters). Stored configs are not held to it.
void check_run_name(const std::string& name);

// Starts a new run (train/session.h sets it up, train/loop.h runs it). Returns the process exit
// code (0, 130, 143); throws InputError for bad input (exit 2) and other exceptions for runtime
// failures (exit 1).
int train(const ExperimentConfig& config, const TrainOptions& options);

// Continues the run in `run_dir` from its last checkpoint (or from its start if it was stopped
// before the first one). `sets` override the stored config: keys outside resumable_keys()
// (train/resume_policy.h), and
// other CIFAR-10 files than the run's, are InputErrors naming the key unless listed in
// options.allow_changes. Every change is logged and kept in config.json ("resume_changes").
int resume(const std::string& run_dir, const std::vector<std::string>& sets, const TrainOptions& options);

// Data-parallel training under torchrun / srun (src/parallel): every rank runs train() or
// resume() with the same arguments; rank 0 alone writes the run folder. (A torchrun restart
// resumes the run its first attempt started: restarted_run(), train/resume_policy.h.)

}  // namespace resnet
