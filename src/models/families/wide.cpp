// Wide residual networks (Zagoruyko & Komodakis 2016), WRN-d-k: a 3x3 conv (16) -> 3 stages of n
// pre-activation basic blocks at 16k/32k/64k filters (strides 1/2/2) -> BN + ReLU -> pool -> fc,
// with d = 6n + 4 (their count: 2 convs a block, the stem, the head and the two projections
// where the stages change) and 1x1 projections (no BN) wherever the shape changes (option B; the
// first block widens 16 to 16k). WRN-16-4: 2.7M parameters, WRN-28-10: 36.5M (their Table 1).
// Dropout between the convs is not built (their results without it are the ones compared here).
#include "models/family.h"
#include "util/errors.h"

namespace resnet {
namespace {

int64_t blocks_per_stage(int depth) {
  if (depth < 10 || (depth - 4) % 6 != 0)
    throw InputError("model.depth: " + std::to_string(depth) + " is not a WRN depth (6n+4: 10, 16, 22, 28, 40, ...)");
  return (depth - 4) / 6;
}

class Wide final : public Family {
 public:
  std::string name() const override { return "wide"; }
  std::string summary() const override {
    return "Zagoruyko & Komodakis 2016, WRN-d-k: pre-activation basic blocks at 16k/32k/64k (model.width = k), "
           "depth 6n+4";
  }

  void resolve(ModelConfig& m) const override {
    blocks_per_stage(m.depth);
    if (m.block == "auto") m.block = "basic";
    if (m.block != "basic") throw InputError("model.block: WRN-d-k has basic blocks (two 3x3 convs)");
    if (m.stem == "auto") m.stem = "cifar";
    if (m.stem != "cifar") throw InputError("model.stem: the wide family has only the cifar stem");
    if (!m.preact) m.preact = true;
    if (!*m.preact) throw InputError("model.preact: WRN-d-k is pre-activation (leave it \"auto\" or true)");
    if (m.shortcut == "auto") m.shortcut = "B";
  }

  NetworkSpec spec(const ModelConfig& m) const override {
    const int64_t n = blocks_per_stage(m.depth), k = m.width;
    NetworkSpec s;
    s.block = "basic";
    s.stem_channels = 16;
    s.stage_planes = {16 * k, 32 * k, 64 * k};
    s.stage_blocks = {n, n, n};
    return s;
  }

  std::string model_name(const ModelConfig& m) const override {
    return std::string(m.residual ? "wrn-" : "plain-wrn-") + std::to_string(m.depth) + "-" + std::to_string(m.width);
  }

  // Three equal stages of basic blocks whose first is 16k wide, k > 1 (k = 1 is a CIFAR ResNet).
  bool from_stages(const StageKeys& keys, ModelConfig& m) const override {
    const auto& b = keys.blocks;
    if (b.size() != 3 || b[1] != b[0] || b[2] != b[0] || keys.bottleneck || keys.planes.empty()) return false;
    if (keys.planes[0] <= 16 || keys.planes[0] % 16 != 0) return false;
    m.family = "wide";
    m.block = "basic";
    m.width = static_cast<int>(keys.planes[0] / 16);
    m.depth = static_cast<int>(6 * b[0] + 4);
    return true;
  }
};

}  // namespace

const Family& wide_family() {
  static const Wide family;
  return family;
}

}  // namespace resnet
