#pragma once
// The learning rate as a pure function of the step, so that resuming needs only the step.
#include <cstdint>

#include "config/config.h"

namespace resnet {

// lr for the 0-based training step `step` of a run of `total_steps` steps:
//   warm-up (step < warmup_steps): constant -> warmup_lr (He et al.'s 0.01 for ResNet-110);
//                                  linear   -> lr * (step + 1) / warmup_steps
//   multistep: lr * gamma^(number of milestones <= step)   (paper: /10 at 32k and 48k)
//   cosine:    min_lr + (lr - min_lr) * (1 + cos(pi * t)) / 2, t = progress after warm-up
//   constant:  lr
double learning_rate(const TrainConfig& train, int64_t step, int64_t total_steps);

// Total steps of a run: train.iterations, or ceil(epochs * steps_per_epoch).
int64_t total_steps(const TrainConfig& train, int64_t steps_per_epoch);

}  // namespace resnet
