#pragma once
// What the landscape, hessian and paths analyses share to run as batch jobs over ranks:
// per-item random streams (an item draws the same numbers whichever rank computes it, so any
// number of ranks gives the 1-rank result), the sum that gathers the ranks' items, and a
// progress line with an ETA that only the writer prints.
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "parallel/communicator.h"
#include "util/duration.h"

namespace resnet {

// A CPU generator for item `index` of stream `stream` (probes, path samples, directions) under
// `seed`: a pure function of the three (splitmix64 of their mix), independent of the rank.
at::Generator item_generator(uint64_t seed, uint64_t stream, uint64_t index);

// "<what>: 37/121 points, 2.10 s/point, ETA 2m56s" on stderr, from the writer only: redrawn in
// place on a terminal, else one line at most every `log_every_s` seconds and at the end.
class ProgressLine {
 public:
  // `active`: this process prints (comm.writer()).
  ProgressLine(bool active, std::string what, std::string unit, int64_t total, double log_every_s = 30);
  ~ProgressLine();
  // `done` items finished of `total`; `fresh` of them computed in this process's run (the
  // rate counts only these).
  void update(int64_t done, int64_t fresh);
  void finish();

 private:
  bool active_, tty_, finished_ = false;
  std::string what_, unit_;
  int64_t total_;
  double log_every_s_, last_log_ = -1e9;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace resnet
