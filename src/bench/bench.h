#pragma once
// Benchmarks printed as one JSON object (resnet-bench). Modes:
//   bare   the model step alone (forward, loss, backward, SGD) on one fixed batch, eager
//   step   the training step as the trainer runs it: on-device batch + augmentation, then the
//          step (replayed as a CUDA graph where enabled)
//   eval   evaluation throughput on the test set (or a synthetic one)
//   train  a whole run of the config through the trainer, wall clock end to end
//          (data loading, augmentation, steps, evaluations, checkpoints)
//   checkpoint  writing and reading a checkpoint (model, momentum, normaliser) as the trainer and
//          resume do: median seconds of --steps repeats, and the file's size
//   convs  the network's convolutions alone, forward and backward, at its own shapes (bench/conv_limit.h):
//          the limit of the step on this machine and LibTorch
//   verify the fast path's correctness proof (bench/verify.h): "passed" false is exit 1
#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"

namespace resnet {

struct BenchOptions {
  std::string mode = "step";
  int64_t steps = 30;
  int64_t warmup = 5;
  std::string data_dir;  // real data for eval/train; bare/step use synthetic images
};

nlohmann::json run_bench(const ExperimentConfig& config, const BenchOptions& options);

}  // namespace resnet
