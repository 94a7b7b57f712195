#include "models/blocks.h"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/padding.h>
#include <torch/nn/init.h>

namespace resnet {
namespace {

namespace F = torch::nn::functional;

torch::nn::Conv2d make_conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
  // He et al. 2015 ("Delving deep"): N(0, 2/n), n = k*k*out_channels, as in torchvision.
  torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
  return conv;
}

torch::nn::BatchNorm2d make_bn(int64_t channels) {
  return torch::nn::BatchNorm2d(channels);  // gamma = 1, beta = 0
}

}  // namespace

at::Tensor relu_fresh(at::Tensor t, bool recorded) { return recorded ? torch::relu(t) : t.relu_(); }

at::Tensor FoldedConv::operator()(const at::Tensor& x) const { return at::conv2d(x, weight, bias, stride, padding); }

FoldedConv fold_conv_bn(const torch::nn::Conv2d& conv, const torch::nn::BatchNorm2d& bn) {
  FoldedConv f;
  f.stride = conv->options.stride()->at(0);
  // Every conv here pads kernel/2 (read from the weight: the options' padding is a variant
  // whose accessor differs between LibTorch 1.13 and 2.x).
  f.padding = conv->weight.size(3) / 2;
  const at::Tensor w = conv->weight.detach();
  if (!bn) {
    f.weight = w;
    if (conv->bias.defined()) f.bias = conv->bias.detach();
    return f;
  }
  const at::Tensor gain = bn->weight.detach() / at::sqrt(bn->running_var + bn->options.eps());
  f.weight = (w * gain.view({-1, 1, 1, 1})).contiguous(w.suggest_memory_format());
  f.bias = bn->bias.detach() - bn->running_mean * gain;
  if (conv->bias.defined()) f.bias = f.bias + conv->bias.detach() * gain;
  return f;
}

at::Tensor option_a_shortcut(const at::Tensor& x, int64_t stride, int64_t out_channels, bool split) {
  using torch::indexing::Slice;
  at::Tensor s =
      stride == 1 ? x : x.index({Slice(), Slice(), Slice(0, c10::nullopt, stride), Slice(0, c10::nullopt, stride)});
  const int64_t extra = out_channels - x.size(1);
  // The new channels carry zeros: the shortcut stays an identity on the old ones and adds
  // no parameters, so a plain net and its residual twin have exactly the same weights.
  // Where they go changes nothing here, but trained weights expect their own layout (akamaster's
  // code splits them, putting the identity channels in the middle).
  const int64_t before = split ? extra / 2 : 0;
  if (extra > 0) s = F::pad(s, F::PadFuncOptions({0, 0, 0, 0, before, extra - before}));
  return s;
}

BlockImpl::BlockImpl(BlockOptions options, int64_t expansion) : options_(options), expansion_(expansion) {
  if (has_projection_shortcut(options_.residual, std::string(1, options_.shortcut), changes_shape())) {
    projection_conv_ =
        register_module("shortcut_conv", make_conv(options_.in_channels, out_channels(), 1, options_.stride));
    if (!options_.preact) projection_bn_ = register_module("shortcut_bn", make_bn(out_channels()));
  }
}

std::vector<FoldedConv> BlockImpl::fold_layers() const {
  std::vector<FoldedConv> folded;
  for (size_t i = 0; i < convs_.size(); ++i) {
    torch::nn::BatchNorm2d after{nullptr};
    if (!options_.preact) after = bns_[i];
    else if (i + 1 < bns_.size()) after = bns_[i + 1];
    folded.push_back(fold_conv_bn(convs_[i], after));
  }
  return folded;
}

FoldedConv BlockImpl::fold_projection() const {
  return projection_conv_ ? fold_conv_bn(projection_conv_, projection_bn_) : FoldedConv{};
}

void BlockImpl::set_folded(bool on) {
  folded_ = on ? fold_layers() : std::vector<FoldedConv>{};
  folded_projection_ = on ? fold_projection() : FoldedConv{};
}

at::Tensor BlockImpl::shortcut(const at::Tensor& x, const at::Tensor& pre) {
  if (projection_conv_ && folded_projection_.weight.defined() && !is_training()) return folded_projection_(pre);
  if (projection_conv_) {
    at::Tensor s = projection_conv_->forward(pre);
    return projection_bn_ ? projection_bn_->forward(s) : s;
  }
  if (changes_shape()) return option_a_shortcut(x, options_.stride, out_channels(), options_.pad_split);
  return x;
}

at::Tensor BlockImpl::combine(const at::Tensor& x, const at::Tensor& pre, const at::Tensor& branch,
                              ForwardRecorder* recorder, int index) {
  using Path = GradientPath;
  const at::Tensor f = gradient_path == Path::kSkip ? branch.detach() : branch;
  at::Tensor y;
  if (options_.residual) {
    const at::Tensor s = shortcut(x, pre);
    y = f + (gradient_path == Path::kBranch ? s.detach() : s);  // y = F(x) + s(x)
  } else {
    y = f;  // plain: y = F(x)
  }
  // Plain: y is the branch itself (recorded, or aliased by a detached copy): not in place.
  if (!options_.preact) y = relu_fresh(y, !options_.residual && (recorder || gradient_path != Path::kBoth));
  if (recorder) recorder->on_block(index, x, branch, y);
  return y;
}

at::Tensor BlockImpl::lesion_output(const at::Tensor& x, const at::Tensor& pre, ForwardRecorder* recorder, int index) {
  at::Tensor y =
      options_.residual ? shortcut(x, pre) : option_a_shortcut(x, options_.stride, out_channels(), options_.pad_split);
  if (!options_.preact && options_.residual) y = torch::relu(y);
  if (recorder) recorder->on_block(index, x, at::Tensor(), y);
  return y;
}

void BlockImpl::add_layer(torch::nn::Conv2d conv, torch::nn::BatchNorm2d bn) {
  const std::string k = std::to_string(convs_.size() + 1);
  convs_.push_back(register_module("conv" + k, conv));
  bns_.push_back(register_module("bn" + k, bn));
}

at::Tensor BlockImpl::forward(const at::Tensor& x, ForwardRecorder* rec, int index) {
  const std::string name = rec ? "block" + std::to_string(index) : std::string();
  auto record = [&](size_t i, const at::Tensor& response) {
    if (rec) rec->on_layer(name + ".conv" + std::to_string(i + 1), response);
  };
  // Folded layers (set_folded) only where nothing observes the responses between conv and BN.
  const bool fold = !folded_.empty() && !rec && !is_training();
  if (options_.preact) {
    // Each layer is conv(relu(bn(.))); the first BN-ReLU also feeds projection shortcuts.
    // Folded, the BN of layer i + 1 already sits in conv i.
    at::Tensor pre = relu_fresh(bns_[0]->forward(x), false);
    if (lesioned) return lesion_output(x, pre, rec, index);
    at::Tensor o = pre;
    for (size_t i = 0; i < convs_.size(); ++i) {
      if (i > 0) o = relu_fresh(fold ? o : bns_[i]->forward(o), false);
      o = fold ? folded_[i](o) : convs_[i]->forward(o);
      record(i, o);
    }
    return combine(x, pre, o, rec, index);
  }
  if (lesioned) return lesion_output(x, x, rec, index);
  // Each layer is bn(conv(.)), with a ReLU between layers; the last ReLU comes after the addition.
  at::Tensor o = x;
  for (size_t i = 0; i < convs_.size(); ++i) {
    o = fold ? folded_[i](o) : bns_[i]->forward(convs_[i]->forward(o));
    record(i, o);
    if (i + 1 < convs_.size()) o = relu_fresh(o, rec != nullptr);
  }
  return combine(x, x, o, rec, index);
}

void BlockImpl::add_branch(const std::string& block) {
  // Pre-activation BNs normalise a layer's input, post-activation BNs its output.
  for (const ConvShape& c : branch_convs(block, options_.in_channels, options_.planes, options_.stride))
    add_layer(make_conv(c.in, c.out, c.kernel, c.stride), make_bn(options_.preact ? c.in : c.out));
}

BasicBlockImpl::BasicBlockImpl(BlockOptions o) : BlockImpl(o, kExpansion) {
  add_branch("basic");
  conv1 = convs_[0], conv2 = convs_[1];
  bn1 = bns_[0], bn2 = bns_[1];
}

BottleneckImpl::BottleneckImpl(BlockOptions o) : BlockImpl(o, kExpansion) {
  add_branch("bottleneck");
  conv1 = convs_[0], conv2 = convs_[1], conv3 = convs_[2];
  bn1 = bns_[0], bn2 = bns_[1], bn3 = bns_[2];
}

}  // namespace resnet
