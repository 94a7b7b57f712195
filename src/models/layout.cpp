#include "models/layout.h"

#include <limits>

#include "models/family.h"
#include "util/errors.h"

namespace resnet {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Sizes of absurd configs (allowed past the bounds on purpose) saturate instead of wrapping.
int64_t mul(int64_t a, int64_t b) {
  if (a == 0 || b == 0) return 0;
  return a > kMax / b ? kMax : a * b;
}
int64_t add(int64_t a, int64_t b) { return a > kMax - b ? kMax : a + b; }

int64_t conv_out(int64_t size, int64_t kernel, int64_t stride) {
  return (size + 2 * (kernel / 2) - kernel) / stride + 1;
}

// A block's tensors, given its layout, as NetworkSize counts (per block; image side `side` in).
struct BlockCount {
  int64_t parameters = 0, state = 0, activations = 0, side = 0;
};

BlockCount count_block(const BlockLayout& b, bool preact, int64_t side) {
  BlockCount c;
  c.side = side;
  for (const auto& conv : b.convs) {
    const int64_t weights = mul(mul(conv.in, conv.out), conv.kernel * conv.kernel);
    const int64_t bn = preact ? conv.in : conv.out;  // pre-activation BNs normalise the conv's input
    c.parameters = add(c.parameters, add(weights, 2 * bn));
    c.state = add(c.state, add(weights, 4 * bn));
    c.side = conv_out(c.side, conv.kernel, conv.stride);
    c.activations = add(c.activations, mul(3 * conv.out, c.side * c.side));
  }
  if (b.projection) {
    const int64_t weights = mul(b.in_channels, b.out_channels);
    const int64_t bn = preact ? 0 : b.out_channels;
    c.parameters = add(c.parameters, add(weights, 2 * bn));
    c.state = add(c.state, add(weights, 4 * bn));
  }
  return c;
}

BlockLayout block_layout(const ModelConfig& m, const NetworkSpec& spec, int stage, int64_t in, int64_t stride) {
  BlockLayout b;
  b.stage = stage;
  b.in_channels = in;
  b.stride = stride;
  b.convs = branch_convs(spec.block, in, spec.stage_planes[stage - 1], stride);
  b.out_channels = b.convs.back().out;
  const bool changes_shape = stride != 1 || in != b.out_channels;
  b.projection = has_projection_shortcut(m.residual, m.shortcut, changes_shape);
  return b;
}

void add_bn(std::vector<TensorShape>& out, const std::string& name, int64_t channels) {
  out.push_back({name + ".weight", {channels}, true, false});
  out.push_back({name + ".bias", {channels}, true, false});
  out.push_back({name + ".running_mean", {channels}, false, false});
  out.push_back({name + ".running_var", {channels}, false, false});
  out.push_back({name + ".num_batches_tracked", {}, false, true});
}

void add_conv(std::vector<TensorShape>& out, const std::string& name, const ConvShape& c) {
  out.push_back({name + ".weight", {c.out, c.in, c.kernel, c.kernel}, true, false});
}

}  // namespace

NetworkSpec network_spec(const ModelConfig& config) { return family_of(config).spec(config); }

int64_t block_expansion(const std::string& block) { return block == "bottleneck" ? 4 : 1; }

bool has_projection_shortcut(bool residual, const std::string& shortcut, bool changes_shape) {
  return residual && (shortcut == "C" || (shortcut == "B" && changes_shape));
}

std::vector<ConvShape> branch_convs(const std::string& block, int64_t in, int64_t planes, int64_t stride) {
  if (block == "bottleneck") return {{in, planes, 1, 1}, {planes, planes, 3, stride}, {planes, 4 * planes, 1, 1}};
  return {{in, planes, 3, stride}, {planes, planes, 3, 1}};
}

NetworkLayout network_layout(const ModelConfig& m) {
  NetworkLayout l;
  l.spec = network_spec(m);
  l.preact = m.preact.value_or(false);
  l.num_classes = m.num_classes;
  int64_t channels = l.spec.stem_channels;
  for (size_t s = 0; s < l.spec.stage_planes.size(); ++s)
    for (int64_t b = 0; b < l.spec.stage_blocks[s]; ++b) {
      const int64_t stride = (s > 0 && b == 0) ? 2 : 1;  // each stage after the first halves the map
      l.blocks.push_back(block_layout(m, l.spec, static_cast<int>(s) + 1, channels, stride));
      channels = l.blocks.back().out_channels;
    }
  l.features = channels;
  return l;
}

int64_t TensorShape::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n = mul(n, d);
  return n;
}

std::vector<TensorShape> state_shapes(const NetworkLayout& l) {
  std::vector<TensorShape> out;
  add_conv(out, "stem_conv", {3, l.spec.stem_channels, l.spec.stem_kernel, l.spec.stem_stride});
  if (!l.preact) add_bn(out, "stem_bn", l.spec.stem_channels);
  for (size_t i = 0; i < l.blocks.size(); ++i) {
    const BlockLayout& b = l.blocks[i];
    const std::string name = "block" + std::to_string(i);
    // Registered first in BlockImpl: the projection and its BN (post-activation only).
    if (b.projection) add_conv(out, name + ".shortcut_conv", {b.in_channels, b.out_channels, 1, b.stride});
    if (b.projection && !l.preact) add_bn(out, name + ".shortcut_bn", b.out_channels);
    for (size_t k = 0; k < b.convs.size(); ++k) {
      const std::string n = std::to_string(k + 1);
      add_conv(out, name + ".conv" + n, b.convs[k]);
      add_bn(out, name + ".bn" + n, l.preact ? b.convs[k].in : b.convs[k].out);
    }
  }
  if (l.preact) add_bn(out, "final_bn", l.features);
  out.push_back({"fc.weight", {l.num_classes, l.features}, true, false});
  out.push_back({"fc.bias", {l.num_classes}, true, false});
  return out;
}

NetworkSize network_size(const ModelConfig& m) {
  const NetworkSpec spec = network_spec(m);
  const bool preact = m.preact.value_or(false);
  NetworkSize size;
  auto count = [&](const BlockCount& c, int64_t times) {
    size.parameters = add(size.parameters, mul(c.parameters, times));
    size.state_values = add(size.state_values, mul(c.state, times));
    size.activation_values_per_image = add(size.activation_values_per_image, mul(c.activations, times));
  };
  // The stem (conv, and its BN in post-activation nets) and the head (final BN, fc).
  const int64_t stem = mul(3 * spec.stem_kernel * spec.stem_kernel, spec.stem_channels);
  int64_t side = conv_out(32, spec.stem_kernel, spec.stem_stride);
  const int64_t stem_bn = preact ? 0 : spec.stem_channels;
  count({add(stem, 2 * stem_bn), add(stem, 4 * stem_bn), mul(3 * spec.stem_channels, side * side), side}, 1);
  if (spec.stem_pool) side = conv_out(side, 3, 2);
  // Per stage: its first block, then n - 1 copies of the next (without listing them).
  int64_t channels = spec.stem_channels;
  for (size_t s = 0; s < spec.stage_planes.size(); ++s) {
    const int stage = static_cast<int>(s) + 1;
    if (spec.stage_blocks[s] < 1) continue;
    const BlockLayout first = block_layout(m, spec, stage, channels, s > 0 ? 2 : 1);
    const BlockCount c = count_block(first, preact, side);
    count(c, 1);
    side = c.side;
    channels = first.out_channels;
    count(count_block(block_layout(m, spec, stage, channels, 1), preact, side), spec.stage_blocks[s] - 1);
  }
  const int64_t fc = add(mul(m.num_classes, channels), m.num_classes);
  const int64_t final_bn = preact ? channels : 0;
  count({add(fc, 2 * final_bn), add(fc, 4 * final_bn), 0, side}, 1);
  return size;
}

}  // namespace resnet
