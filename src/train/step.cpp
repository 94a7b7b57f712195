#include "train/step.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>

#include <cmath>

#include "compat/torch_compat.h"
#include "parallel/communicator.h"
#include "train/graph_check.h"
#include "util/errors.h"

#if defined(RESNET_WITH_CUDA)
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace resnet {

namespace {
#if defined(RESNET_WITH_CUDA)
// Leaves the side stream, the caching allocator and the device as they were before a capture
// that failed (PyTorch 2.6-2.11, aten/src/ATen/cuda/CUDAGraph.cpp). Runs inside the side-stream
// guard: capture_end() compares the *current* stream with the one the capture began on.
// - An exception inside the capture leaves the stream capturing: capture_end() ends it (and
//   with it the allocator's routing to the graph's pool; the graph's destructor releases the pool).
// - A capture CUDA invalidated (a host sync under capture) makes capture_end() throw at
//   cudaStreamEndCapture, before it removes the allocator's routing to the graph's pool; and a
//   capture_end() that threw earlier may leave the stream capturing. Both are undone here with
//   the pool id we gave capture_begin (CUDAGraph::pool() refuses to name it after a failure),
//   and the pool is released, so the eager steps can reuse its memory. Then the graph object
//   must never be destroyed (returns true): newer PyTorch releases the pool from the destructor
//   too, and a second release asserts.
// Not undone, because nothing here depends on it: PyTorch's default CUDA generator stays marked
// as capturing (no step uses CUDA random numbers: crops, flips and order are drawn on the CPU), and
// PyTorch 2.10+ also routes pinned host allocations of the capture (none are made here).
// Capture errors do not poison the context; a device that still fails to synchronise does, and
// then the run stops (std::runtime_error: exit 1) telling the user how to train without graphs.
bool recover_from_failed_capture(at::cuda::CUDAGraph& graph, const c10::cuda::CUDAStream& stream,
                                 c10::cuda::MempoolId_t pool, const std::string& why) {
  auto capturing = [&] {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    return cudaStreamIsCapturing(stream.stream(), &status) == cudaSuccess && status != cudaStreamCaptureStatusNone;
  };
  if (capturing()) {
    try {
      graph.capture_end();
    } catch (const c10::Error&) {  // an invalidated capture: CUDA has ended it all the same
    }
  }
  if (capturing()) {
    cudaGraph_t raw = nullptr;
    if (cudaStreamEndCapture(stream.stream(), &raw) == cudaSuccess && raw) cudaGraphDestroy(raw);
  }
  (void)cudaGetLastError();  // the capture's error is not sticky; clear it
  bool released = false;
  try {
    c10::cuda::CUDACachingAllocator::endAllocateToPool(stream.device_index(), pool);
    c10::cuda::CUDACachingAllocator::releasePool(stream.device_index(), pool);
    released = true;
  } catch (const c10::Error&) {  // capture_end() got that far itself: the pool is the graph's to release
  }
  const std::string fix = "; rerun with --set runtime.cuda_graph=false (add --resume RUN_DIR to continue the run)";
  if (capturing())
    throw std::runtime_error("CUDA graph capture failed (" + why + ") and its stream could not be released" + fix);
  try {
    c10::cuda::device_synchronize();
  } catch (const c10::Error& e) {
    throw std::runtime_error("CUDA graph capture failed (" + why + ") and left the GPU unusable (" +
                             first_line(e.what_without_backtrace()) + ")" + fix);
  }
  return released;
}
#endif
}  // namespace

struct TrainStep::Cuda {
#if defined(RESNET_WITH_CUDA)
  explicit Cuda(c10::DeviceIndex index) : side(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index)) {}
  c10::cuda::CUDAStream side;                  // warm-up, capture and replays: one stream for all of them
  at::cuda::CUDAEvent ready, done;             // caller's stream -> side before a step, side -> caller's after
  std::unique_ptr<at::cuda::CUDAGraph> graph;  // the captured step
  std::vector<std::unique_ptr<at::cuda::CUDAGraph>> failed;  // failed captures, kept alive (see try_capture)
  std::vector<at::cuda::CUDAGraph*> abandoned;  // failed captures whose pool we released: deliberately leaked
  at::Tensor images;                            // captured input: float [B, 3, 32, 32]
  at::Tensor labels;                            // captured input: int64 [B]
#endif
};

TrainStep::TrainStep(ResNetImpl& model, Sgd& sgd, BatchSource& data, const Runtime& runtime, spdlog::logger* log,
                     CaptureFault fault)
    : model_(model), sgd_(sgd), data_(data), runtime_(runtime), log_(log), fault_(fault) {
  const auto device = runtime_.device;
  loss_sum_ = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(device));
  correct_ = at::zeros({}, at::TensorOptions().dtype(at::kLong).device(device));
  window_steps_ = at::zeros({}, at::TensorOptions().dtype(at::kLong).device(device));
  first_non_finite_ = at::full({}, -1, at::TensorOptions().dtype(at::kLong).device(device));
#if defined(RESNET_WITH_CUDA)
  if (device.is_cuda()) cuda_ = std::make_unique<Cuda>(device.index() < 0 ? 0 : device.index());
#endif
}

TrainStep::~TrainStep() = default;

bool TrainStep::graph_active() const { return graph_active_; }

StepOutput model_step(ResNetImpl& model, Sgd& sgd, const at::Tensor& x, const at::Tensor& y, const c10::Device& device,
                      bool bf16, bool autocast_cache, GradientAverage* grads, const at::Tensor& loss_fault) {
  StepOutput out;
  {
    compat::Autocast autocast(device, bf16, autocast_cache);
    out.logits = model.forward(x);
    out.loss = at::cross_entropy_loss(out.logits.to(at::kFloat), y);  // mean over the batch
    if (loss_fault.defined()) out.loss = out.loss + loss_fault;
  }
  sgd.zero_grad();
  out.loss.backward();
  if (grads) grads->run();
  sgd.step();
  return out;
}

void TrainStep::compute(const at::Tensor& x, const at::Tensor& y) {
  // Under capture the autocast weight cache must be off: cached casts would be freed memory
  // that the graph still points at.
  const StepOutput out =
      model_step(model_, sgd_, x, y, runtime_.device, runtime_.bf16, !capturing_, grads_, loss_fault_);
  c10::NoGradGuard no_grad;
  const at::Tensor loss = out.loss.detach();
  loss_sum_.add_(loss.to(at::kDouble) * static_cast<double>(x.size(0)));
  correct_.add_(out.logits.detach().argmax(1).eq(y).sum());
  // The window's first non-finite loss, kept on the device (in place: a graph replays it too).
  const at::Tensor first = at::logical_and(at::logical_not(at::isfinite(loss)), first_non_finite_.lt(0));
  first_non_finite_.copy_(at::where(first, window_steps_, first_non_finite_));
  window_steps_.add_(1);
}

void TrainStep::inject_non_finite_loss(int64_t step) {
  fault_step_ = step;
  loss_fault_ = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(runtime_.device));
}

void TrainStep::eager(int64_t step) {
  Batch b = data_.batch(step);
  at::Tensor x = runtime_.channels_last ? b.images.contiguous(at::MemoryFormat::ChannelsLast) : b.images;
  compute(x, b.labels);
}

void TrainStep::check_graph(double lr) {
  if (!cuda_ || !runtime_.cuda_graph || graph_active_ || graph_failed_) return;
  // Each rank decides for itself: a graph-replayed and an eager all-reduce meet all the same.
  const GraphVerdict verdict = self_check_graph(model_, sgd_, data_, runtime_, lr);
  if (log_) log_verdict(verdict, *log_);
  if (!verdict.agree) runtime_.cuda_graph = false;
}

void TrainStep::run(int64_t step, double lr) {
#if defined(RESNET_WITH_CUDA)
  if (cuda_) {
    const c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(cuda_->side.device_index());
    cuda_->ready.record(caller);  // batches, lr and totals the caller's stream wrote come first
    cuda_->ready.block(cuda_->side);
    {
      c10::cuda::CUDAStreamGuard guard(cuda_->side);
      run_here(step, lr);
    }
    cuda_->done.record(cuda_->side);  // evaluation, totals and checkpoints see this step's result
    cuda_->done.block(caller);
    seen_ += data_.batch_size();
    return;
  }
#endif
  run_here(step, lr);
  seen_ += data_.batch_size();
}

void TrainStep::run_here(int64_t step, double lr) {
  sgd_.set_lr(lr);  // in place: a replayed graph reads the new value
  if (loss_fault_.defined()) loss_fault_.fill_(step == fault_step_ ? std::nan("") : 0.0);
  if (graph_active_) {
#if defined(RESNET_WITH_CUDA)
    data_.batch_into(step, cuda_->images, cuda_->labels);
    cuda_->graph->replay();
    if (grads_) grads_->replayed();  // a captured all-reduce with no wait(): give it a deadline
#endif
  } else if (runtime_.cuda_graph && !graph_failed_ && eager_steps_ >= kWarmupSteps) {
    if (!try_capture(step)) eager(step);
  } else {
    eager(step);
    ++eager_steps_;
  }
}

TrainStep::Totals TrainStep::take_totals() {
  if (grads_) grads_->settle();  // a replayed all-reduce that never ends fails here, not hangs
  Totals t;
  t.loss_sum = loss_sum_.item<double>();
  t.correct = correct_.item<int64_t>();
  t.seen = seen_;
  t.first_non_finite = first_non_finite_.item<int64_t>();
  loss_sum_.zero_();
  correct_.zero_();
  first_non_finite_.fill_(-1);
  window_steps_.zero_();
  seen_ = 0;
  return t;
}

bool TrainStep::try_capture(int64_t step) {
#if defined(RESNET_WITH_CUDA)
  // Runs inside run()'s guard: the current stream is the side stream the warm-up used.
  Cuda& c = *cuda_;
  TORCH_CHECK(c10::cuda::getCurrentCUDAStream(c.side.device_index()) == c.side, "capture off the side stream");
  Batch b = data_.batch(step);
  const auto format = runtime_.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  c.images = b.images.clone(format);
  c.labels = b.labels.clone();
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
  // Our own id for the graph's memory pool: the failure path needs it (a fresh one per attempt).
  const c10::cuda::MempoolId_t pool = at::cuda::graph_pool_handle();
  c10::cuda::device_synchronize();  // the warm-up's work is done (as torch.cuda.graph does)

  // A flag that every exit resets, whatever is thrown.
  struct Capturing {
    bool& flag;
    explicit Capturing(bool& f) : flag(f) { flag = true; }
    ~Capturing() { flag = false; }
  };
  std::string why;
  try {
    Capturing capturing(capturing_);
    graph->capture_begin(pool);
    // Capture records the kernels without running them; the replay below runs this step.
    compute(c.images, c.labels);
    if (fault_ == CaptureFault::kThrow) throw std::runtime_error("injected fault: exception inside the capture");
    if (fault_ == CaptureFault::kHostSync) (void)loss_sum_.item<double>();  // illegal under capture
    graph->capture_end();
  } catch (const c10::Error& e) {
    why = first_line(e.what_without_backtrace());
  } catch (const std::exception& e) {
    why = first_line(e.what());
  }
  if (why.empty()) {
    graph->replay();
    if (grads_) grads_->replayed();
    c.graph = std::move(graph);
    graph_active_ = true;
    if (log_) log_->info("CUDA graph captured at step {}: every step is now one replay", step);
    return true;
  }
  // Kept, never replayed; one whose pool we released is never destroyed either (see above).
  if (recover_from_failed_capture(*graph, c.side, pool, why)) c.abandoned.push_back(graph.release());
  else c.failed.push_back(std::move(graph));
  c.images = at::Tensor();
  c.labels = at::Tensor();
  graph_failed_ = true;
  if (log_) log_->warn("CUDA graph capture failed at step {} ({}); training eagerly from here", step, why);
  return false;
#else
  graph_failed_ = true;
  if (log_) log_->warn("runtime.cuda_graph: this build has no CUDA; training eagerly");
  return false;
#endif
}

}  // namespace resnet
