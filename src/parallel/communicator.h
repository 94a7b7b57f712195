#pragma once
// What the training loop and the analyses ask of the other processes of a job: one small
// interface, with a single-process implementation whose operations are identities (a sum over
// one rank, a broadcast from oneself, an agreement with oneself), so that no caller tests the
// world size. The c10d implementation (Gloo on the CPU, NCCL on CUDA) is made by
// join_job() (parallel/job.h) under torchrun or srun.
//
// Every collective names what it is for (`what`), which appears in errors ("lost contact with
// the other ranks during the BatchNorm statistics' broadcast") and in the record of collectives
// that the tests compare across ranks (set_record()).
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace resnet {

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

  // The collectives made so far, "op:what" each, when recording was switched on (tests).
  void set_record(bool on) { recording_ = on; }
  const std::vector<std::string>& record() const { return record_; }

 protected:
  void note(const char* op, const char* what) {
    if (recording_) record_.push_back(std::string(op) + ":" + what);
  }

 private:
  bool recording_ = false;
  std::vector<std::string> record_;
};

// A job of one process: every operation is an identity (agree runs the body).
std::unique_ptr<Communicator> one_process();

// The share of `count` work items (grid points, probes, samples) that `rank` of `size` takes:
// items i with i % size == rank, so that every rank has work until the last round.
std::vector<int64_t> my_items(int64_t count, const Communicator& comm);

}  // namespace resnet
