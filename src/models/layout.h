#pragma once
// A network as data, before anything is allocated: what a resolved ModelConfig builds (its
// family's stages, then the blocks, convs and BNs they hold), every tensor's name and shape, the
// parameter count and the activations of one image. ResNetImpl builds exactly this layout (a test
// compares the two entry by entry), so a config, a checkpoint's metadata or a weights file is
// sized, checked against the bounds and against a file's tensors before any tensor exists.
// No torch headers: config validation includes this.
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"

namespace resnet {

// The stages a family builds (the paper's tables), and its stem.
struct NetworkSpec {
  std::string block = "basic";  // basic | bottleneck
  int64_t stem_channels = 16;
  int64_t stem_kernel = 3;  // 3x3/1 (cifar) or 7x7/2 (imagenet)
  int64_t stem_stride = 1;
  bool stem_pool = false;             // 3x3/2 max-pool after the stem (imagenet)
  std::vector<int64_t> stage_planes;  // 3x3 widths per stage
  std::vector<int64_t> stage_blocks;  // blocks per stage
};

// The family's stages for a resolved config (models/family.h). Throws InputError("model.depth:
// ...") for a depth the family cannot build.
NetworkSpec network_spec(const ModelConfig& config);

// One conv: kernel x kernel, in -> out channels, stride; padding kernel / 2, no bias.
struct ConvShape {
  int64_t in = 0, out = 0, kernel = 3, stride = 1;
};

// The convs of a residual branch F, in order: the one place the block types are spelled out
// (BlockImpl builds these, python/cifar_resnet.py mirrors them).
//   basic       3x3 (stride), 3x3                                   out = planes
//   bottleneck  1x1, 3x3 (stride: torchvision's "v1.5"), 1x1 (x4)  out = 4 planes
std::vector<ConvShape> branch_convs(const std::string& block, int64_t in_channels, int64_t planes, int64_t stride);
int64_t block_expansion(const std::string& block);

// Whether a block's shortcut is a 1x1 projection: option C always, B where the shape changes
// (stride 2 or more channels), A never (and a plain block has no shortcut).
bool has_projection_shortcut(bool residual, const std::string& shortcut, bool changes_shape);

struct BlockLayout {
  int stage = 1;  // 1-based
  int64_t in_channels = 0, out_channels = 0, stride = 1;
  std::vector<ConvShape> convs;  // conv<k> with bn<k>: after it (post-activation) or before it (pre-activation)
  bool projection = false;       // 1x1 conv on the shortcut (option B where the shape changes, C always)
};

struct NetworkLayout {
  NetworkSpec spec;
  bool preact = false;  // BNs before their convs; no stem BN; a final BN before the pool
  std::vector<BlockLayout> blocks;
  int64_t features = 0;  // channels into the pool and fc
  int64_t num_classes = 10;
};

// `config` must be resolved (validate_model).
NetworkLayout network_layout(const ModelConfig& config);

// One entry of the model's state: its native name (interop/state_dict.h), shape, and kind.
struct TensorShape {
  std::string name;
  std::vector<int64_t> shape;
  bool parameter = true;  // else a buffer: BN running_mean / running_var, num_batches_tracked
  bool integer = false;   // num_batches_tracked (int64)
  int64_t numel() const;
};

// model_state(ResNet(config)): the same names, shapes and order (each module's parameters, then
// its buffers; modules as registered).
std::vector<TensorShape> state_shapes(const NetworkLayout& layout);

struct NetworkSize {
  int64_t parameters = 0;    // trainable values (the paper's "# params")
  int64_t state_values = 0;  // every value of the state (parameters and BN statistics)
  // Values a training step keeps per 32x32 image for backward: three per conv output (the conv's,
  // its BN's and its ReLU's): an estimate for bounds, not a measurement.
  int64_t activation_values_per_image = 0;
};
// From the resolved config alone, stage by stage (the blocks of a stage after its first are
// alike): no list of blocks, so an absurd depth is sized without being spelled out.
NetworkSize network_size(const ModelConfig& config);

}  // namespace resnet
