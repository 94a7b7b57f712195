#include "analysis/sharding.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "util/duration.h"

namespace resnet {

at::Generator item_generator(uint64_t seed, uint64_t stream, uint64_t index) {
  // splitmix64 over the mix: neighbouring (seed, stream, index) give unrelated generator seeds.
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + stream * 0xBF58476D1CE4E5B9ULL + index + 0x94D049BB133111EBULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return at::detail::createCPUGenerator(z ^ (z >> 31));
}

ProgressLine::ProgressLine(bool active, std::string what, std::string unit, int64_t total, double log_every_s)
    : active_(active),
      tty_(::isatty(STDERR_FILENO) != 0),
      what_(std::move(what)),
      unit_(std::move(unit)),
      total_(total),
      log_every_s_(log_every_s),
      start_(std::chrono::steady_clock::now()) {}

ProgressLine::~ProgressLine() { finish(); }

void ProgressLine::update(int64_t done, int64_t fresh) {
  if (!active_ || finished_) return;
  const double elapsed = seconds_since(start_);
  const double rate = fresh > 0 ? elapsed / static_cast<double>(fresh) : -1;
  const std::string line =
      fmt::format("{}: {}/{} {}s{}", what_, done, total_, unit_,
                  rate > 0 ? fmt::format(", {:.2f} s/{}, ETA {}", rate, unit_,
                                         format_duration(rate * static_cast<double>(total_ - done)))
                           : std::string());
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
  } else if (elapsed - last_log_ >= log_every_s_ || done == total_) {
    std::fprintf(stderr, "%s\n", line.c_str());
    last_log_ = elapsed;
  }
  std::fflush(stderr);
}

void ProgressLine::finish() {
  if (active_ && tty_ && !finished_) std::fputs("\n", stderr);
  finished_ = true;
}

}  // namespace resnet
