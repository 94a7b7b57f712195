#include "models/resnet.h"

#include <torch/nn/init.h>

#include "models/family.h"
#include "util/errors.h"

namespace resnet {

ResNetImpl::ResNetImpl(const ModelConfig& config) : config_(config), layout_(network_layout(config)) {
  const NetworkSpec& spec = layout_.spec;
  stem_conv_ =
      register_module("stem_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, spec.stem_channels, spec.stem_kernel)
                                                         .stride(spec.stem_stride)
                                                         .padding(spec.stem_kernel / 2)
                                                         .bias(false)));
  torch::nn::init::kaiming_normal_(stem_conv_->weight, 0.0, torch::kFanOut, torch::kReLU);
  if (!layout_.preact) stem_bn_ = register_module("stem_bn", torch::nn::BatchNorm2d(spec.stem_channels));
  for (const BlockLayout& b : layout_.blocks) {
    BlockOptions o;
    o.in_channels = b.in_channels;
    o.planes = spec.stage_planes.at(static_cast<size_t>(b.stage - 1));
    o.stride = b.stride;
    o.residual = config_.residual;
    o.shortcut = config_.shortcut.at(0);
    o.pad_split = config_.option_a_padding == "split";
    o.preact = layout_.preact;
    std::shared_ptr<BlockImpl> block;
    if (spec.block == "bottleneck") block = std::make_shared<BottleneckImpl>(o);
    else block = std::make_shared<BasicBlockImpl>(o);
    register_module("block" + std::to_string(blocks_.size()), block);
    if (config_.zero_init_residual && config_.residual) {
      torch::NoGradGuard no_grad;
      block->last_branch_bn()->weight.zero_();
    }
    blocks_.push_back(block);
    block_stage_.push_back(b.stage);
  }
  if (layout_.preact) final_bn_ = register_module("final_bn", torch::nn::BatchNorm2d(layout_.features));
  fc_ = register_module("fc", torch::nn::Linear(layout_.features, config_.num_classes));
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
  if (layout_.spec.stem_pool) x = torch::max_pool2d(x, 3, 2, 1);
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

std::string model_name(const ModelConfig& m) { return family_of(m).model_name(m); }

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace resnet
