#include "parallel/replay_deadline.h"

#include <algorithm>
#include <thread>
#include <utility>

namespace resnet {

bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  std::chrono::microseconds pause(50);
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(5));
  }
  return true;
}

ReplayDeadline::ReplayDeadline(Probe probe, std::chrono::milliseconds timeout, int64_t every, Expire expire)
    : probe_(std::move(probe)), timeout_(timeout), every_(std::max<int64_t>(1, every)), expire_(std::move(expire)) {}

void ReplayDeadline::replayed() {
  probe_.record(kLatest);
  latest_pending_ = true;
  if (++since_mark_ < every_) return;
  if (mark_pending_) await(kPeriodic);  // the mark made `every` replays ago
  probe_.record(kPeriodic);
  mark_pending_ = true;
  since_mark_ = 0;
}

void ReplayDeadline::settle() {
  if (latest_pending_) await(kLatest);  // the periodic mark is older: passed too
}

void ReplayDeadline::await(Slot slot) {
  if (poll_until([&] { return probe_.done(slot); }, timeout_)) {
    if (slot == kLatest) latest_pending_ = mark_pending_ = false;
    else mark_pending_ = false;
    return;
  }
  // Once expired, nothing is waited for again: the communicator is gone, and the collectives that
  // run while the error unwinds (ProcessGroup::together's agreement) must fail at once.
  latest_pending_ = mark_pending_ = false;
  expire_(timeout_);
}

}  // namespace resnet
