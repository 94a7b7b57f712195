#pragma once
// One training step: forward, cross-entropy, backward, SGD update, and the running train
// metrics, kept on the device (read back only at log/eval points: no host sync per step).
//
// On CUDA with runtime.cuda_graph the whole step is captured once in a CUDA graph and replayed:
// batches are copied into the captured input tensors, and the learning rate lives in a device
// tensor (see sgd.h), so replays follow the schedule. Where capture fails, the step runs eagerly.
#include <ATen/core/Tensor.h>

#include <memory>

#include "data/batches.h"
#include "models/resnet.h"
#include "train/runtime.h"
#include "train/sgd.h"

namespace spdlog {
class logger;
}

namespace resnet {

struct StepOutput {
  at::Tensor logits;  // [B, C], as the model produced them (bf16 under autocast)
  at::Tensor loss;    // float [], mean over the batch
};

// The model's part of a step, shared by TrainStep and resnet-bench's bare mode: forward and
// cross-entropy (under bf16 autocast when `bf16`), backward, SGD update. `autocast_cache` must be
// false while a CUDA graph is captured.
StepOutput model_step(ResNetImpl& model, Sgd& sgd, const at::Tensor& x, const at::Tensor& y,
                      const c10::Device& device, bool bf16, bool autocast_cache = true);

class TrainStep {
 public:
  TrainStep(ResNetImpl& model, Sgd& sgd, BatchSource& data, const Runtime& runtime,
            spdlog::logger* log);
  ~TrainStep();

  // Runs global step `step` (0-based) at learning rate `lr`.
  void run(int64_t step, double lr);

  struct Totals {
    double loss_sum = 0;  // summed over images
    int64_t correct = 0;
    int64_t seen = 0;
  };
  // Reads and clears the running sums (one host sync).
  Totals take_totals();

  bool graph_active() const;

 private:
  // forward + loss + backward + update on (x, y); accumulates into loss_sum_/correct_.
  void compute(const at::Tensor& x, const at::Tensor& y);
  void eager(int64_t step);
  bool try_capture(int64_t step);

  ResNetImpl& model_;
  Sgd& sgd_;
  BatchSource& data_;
  Runtime runtime_;
  spdlog::logger* log_;
  at::Tensor loss_sum_;  // double [] on device
  at::Tensor correct_;   // int64 [] on device
  int64_t seen_ = 0;

  struct Graph;  // CUDA-only state, defined in step.cpp
  std::unique_ptr<Graph> graph_;
  bool graph_failed_ = false;
  bool capturing_ = false;
  int64_t eager_steps_ = 0;
};

}  // namespace resnet
