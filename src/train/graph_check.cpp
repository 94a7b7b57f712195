#include "train/graph_check.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <limits>

namespace resnet {
namespace {

// The larger of two gaps, where NaN (a non-finite loss or weight on one side) is the largest.
double worse(double worst, double gap) {
  return std::isnan(gap) ? std::numeric_limits<double>::infinity() : std::max(worst, gap);
}

bool same_shapes(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].sizes() != b[i].sizes()) return false;
  return true;
}

// A copy of `model` (parameters and buffers, on the device and in the memory format the run
// uses) in training mode.
ResNet copy_model(ResNetImpl& model, const Runtime& rt) {
  ResNet copy = make_model(model.config());
  copy->to(rt.device);
  if (rt.channels_last) to_channels_last(*copy);
  c10::NoGradGuard no_grad;
  const auto from = model.parameters(), to = copy->parameters();
  for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  const auto bfrom = model.buffers(), bto = copy->buffers();
  for (size_t i = 0; i < bfrom.size(); ++i) bto[i].copy_(bfrom[i]);
  copy->train();
  return copy;
}

// `steps` steps from copies of `model` and of `sgd`'s momentum; the originals stay as they are.
Trajectory steps_on_copy(ResNetImpl& model, Sgd& sgd, BatchSource& source, const Runtime& rt, int64_t steps,
                         const LrFn& lr) {
  ResNet copy = copy_model(model, rt);
  Sgd copy_sgd(copy->parameters(), sgd.options());
  {
    c10::NoGradGuard no_grad;
    for (size_t i = 0; i < sgd.momentum_buffers().size(); ++i)
      copy_sgd.momentum_buffers()[i].copy_(sgd.momentum_buffers()[i]);
  }
  return run_steps(*copy, copy_sgd, source, rt, 0, steps, lr);
}

// cuDNN's process-wide flags, set for the check and restored after it.
class CudnnFlags {
 public:
  CudnnFlags(bool benchmark, bool deterministic)
      : benchmark_(at::globalContext().benchmarkCuDNN()), deterministic_(at::globalContext().deterministicCuDNN()) {
    at::globalContext().setBenchmarkCuDNN(benchmark);
    at::globalContext().setDeterministicCuDNN(deterministic);
  }
  ~CudnnFlags() {
    at::globalContext().setBenchmarkCuDNN(benchmark_);
    at::globalContext().setDeterministicCuDNN(deterministic_);
  }

 private:
  bool benchmark_, deterministic_;
};

}  // namespace

std::vector<at::Tensor> cpu_params(ResNetImpl& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model.parameters()) out.push_back(p.detach().to(at::kCPU).clone());
  return out;
}

Trajectory run_steps(ResNetImpl& model, Sgd& sgd, BatchSource& source, const Runtime& runtime, int64_t first,
                     int64_t steps, const LrFn& lr, TrainStep::CaptureFault fault,
                     const std::function<void(int64_t, ResNetImpl&)>& at_step) {
  TrainStep step(model, sgd, source, runtime, nullptr, fault);
  Trajectory t;
  for (int64_t i = first; i < first + steps; ++i) {
    if (at_step) at_step(i, model);
    step.run(i, lr(i));
    const TrainStep::Totals totals = step.take_totals();  // a host sync per step: fine here
    t.losses.push_back(totals.loss_sum / static_cast<double>(totals.seen));
  }
  t.params = cpu_params(model);
  t.graph = step.graph_active();
  t.capture_failed = step.capture_failed();
  return t;
}

double loss_gap(const Trajectory& a, const Trajectory& b) {
  double worst = 0;
  for (size_t i = 0; i < std::min(a.losses.size(), b.losses.size()); ++i)
    worst = worse(worst, std::abs(a.losses[i] - b.losses[i]) / std::max(1e-12, std::abs(b.losses[i])));
  return worst;
}

double weight_gap(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const double scale = std::max(1e-12, b[i].abs().max().item<double>());
    worst = worse(worst, (a[i] - b[i]).abs().max().item<double>() / scale);
  }
  return worst;
}

GraphVerdict judge_graph(const Trajectory& graph, const Trajectory& eager, bool expect_graph) {
  GraphVerdict v;
  const size_t n = eager.losses.size();
  if (n == 0 || graph.losses.size() != n || !same_shapes(graph.params, eager.params)) {
    v.reason = fmt::format("the two sides are not the same steps ({} and {} steps, {} and {} tensors)",
                           graph.losses.size(), n, graph.params.size(), eager.params.size());
    return v;
  }
  v.loss_diff = loss_gap(graph, eager);
  v.weight_diff = weight_gap(graph.params, eager.params);
  const std::string figures = fmt::format("losses {:.1e} and weights {:.1e} apart (relative; tolerance {:.0e})",
                                          v.loss_diff, v.weight_diff, kGraphTolerance);
  if (graph.graph != expect_graph) {
    v.reason = !expect_graph          ? "the steps ran from a CUDA graph where eager steps were expected"
               : graph.capture_failed ? "the step could not be captured in a CUDA graph"
                                      : "the steps did not run from a CUDA graph";
    return v;
  }
  v.agree = v.loss_diff <= kGraphTolerance && v.weight_diff <= kGraphTolerance;
  v.reason =
      fmt::format("{} steps {} {} {} eager ones: {}", n, expect_graph ? "through the CUDA graph" : "eagerly again",
                  v.agree ? "match" : "differ from", n, figures);
  return v;
}

GraphVerdict self_check_graph(ResNetImpl& model, Sgd& sgd, BatchSource& source, const Runtime& runtime, double lr) {
  Runtime rt = runtime;
  rt.bf16 = false;  // fp32: graph and eager must agree to rounding
  rt.cudnn_benchmark = false;
  const CudnnFlags flags(/*benchmark=*/false, /*deterministic=*/true);  // the same algorithms on both sides
  Runtime eager = rt, graph = rt;
  eager.cuda_graph = false;
  graph.cuda_graph = true;
  const int64_t n = TrainStep::kWarmupSteps + 2;  // the capture's own step and one more replay
  const LrFn fixed = [lr](int64_t) { return lr; };
  const Trajectory ref = steps_on_copy(model, sgd, source, eager, n, fixed);
  const Trajectory fast = steps_on_copy(model, sgd, source, graph, n, fixed);
  return judge_graph(fast, ref);
}

void log_verdict(const GraphVerdict& verdict, spdlog::logger& log) {
  if (verdict.agree) log.info("CUDA graph self-check: {}", verdict.reason);
  else log.warn("CUDA graph self-check: {}; training eagerly", verdict.reason);
}

}  // namespace resnet
