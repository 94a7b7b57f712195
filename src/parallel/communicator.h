#pragma once
// What the training loop and the analyses ask of the other processes of a job: one small
// interface, with a single-process implementation whose operations are identities (a sum over
// one rank, a broadcast from oneself, an agreement with oneself), so that no caller tests the
// world size. The c10d implementation (Gloo on the CPU, NCCL on CUDA) is made by Job::connect
// (parallel/job.h) under torchrun or srun.
//
// Every collective names what it is for (`what`), which appears in errors ("lost contact with
// the other ranks during the BatchNorm statistics' broadcast") and in the record of collectives
// that the tests compare across ranks (record_to()).
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace resnet {

// Averages gradients over the ranks after backward (data-parallel training): the gradients are
// copied into flat buckets, summed over ranks, divided by the world size and copied back. One
// process: nothing to do. The buckets are allocated once, so a CUDA graph can capture the
// exchange with the step (NCCL); replayed()/settle() give such a replayed exchange a host-side
// deadline (replay_deadline.h).
class GradientAverage {
 public:
  virtual ~GradientAverage() = default;
  virtual void run() = 0;
  virtual void replayed() {}
  virtual void settle() {}
  // Host seconds spent in run() since the last call (copies, waits for the slower rank).
  virtual double take_seconds() { return 0; }
  virtual int64_t buckets() const { return 0; }
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Rank 0 writes the job's files (run folder, analysis results); the others compute their share.
  bool writer() const { return rank() == 0; }
  // "" for one process, else the c10d backend ("gloo", "nccl").
  virtual std::string backend() const = 0;
  // Where the tensors of collectives live: the CPU for Gloo (and one process), the GPU for NCCL.
  virtual c10::Device device() const = 0;

  // In place: every rank ends with rank 0's values.
  virtual void broadcast(const std::vector<at::Tensor>& tensors, const char* what) = 0;
  // In place: every rank ends with the sum over ranks (a tensor on any device: copied to
  // device() and back where needed).
  virtual void sum(at::Tensor& tensor, const char* what) = 0;
  // Agreements on host values: every rank gets the largest / smallest.
  virtual int64_t max(int64_t value, const char* what) = 0;
  virtual int64_t min(int64_t value, const char* what) = 0;
  // Runs `body` on every rank, then agrees on whether it failed anywhere: if it did, every rank
  // stops (its own exception is rethrown; the others throw PeerFailed with the worst exit code).
  // `body` must not make collectives itself (they would meet another rank's agreement).
  virtual void agree(const char* what, const std::function<void()>& body) = 0;
  // The exchange of `params`' gradients (buckets of about `bucket_bytes` per dtype).
  virtual std::unique_ptr<GradientAverage> gradient_average(const std::vector<at::Tensor>& params,
                                                            int64_t bucket_bytes = 4 << 20) = 0;

  // Appends "op what" to `path` for every collective from now on, flushed at once (a run that
  // fails still leaves its record): the tests compare the ranks' records.
  void record_to(const std::string& path) { record_.open(path, std::ios::app); }

 protected:
  void note(const char* op, const char* what) {
    if (record_.is_open()) record_ << op << " " << what << std::endl;
  }

 private:
  std::ofstream record_;
};

// A job of one process: every operation is an identity (agree runs the body; no gradients to
// average).
std::unique_ptr<Communicator> one_process();

// The share of `count` work items (grid points, probes, samples) that `rank` of `size` takes:
// items i with i % size == rank, so that every rank has work until the last round.
std::vector<int64_t> my_items(int64_t count, const Communicator& comm);

}  // namespace resnet
