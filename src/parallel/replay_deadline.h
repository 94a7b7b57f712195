#pragma once
// A host-side deadline for collectives that a replayed CUDA graph runs. With NCCL the gradient
// all-reduce is captured with the training step (src/train/step.cpp) and replayed with no
// wait(), so c10d's own timeout never covers it: a peer that died would leave the replayed
// all-reduce spinning on the GPU and the host blocked for ever at its next sync. So the step
// marks the stream after every replay (a CUDA event), and before the host syncs, and every
// `every` replays in between, the mark is polled (cudaEventQuery, never a blocking wait) against
// the timeout; when it expires, `expire` runs: it aborts the communicator and throws.
//
// The marks are behind `Probe` so that this logic is tested on the CPU with fake marks.
#include <chrono>
#include <cstdint>
#include <functional>

namespace resnet {

class ReplayDeadline {
 public:
  // kLatest is re-recorded after every replay; kPeriodic every `every` replays and polled
  // `every` replays later, so a host that never syncs runs at most 2 * every replays ahead of a
  // GPU that stopped, and the queue of replays is never drained to check it.
  enum Slot : int { kLatest = 0, kPeriodic = 1 };
  struct Probe {
    std::function<void(Slot)> record;  // marks the replay stream's current position
    std::function<bool(Slot)> done;    // has the GPU passed that mark? (must not block)
  };
  // `expire` receives the timeout and is expected to throw (if it returns, so does the wait).
  using Expire = std::function<void(std::chrono::milliseconds timeout)>;
  ReplayDeadline(Probe probe, std::chrono::milliseconds timeout, int64_t every, Expire expire);

  void replayed();  // after each replay, on the replay's stream
  void settle();    // before a host sync: the last replay must finish within the timeout

 private:
  void await(Slot slot);

  Probe probe_;
  std::chrono::milliseconds timeout_;
  int64_t every_;
  Expire expire_;
  int64_t since_mark_ = 0;
  bool latest_pending_ = false;
  bool mark_pending_ = false;
};

// Calls `done` until it returns true (then true) or `timeout` has passed (then false), sleeping
// between calls from 50 us up to 5 ms: a sync point that finds the GPU a few steps behind costs
// at most a few ms more than a blocking wait would.
bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);

}  // namespace resnet
