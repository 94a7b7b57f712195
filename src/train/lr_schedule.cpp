#include "train/lr_schedule.h"

#include <cmath>

namespace resnet {

double learning_rate(const TrainConfig& t, int64_t step, int64_t total) {
  const auto& s = t.lr_schedule;
  if (step < s.warmup_steps) {
    if (s.warmup == "constant") return s.warmup_lr;
    if (s.warmup == "linear") return t.lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  }
  if (s.type == "multistep") {
    double lr = t.lr;
    for (int64_t m : s.milestones)
      if (step >= m) lr *= s.gamma;
    return lr;
  }
  if (s.type == "cosine") {
    const int64_t start = s.warmup == "none" ? 0 : s.warmup_steps;
    const double span = static_cast<double>(std::max<int64_t>(1, total - start));
    const double progress = std::min(1.0, static_cast<double>(step - start) / span);
    return s.min_lr + (t.lr - s.min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  return t.lr;
}

int64_t total_steps(const TrainConfig& t, int64_t steps_per_epoch) {
  if (t.epochs > 0) return static_cast<int64_t>(std::ceil(t.epochs * static_cast<double>(steps_per_epoch)));
  return t.iterations;
}

}  // namespace resnet
