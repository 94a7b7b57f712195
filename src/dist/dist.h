#pragma once
// Data-parallel training on PyTorch's own distributed engine, c10d: a process group (Gloo on
// the CPU, NCCL on CUDA where the LibTorch has it) set up from torchrun's or Slurm's
// environment, and the few collectives a data-parallel run needs. No c10d type appears here:
// only dist.cpp (and src/compat) include c10d's headers.
//
// Failures of the group (a rank that died, a rank that hangs past the timeout, a store that
// cannot be reached) are DistError: one line saying which rank saw what, exit 1.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "util/errors.h"

namespace resnet {

// Where this process sits in a multi-process job, as its launcher said.
struct DistEnv {
  std::string launcher;  // "torchrun", "slurm" or "" (a plain single process)
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  int restart_count = 0;     // TORCHELASTIC_RESTART_COUNT: > 0 after torchrun restarted the job
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE: torchrun's agent hosts the store

  bool active() const { return !launcher.empty(); }
  std::string describe() const;  // "rank 1 of 2 (local 1 of 2) via torchrun, store host:port"
};

// Reads torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT, TORCHELASTIC_RESTART_COUNT, TORCHELASTIC_USE_AGENT_STORE) or, when they are
// absent, those of a Slurm job step launched by srun with more than one task (SLURM_PROCID,
// SLURM_STEP_NUM_TASKS, SLURM_LOCALID; MASTER_ADDR/MASTER_PORT or, on one node, localhost and a
// port derived from the job id). Neither: an inactive DistEnv. Bad values: InputError naming
// the variable. `getenv` is injectable for tests.
DistEnv read_dist_env(const std::function<const char*(const char*)>& getenv = nullptr);

// A group member lost contact with the others, or the group could not be formed. Exit 1.
class DistError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ProcessGroup {
 public:
  // "gloo" | "nccl" ("auto" is resolved by the caller: see resolve_backend). Every rank of the
  // job must call it; it returns once all have joined (or throws DistError after `timeout`).
  // `timeout` also bounds every later collective: a rank that dies or hangs makes the others
  // fail within it.
  static std::unique_ptr<ProcessGroup> connect(const DistEnv& env, const std::string& backend,
                                               const c10::Device& device, std::chrono::milliseconds timeout);
  ~ProcessGroup();

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& backend() const { return backend_; }
  // Tensors a collective runs on live here: the CPU for Gloo, the rank's GPU for NCCL.
  const c10::Device& device() const { return device_; }

  // In place, from rank 0, all tensors flattened into one message per dtype.
  void broadcast(const std::vector<at::Tensor>& tensors, const char* what);
  // In place, summed over ranks. Asynchronous form: wait() the returned handle.
  void all_reduce_sum(at::Tensor& tensor, const char* what);
  class Pending;
  std::unique_ptr<Pending> all_reduce_sum_async(at::Tensor& tensor, const char* what);
  void wait(Pending& pending);
  // Small agreements (host values).
  int64_t max(int64_t value, const char* what);
  int64_t min(int64_t value, const char* what);
  void barrier(const char* what);

  // Runs `body` on every rank, then agrees: if any rank failed, every rank stops. This rank's
  // own exception is rethrown; the others throw PeerFailed carrying the worst exit code
  // (2 for bad input, else 1), so a refused run folder on rank 0 stops the whole job cleanly.
  void together(const char* what, const std::function<void()>& body);

  // A CUDA graph replayed a captured collective (NCCL: the step's gradient all-reduce) on the
  // current stream, with no wait(): c10d's timeout does not cover it. replayed() marks the stream
  // (see replay_deadline.h); settle_replays() waits for the last mark, polling, at most the
  // timeout, and so does every host-blocking collective here (broadcast, all_reduce_sum, max,
  // min, barrier, together) before it starts; every kReplayCheckEvery replays the host also
  // checks the mark made that many replays before. On expiry the NCCL communicator is aborted and
  // DistError thrown: "rank R: lost contact with another rank: a captured all-reduce did not
  // finish within N s ..." (exit 1). Without CUDA both are no-ops.
  static constexpr int64_t kReplayCheckEvery = 20;
  void replayed();
  void settle_replays();

 private:
  ProcessGroup() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0;
  int size_ = 1;
  std::string backend_;
  c10::Device device_{c10::kCPU};
};

// "auto" -> "nccl" on CUDA when this LibTorch has NCCL, else "gloo"; checks an explicit choice.
std::string resolve_backend(const std::string& choice, const c10::Device& device);
bool have_nccl();

// Averages gradients over the ranks after backward: the gradients are copied into flat buckets
// of about `bucket_bytes` (per dtype, in reverse parameter order: the order backward produces
// them), every bucket's all-reduce (SUM) is launched before the first is waited for, then each is
// divided by the world size (Gloo has no AVG) and copied back. The buckets are allocated once,
// so their addresses are stable (a CUDA graph can capture the whole exchange with NCCL).
class GradAllReduce {
 public:
  GradAllReduce(ProcessGroup& group, const std::vector<at::Tensor>& params, int64_t bucket_bytes = 4 << 20);
  void run();
  // A CUDA graph that captured run() replayed it, and the host is about to sync: see
  // ProcessGroup::replayed and settle_replays (the deadline for an all-reduce with no wait()).
  void replayed() { group_.replayed(); }
  void settle() { group_.settle_replays(); }
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Seconds spent in run() since the last take_seconds() (host time; includes waiting for peers).
  double take_seconds();

 private:
  struct Bucket {
    at::Tensor flat;
    std::vector<at::Tensor> params;
    std::vector<int64_t> offsets;
  };
  ProcessGroup& group_;
  std::vector<Bucket> buckets_;
  double seconds_ = 0;
};

// A 64-bit FNV-1a hash of the tensors' bytes (copied to the CPU): equal on two ranks means the
// same values bit for bit (short of a collision).
uint64_t hash_tensors(const std::vector<at::Tensor>& tensors);

}  // namespace resnet
