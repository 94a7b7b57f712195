#pragma once
// resnet-bench --mode convs: the limit a training step cannot beat on this machine and LibTorch:
// the network's own convolutions alone, forward and both backward ones (input and weight
// gradients, as autograd asks for them), at its own layer shapes and batch, channels_last, in the
// step's precision, with nothing else (no BN, ReLU, additions, loss, SGD, data). A step's
// images/s over this one's says how much of the step the convolutions leave to everything else.
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "train/runtime.h"

namespace resnet {

// {"layers": convolutions per step, "distinct": shapes timed, "forward_ms", "backward_ms",
//  "ms_per_step", "images_per_sec", "shapes": [{input, weight, stride, count, forward_ms,
//  backward_ms}]}, `steps` timed calls of each after `warmup`.
nlohmann::json time_convolutions(const ExperimentConfig& config, const Runtime& runtime, int64_t warmup, int64_t steps);

}  // namespace resnet
