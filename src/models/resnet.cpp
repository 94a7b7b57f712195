#include "models/resnet.h"

#include <torch/nn/init.h>

#include "util/errors.h"

namespace resnet {

NetworkSpec network_spec(const ModelConfig& m) {
  NetworkSpec spec;
  spec.block = m.block;
  if (m.family == "cifar") {
    const int per_block = m.block == "basic" ? 6 : 9;
    if (m.depth < per_block + 2 || (m.depth - 2) % per_block != 0)
      throw InputError("model.depth: " + std::to_string(m.depth) + " is not " +
                       std::to_string(per_block) + "n+2 for " + m.block + " blocks");
    const int64_t n = (m.depth - 2) / per_block;
    spec.stem_channels = 16;
    spec.stage_planes = {16, 32, 64};
    spec.stage_blocks = {n, n, n};
    return spec;
  }
  spec.stem_channels = 64;
  spec.stage_planes = {64, 128, 256, 512};
  switch (m.depth) {
    case 18: spec.stage_blocks = {2, 2, 2, 2}; break;
    case 34: case 50: spec.stage_blocks = {3, 4, 6, 3}; break;
    case 101: spec.stage_blocks = {3, 4, 23, 3}; break;
    case 152: spec.stage_blocks = {3, 8, 36, 3}; break;
    default:
      throw InputError("model.depth: " + std::to_string(m.depth) +
                       " is not an ImageNet-family depth (18, 34, 50, 101, 152)");
  }
  return spec;
}

ResNetImpl::ResNetImpl(const ModelConfig& config) : config_(config), spec_(network_spec(config)) {
  const bool imagenet_stem = config_.stem == "imagenet";
  const int64_t kernel = imagenet_stem ? 7 : 3;
  stem_conv_ = register_module(
      "stem_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, spec_.stem_channels, kernel)
                                         .stride(imagenet_stem ? 2 : 1)
                                         .padding(kernel / 2)
                                         .bias(false)));
  torch::nn::init::kaiming_normal_(stem_conv_->weight, 0.0, torch::kFanOut, torch::kReLU);
  if (!config_.preact) stem_bn_ = register_module("stem_bn", torch::nn::BatchNorm2d(spec_.stem_channels));

  const bool bottleneck = spec_.block == "bottleneck";
  const int64_t expansion = bottleneck ? BottleneckImpl::kExpansion : BasicBlockImpl::kExpansion;
  int64_t channels = spec_.stem_channels;
  for (size_t s = 0; s < spec_.stage_planes.size(); ++s) {
    for (int64_t b = 0; b < spec_.stage_blocks[s]; ++b) {
      BlockOptions o;
      o.in_channels = channels;
      o.planes = spec_.stage_planes[s];
      o.stride = (s > 0 && b == 0) ? 2 : 1;  // each stage after the first halves the map
      o.residual = config_.residual;
      o.shortcut = config_.shortcut.at(0);
      o.pad_split = config_.option_a_padding == "split";
      o.preact = config_.preact;
      std::shared_ptr<BlockImpl> block;
      if (bottleneck) block = std::make_shared<BottleneckImpl>(o);
      else block = std::make_shared<BasicBlockImpl>(o);
      register_module("block" + std::to_string(blocks_.size()), block);
      if (config_.zero_init_residual && config_.residual) {
        torch::NoGradGuard no_grad;
        block->last_branch_bn()->weight.zero_();
      }
      blocks_.push_back(block);
      block_stage_.push_back(static_cast<int>(s) + 1);
      channels = o.planes * expansion;
    }
  }
  if (config_.preact) final_bn_ = register_module("final_bn", torch::nn::BatchNorm2d(channels));
  fc_ = register_module("fc", torch::nn::Linear(channels, config_.num_classes));
}

at::Tensor ResNetImpl::forward(const at::Tensor& images, ForwardRecorder* rec) {
  const bool fold = stem_folded_.weight.defined() && !rec && !is_training();
  at::Tensor x = fold ? stem_folded_(images) : stem_conv_->forward(images);
  if (stem_bn_) {
    if (!fold) x = stem_bn_->forward(x);
    if (rec) rec->on_layer("stem", x);
    x = relu_fresh(x, rec != nullptr);
  } else if (rec) {
    rec->on_layer("stem", x);
  }
  if (config_.stem == "imagenet") x = torch::max_pool2d(x, 3, 2, 1);
  if (rec) rec->on_stage(0, x);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    x = blocks_[i]->forward(x, rec, static_cast<int>(i));
    const bool stage_end = i + 1 == blocks_.size() || block_stage_[i + 1] != block_stage_[i];
    if (rec && stage_end) rec->on_stage(block_stage_[i], x);
  }
  if (final_bn_) x = relu_fresh(final_bn_->forward(x), false);
  x = x.mean({2, 3});  // global average pool: [B, C, H, W] -> [B, C]
  return fc_->forward(x);
}

void ResNetImpl::set_lesioned(const std::vector<int>& lesioned) {
  for (auto& b : blocks_) b->lesioned = false;
  for (int i : lesioned) blocks_.at(static_cast<size_t>(i))->lesioned = true;
}

FoldedConv ResNetImpl::fold_stem() const { return fold_conv_bn(stem_conv_, stem_bn_); }

void ResNetImpl::set_folded(bool on) {
  // Pre-activation stems have no BN of their own; the final BN (before the pool) follows a sum.
  stem_folded_ = on && stem_bn_ ? fold_stem() : FoldedConv{};
  for (auto& b : blocks_) b->set_folded(on);
}

FoldedEval::FoldedEval(ResNetImpl& model) : model_(model), was_training_(model.is_training()) {
  model_.eval();
  model_.set_folded(true);
}

FoldedEval::~FoldedEval() {
  model_.set_folded(false);
  if (was_training_) model_.train();
}

ResNet make_model(ModelConfig config) {
  validate_model(config);
  return ResNet(config);
}

void to_channels_last(torch::nn::Module& module) {
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
}

std::string model_name(const ModelConfig& m) {
  const std::string kind = m.residual ? (m.preact ? "preact-resnet" : "resnet") : "plain";
  return kind + "-" + std::to_string(m.depth) + (m.family == "imagenet" ? "-imagenet" : "");
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace resnet
