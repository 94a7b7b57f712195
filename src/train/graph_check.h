#pragma once
// Does a training step replayed from a CUDA graph compute what the eager step computes? The
// comparison behind resnet-bench --mode verify (its graph_matches_eager check) and behind the
// first CUDA run's self-check (TrainStep::check_graph): the same steps from the same state, once
// eagerly and once through the graph, in fp32 with deterministic cuDNN; the loss of every step
// and the final weights must agree within kGraphTolerance, relative. Rounding differences between
// two correct computations of the same steps stay far below it.
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "train/step.h"

namespace spdlog {
class logger;
}

namespace resnet {

constexpr double kGraphTolerance = 1e-4;

// What a few training steps produced.
struct Trajectory {
  std::vector<double> losses;      // mean loss of each step
  std::vector<at::Tensor> params;  // final parameters (CPU copies)
  bool graph = false;              // the steps were replayed from a CUDA graph
  bool capture_failed = false;
};

using LrFn = std::function<double(int64_t)>;

// `steps` steps of TrainStep as the trainer runs them (global steps first .. first+steps-1) on
// `model` and `sgd` as they are; `at_step` sees the model before each step. A host sync per step.
Trajectory run_steps(ResNetImpl& model, Sgd& sgd, BatchSource& source, const Runtime& runtime, int64_t first,
                     int64_t steps, const LrFn& lr, TrainStep::CaptureFault fault = TrainStep::CaptureFault::kNone,
                     const std::function<void(int64_t, ResNetImpl&)>& at_step = {});

// CPU copies of the model's parameters.
std::vector<at::Tensor> cpu_params(ResNetImpl& model);

// Largest relative difference of the per-step losses (relative to b's).
double loss_gap(const Trajectory& a, const Trajectory& b);
// Largest difference of any parameter, relative to that tensor's largest magnitude in `b`.
double weight_gap(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b);

struct GraphVerdict {
  bool agree = false;      // the two sides agree (for the self-check: train from the graph)
  double loss_diff = 0;    // loss_gap(graph, eager)
  double weight_diff = 0;  // weight_gap(graph.params, eager.params)
  std::string reason;      // one line: what was compared and what was found
};

// Compares and decides: the graph agrees when `graph` came from a graph (or, with expect_graph
// false, did not: verify on the CPU runs eager twice), both ran the same steps, and every loss
// and weight is within kGraphTolerance (a NaN never agrees).
GraphVerdict judge_graph(const Trajectory& graph, const Trajectory& eager, bool expect_graph = true);

// TrainStep::check_graph's work: kWarmupSteps + 2 steps at `lr` from copies of `model` and of
// `sgd`'s momentum, eager and through the graph (fp32, cuDNN deterministic and benchmark off, its
// flags restored afterwards), judged. `model`, `sgd` and `source` are left as they were.
GraphVerdict self_check_graph(ResNetImpl& model, Sgd& sgd, BatchSource& source, const Runtime& runtime, double lr);

// The verdict in the run's log: info when the graph is used, a warning ending in "training
// eagerly" when not.
void log_verdict(const GraphVerdict& verdict, spdlog::logger& log);

}  // namespace resnet
