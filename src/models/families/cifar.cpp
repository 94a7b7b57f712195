// The CIFAR family (He et al. 2015, §4.2): a 3x3 conv (16) -> 3 stages of n blocks at 16/32/64
// filters (strides 1/2/2) -> global average pool -> fc. Basic blocks: depth = 6n+2 (3 stages x n
// blocks x 2 layers, + stem + fc); bottlenecks (He et al. 2016's ResNet-164/1001): 9n+2, outputs
// 64/128/256. Option A shortcuts for basic blocks (the paper's parameter-free choice), else B.
#include "models/family.h"
#include "util/errors.h"

namespace resnet {
namespace {

// n, the blocks per stage, for `depth`; InputError naming the rule otherwise.
int64_t blocks_per_stage(int depth, const std::string& block) {
  const int per_block = block == "bottleneck" ? 9 : 6;
  if (depth < per_block + 2 || (depth - 2) % per_block != 0)
    throw InputError("model.depth: " + std::to_string(depth) + " is not a CIFAR depth for " + block + " blocks (" +
                     std::to_string(per_block) +
                     "n+2: " + (block == "basic" ? "20, 32, 44, 56, 110, 1202, ..." : "164, 1001, ...") + ")");
  return (depth - 2) / per_block;
}

class Cifar final : public Family {
 public:
  std::string name() const override { return "cifar"; }
  std::string summary() const override {
    return "He et al. 2015 §4.2: 3 stages at 16/32/64, depth 6n+2 (basic) or 9n+2 (bottleneck)";
  }

  void resolve(ModelConfig& m) const override {
    if (m.width != 1) throw InputError("model.width: the cifar family has none (WRN-d-k: model.family \"wide\")");
    if (m.block == "auto") m.block = "basic";
    blocks_per_stage(m.depth, m.block);
    if (m.stem == "auto") m.stem = "cifar";
    if (m.stem != "cifar") throw InputError("model.stem: the cifar family has only the cifar stem");
    if (!m.preact) m.preact = false;
    if (m.shortcut == "auto") m.shortcut = m.block == "basic" ? "A" : "B";
  }

  NetworkSpec spec(const ModelConfig& m) const override {
    const int64_t n = blocks_per_stage(m.depth, m.block == "auto" ? "basic" : m.block);
    NetworkSpec s;
    s.block = m.block == "auto" ? "basic" : m.block;
    s.stem_channels = 16;
    s.stage_planes = {16, 32, 64};
    s.stage_blocks = {n, n, n};
    return s;
  }

  std::string model_name(const ModelConfig& m) const override {
    const std::string kind = m.residual ? (m.preact.value_or(false) ? "preact-resnet" : "resnet") : "plain";
    return kind + "-" + std::to_string(m.depth);
  }

  bool from_stages(const StageKeys& k, ModelConfig& m) const override {
    if (k.blocks.size() != 3 || k.blocks[1] != k.blocks[0] || k.blocks[2] != k.blocks[0]) return false;
    if (!k.planes.empty() && k.planes[0] != 16) return false;  // wider: the wide family's
    m.family = "cifar";
    m.block = k.bottleneck ? "bottleneck" : "basic";
    m.depth = static_cast<int>((k.bottleneck ? 9 : 6) * k.blocks[0] + 2);
    return true;
  }

  std::vector<KnownCode> known_codes() const override {
    return {
        // F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4)): zeros split around x.
        {"kuangliu", "akamaster/pytorch_resnet_cifar10",
         [](const ModelConfig& m, bool no_projections) {
           return !m.preact.value_or(false) && m.block == "basic" && no_projections;
         },
         "split", kImageNetMean, kImageNetStd},
        {"torchvision", "chenyaofo/pytorch-cifar-models",
         [](const ModelConfig& m, bool) { return !m.preact.value_or(false) && m.shortcut == "B"; }, "", kCifarMean,
         kCifarStd},
    };
  }
};

}  // namespace

const Family& cifar_family() {
  static const Cifar family;
  return family;
}

}  // namespace resnet
