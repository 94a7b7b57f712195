#include "train/step.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>

#include "compat/torch_compat.h"

#if defined(RESNET_WITH_CUDA)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace resnet {

namespace {
// Eager steps before capture: cuDNN benchmark picks its algorithms and the allocator settles
// (the recipe PyTorch documents for whole-network capture).
constexpr int64_t kWarmupSteps = 3;
}  // namespace

struct TrainStep::Graph {
#if defined(RESNET_WITH_CUDA)
  at::cuda::CUDAGraph graph;
#endif
  at::Tensor images;  // captured input: float [B, 3, 32, 32]
  at::Tensor labels;  // captured input: int64 [B]
};

TrainStep::TrainStep(ResNetImpl& model, Sgd& sgd, BatchSource& data, const Runtime& runtime,
                     spdlog::logger* log)
    : model_(model), sgd_(sgd), data_(data), runtime_(runtime), log_(log) {
  const auto device = runtime_.device;
  loss_sum_ = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
  correct_ = at::zeros({}, at::TensorOptions().dtype(at::kLong).device(device));
}

TrainStep::~TrainStep() = default;

bool TrainStep::graph_active() const { return graph_ != nullptr; }

StepOutput model_step(ResNetImpl& model, Sgd& sgd, const at::Tensor& x, const at::Tensor& y,
                      const c10::Device& device, bool bf16, bool autocast_cache) {
  StepOutput out;
  {
    compat::Autocast autocast(device, bf16, autocast_cache);
    out.logits = model.forward(x);
    out.loss = at::cross_entropy_loss(out.logits.to(at::kFloat), y);  // mean over the batch
  }
  sgd.zero_grad();
  out.loss.backward();
  sgd.step();
  return out;
}

void TrainStep::compute(const at::Tensor& x, const at::Tensor& y) {
  // Under capture the autocast weight cache must be off: cached casts would be freed memory
  // that the graph still points at.
  const StepOutput out = model_step(model_, sgd_, x, y, runtime_.device, runtime_.bf16, !capturing_);
  c10::NoGradGuard no_grad;
  loss_sum_.add_(out.loss.detach().to(at::kDouble) * static_cast<double>(x.size(0)));
  correct_.add_(out.logits.detach().argmax(1).eq(y).sum());
}

void TrainStep::eager(int64_t step) {
  Batch b = data_.batch(step);
  at::Tensor x = runtime_.channels_last ? b.images.contiguous(at::MemoryFormat::ChannelsLast) : b.images;
  compute(x, b.labels);
}

void TrainStep::run(int64_t step, double lr) {
  sgd_.set_lr(lr);  // in place: a replayed graph reads the new value
  if (graph_) {
    data_.batch_into(step, graph_->images, graph_->labels);
#if defined(RESNET_WITH_CUDA)
    graph_->graph.replay();
#endif
  } else if (runtime_.cuda_graph && !graph_failed_ && eager_steps_ >= kWarmupSteps) {
    if (!try_capture(step)) eager(step);
  } else {
    eager(step);
    ++eager_steps_;
  }
  seen_ += data_.batch_size();
}

TrainStep::Totals TrainStep::take_totals() {
  Totals t;
  t.loss_sum = loss_sum_.item<double>();
  t.correct = correct_.item<int64_t>();
  t.seen = seen_;
  loss_sum_.zero_();
  correct_.zero_();
  seen_ = 0;
  return t;
}

bool TrainStep::try_capture(int64_t step) {
#if defined(RESNET_WITH_CUDA)
  auto g = std::make_unique<Graph>();
  Batch b = data_.batch(step);
  const auto format = runtime_.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  g->images = b.images.clone(format);
  g->labels = b.labels.clone();
  bool began = false;
  try {
    c10::cuda::device_synchronize();
    auto stream = c10::cuda::getStreamFromPool();
    {
      c10::cuda::CUDAStreamGuard guard(stream);
      // Capture records the kernels without running them; the replay below runs this step.
      capturing_ = true;
      g->graph.capture_begin();
      began = true;
      compute(g->images, g->labels);
      g->graph.capture_end();
      began = false;
      capturing_ = false;
    }
    c10::cuda::device_synchronize();
    g->graph.replay();
    graph_ = std::move(g);
    if (log_) log_->info("CUDA graph captured at step {}: every step is now one replay", step);
    return true;
  } catch (const c10::Error& e) {
    capturing_ = false;
    if (began) {
      try {
        g->graph.capture_end();
      } catch (const c10::Error&) {
      }
    }
    graph_failed_ = true;
    if (log_) log_->warn("CUDA graph capture failed ({}); training eagerly", e.what_without_backtrace());
    return false;
  }
#else
  graph_failed_ = true;
  if (log_) log_->warn("runtime.cuda_graph: this build has no CUDA; training eagerly");
  return false;
#endif
}

}  // namespace resnet
