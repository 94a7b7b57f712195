#pragma once
// One training step: forward, cross-entropy, backward, SGD update, and the running train
// metrics, kept on the device (read back only at log/eval points: no host sync per step). Among
// them, the first step of the window whose loss was not finite: a device-side index that the
// loop reads at its next agreed point, so a diverged run names the exact step without a sync.
//
// On CUDA every step runs on one side stream, created once, as PyTorch's whole-network graph
// recipe does: the eager warm-up steps, the capture and every replay (so per-stream lazy state,
// cuBLAS workspaces and the like, exists before the capture). The stream waits for the caller's
// stream before a step and the caller's stream waits for it after, without a host sync.
// With runtime.cuda_graph the whole step is captured once, after kWarmupSteps eager steps, and
// replayed: batches are copied into the captured input tensors, and the learning rate lives in
// a device tensor (see sgd.h), so replays follow the schedule.
//
// A failed capture (an exception inside it, or CUDA refusing an operation under capture) is
// cleaned up by PyTorch's rules: the capture is ended on the stream it began on, inside the
// stream guard; the allocator stops routing to the graph's pool; the graph object is kept
// alive (never replayed); the device is synchronised. The step then runs eagerly and so does
// every later one, with a warning in the log. If the device is left unusable, the run stops
// (exit 1) with one line saying to rerun with --set runtime.cuda_graph=false.
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

class GradientAverage;  // src/parallel/communicator.h

struct StepOutput {
  at::Tensor logits;  // [B, C], as the model produced them (bf16 under autocast)
  at::Tensor loss;    // float [], mean over the batch
};

// The model's part of a step, shared by TrainStep and resnet-bench's bare mode: forward and
// cross-entropy (under bf16 autocast when `bf16`), backward, the gradients averaged over the
// ranks (`grads`, data-parallel training only), SGD update. `autocast_cache` must be false while a
// CUDA graph is captured.
// `loss_fault` (a float [] on the device, or undefined) is added to the loss: fault injection
// only (TrainStep::inject_non_finite_loss).
StepOutput model_step(ResNetImpl& model, Sgd& sgd, const at::Tensor& x, const at::Tensor& y, const c10::Device& device,
                      bool bf16, bool autocast_cache = true, GradientAverage* grads = nullptr,
                      const at::Tensor& loss_fault = {});

class TrainStep {
 public:
  // Faults resnet-bench --mode verify injects into the capture to prove the eager fallback:
  // an exception thrown inside the capture, or a host sync (illegal under capture: CUDA
  // invalidates the capture and capture_end fails).
  enum class CaptureFault { kNone, kThrow, kHostSync };
  // Eager steps before the capture: cuDNN benchmark picks its algorithms and the allocator
  // settles (the recipe PyTorch documents for whole-network capture).
  static constexpr int64_t kWarmupSteps = 3;

  TrainStep(ResNetImpl& model, Sgd& sgd, BatchSource& data, const Runtime& runtime, spdlog::logger* log,
            CaptureFault fault = CaptureFault::kNone);
  ~TrainStep();

  // The first CUDA run checks itself, once, before its first step (the trainer calls this): on
  // copies of the model and optimizer state, kWarmupSteps + 2 steps at learning rate `lr`, eager
  // and with the last two from the graph (fp32, deterministic cuDNN), compared as resnet-bench
  // --mode verify's graph_matches_eager does (src/train/graph_check.h). If they disagree, or the
  // capture fails, the log says why and this TrainStep trains eagerly. Costs seconds, once. A no-op
  // on the CPU and without runtime.cuda_graph.
  void check_graph(double lr);

  // Runs global step `step` (0-based) at learning rate `lr`.
  void run(int64_t step, double lr);

  struct Totals {
    double loss_sum = 0;  // summed over images
    int64_t correct = 0;
    int64_t seen = 0;
    // The first step since the last read whose loss was not finite: 0 for the first step after
    // that read, 1 for the next, ...; -1 if there was none.
    int64_t first_non_finite = -1;
  };
  // Reads and clears the running sums (one host sync).
  Totals take_totals();

  // Fault injection (tests): the loss of global step `step` (0-based) becomes NaN, before backward,
  // as a real divergence would (the weights it updates become NaN too). Call before the first step.
  void inject_non_finite_loss(int64_t step);

  bool graph_active() const;
  bool capture_failed() const { return graph_failed_; }
  // Data-parallel training: average the gradients over the ranks between backward and update
  // (before the first step; a CUDA graph then captures the all-reduce with the step: NCCL only).
  void set_grad_sync(GradientAverage* grads) { grads_ = grads; }

 private:
  // The step on the current stream (the side stream on CUDA).
  void run_here(int64_t step, double lr);
  // forward + loss + backward + update on (x, y); accumulates into loss_sum_/correct_.
  void compute(const at::Tensor& x, const at::Tensor& y);
  void eager(int64_t step);
  bool try_capture(int64_t step);

  ResNetImpl& model_;
  Sgd& sgd_;
  BatchSource& data_;
  Runtime runtime_;
  spdlog::logger* log_;
  GradientAverage* grads_ = nullptr;
  at::Tensor loss_sum_;          // double [] on device
  at::Tensor correct_;           // int64 [] on device
  at::Tensor window_steps_;      // int64 [] on device: steps since the last take_totals()
  at::Tensor first_non_finite_;  // int64 [] on device: Totals::first_non_finite
  int64_t seen_ = 0;
  at::Tensor loss_fault_;  // float [] on device (inject_non_finite_loss): NaN at fault_step_, else 0
  int64_t fault_step_ = -1;

  struct Cuda;  // CUDA-only state (side stream, events, graphs), defined in step.cpp
  std::unique_ptr<Cuda> cuda_;
  CaptureFault fault_;
  bool graph_active_ = false;
  bool graph_failed_ = false;
  bool capturing_ = false;
  int64_t eager_steps_ = 0;
};

}  // namespace resnet
