#include "bench/conv_limit.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "models/resnet.h"

#if defined(RESNET_WITH_CUDA)
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace resnet {
namespace {

using Clock = std::chrono::steady_clock;

// One convolution as the network runs it: the input's and weight's shapes and the geometry.
struct RecordedConv {
  std::vector<int64_t> input, weight, stride, padding, dilation;
  int64_t groups = 1;
  bool input_grad = true;  // autograd wants the input's gradient (false for the image itself)
  bool operator<(const RecordedConv& o) const {
    return std::tie(input, weight, stride, padding, dilation, groups, input_grad) <
           std::tie(o.input, o.weight, o.stride, o.padding, o.dilation, o.groups, o.input_grad);
  }
};

// The convolutions of one forward pass, seen by a RecordFunction callback on aten::convolution
// (LibTorch has no forward hooks; the dispatcher reports every op with its inputs).
std::vector<RecordedConv>* g_seen = nullptr;

std::unique_ptr<at::ObserverContext> on_op(const at::RecordFunction& fn) {
  if (!g_seen || std::string(fn.name()) != "aten::convolution") return nullptr;
  const auto in = fn.inputs();
  if (in.size() < 9 || !in[0].isTensor() || !in[1].isTensor()) return nullptr;
  RecordedConv s;
  s.input = in[0].toTensor().sizes().vec();
  s.weight = in[1].toTensor().sizes().vec();
  s.stride = in[3].toIntVector();
  s.padding = in[4].toIntVector();
  s.dilation = in[5].toIntVector();
  s.groups = in[8].toInt();
  s.input_grad = in[0].toTensor().requires_grad();
  g_seen->push_back(s);
  return nullptr;
}

std::vector<RecordedConv> record_convolutions(const ExperimentConfig& c) {
  ResNet model = make_model(c.model);
  model->train();
  std::vector<RecordedConv> seen;
  g_seen = &seen;
  const auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(on_op).needsInputs(true));
  try {
    model->forward(at::randn({c.train.batch_size, 3, 32, 32}));
  } catch (...) {
    at::removeCallback(handle);
    g_seen = nullptr;
    throw;
  }
  at::removeCallback(handle);
  g_seen = nullptr;
  return seen;
}

void sync(const c10::Device& d) {
#if defined(RESNET_WITH_CUDA)
  if (d.is_cuda()) c10::cuda::device_synchronize();
#endif
}

template <typename Fn>
double ms_per_call(const c10::Device& d, int64_t warmup, int64_t steps, Fn fn) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  sync(d);
  const auto start = Clock::now();
  for (int64_t i = 0; i < steps; ++i) fn();
  sync(d);
  return 1000.0 * std::chrono::duration<double>(Clock::now() - start).count() / static_cast<double>(steps);
}

}  // namespace

nlohmann::json time_convolutions(const ExperimentConfig& c, const Runtime& rt, int64_t warmup, int64_t steps) {
  std::map<RecordedConv, int64_t> count;
  int64_t layers = 0;
  for (const auto& s : record_convolutions(c)) ++count[s], ++layers;
  const at::TensorOptions opts = at::TensorOptions().device(rt.device).dtype(rt.bf16 ? at::kBFloat16 : at::kFloat);
  const auto format = rt.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  c10::NoGradGuard no_grad;
  double forward_ms = 0, backward_ms = 0;
  nlohmann::json shapes = nlohmann::json::array();
  for (const auto& [s, n] : count) {
    const at::Tensor x = at::randn(s.input, opts).contiguous(format);
    const at::Tensor w = at::randn(s.weight, opts).contiguous(format);
    const std::vector<int64_t> no_output_padding(s.stride.size(), 0);
    auto conv = [&] {
      return at::convolution(x, w, {}, s.stride, s.padding, s.dilation, false, no_output_padding, s.groups);
    };
    const at::Tensor grad = at::randn_like(conv()).contiguous(format);
    const double f = ms_per_call(rt.device, warmup, steps, conv);
    const double b = ms_per_call(rt.device, warmup, steps, [&] {
      return at::convolution_backward(grad, x, w, c10::nullopt, s.stride, s.padding, s.dilation, false,
                                      no_output_padding, s.groups, {s.input_grad, true, false});
    });
    forward_ms += f * static_cast<double>(n);
    backward_ms += b * static_cast<double>(n);
    shapes.push_back({{"input", s.input},
                      {"weight", s.weight},
                      {"stride", s.stride},
                      {"count", n},
                      {"input_grad", s.input_grad},
                      {"forward_ms", f},
                      {"backward_ms", b}});
  }
  const double ms = forward_ms + backward_ms;
  return {{"layers", layers},         {"distinct", count.size()},
          {"forward_ms", forward_ms}, {"backward_ms", backward_ms},
          {"ms_per_step", ms},        {"images_per_sec", 1000.0 * static_cast<double>(c.train.batch_size) / ms},
          {"shapes", shapes}};
}

}  // namespace resnet
