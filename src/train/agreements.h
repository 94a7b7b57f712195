#pragma once
// Where the ranks of a data-parallel run meet. Every collective the training loop makes is one
// of these methods, named for what it is for, so "every rank makes the same calls in the same
// order" can be checked by reading the loop (train/loop.cpp) and this file, and is checked by a
// test that compares the ranks' records of collectives (tests/test_dist.cpp). With one process
// each is an identity (parallel/communicator.h): the loop has no branch on the world size.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

#include "data/batches.h"
#include "parallel/communicator.h"
#include "train/step.h"

namespace resnet {

class ResNetImpl;
class Sgd;

class Agreements {
 public:
  // `cuda`: the stop signal is agreed less often there (a read-back per step would cost the GPU
  // its lead).
  Agreements(Communicator& comm, bool cuda) : comm_(comm), cuda_(cuda) {}

  Communicator& comm() { return comm_; }
  bool writer() const { return comm_.writer(); }
  // This rank's share of each global batch and of each evaluation.
  Shard shard() const { return {comm_.rank(), comm_.size()}; }

  // Start: every rank takes rank 0's weights, BN statistics and momentum (after a resume too).
  void start_up(ResNetImpl& model, Sgd& sgd);
  // After every step on the CPU; at sync points or every 10 steps on CUDA: the stop signal any
  // rank got (SIGINT/SIGTERM reach one rank or all, at different moments). 0: none.
  int stop_signal(int mine, int64_t done, bool sync_point);
  // At log, evaluation, checkpoint and stop points: the training numbers of the whole global
  // batch (exact: integers below 2^53 in double).
  TrainStep::Totals training_metrics(const TrainStep::Totals& mine);
  // Only when those numbers are not finite (every rank sees the same sum, so all of them ask):
  // the first step (1-based) whose loss was not finite on any rank; `mine` is this rank's, or -1.
  int64_t first_non_finite_step(int64_t mine);
  // Before an evaluation or a checkpoint (once per step): rank 0's BatchNorm statistics, so that
  // every rank evaluates, and rank 0 saves, the same model (BatchNorm is per rank).
  void batchnorm(ResNetImpl& model, int64_t step);
  // Inside evaluate(): the ranks' counts summed.
  std::function<void(at::Tensor&)> evaluation_sum();
  // Before a checkpoint: the ranks hold the same weights and momentum bit for bit (a hash).
  void same_weights(ResNetImpl& model, Sgd& sgd, int64_t step);
  // Rank 0's writes (checkpoint, metrics row, log lines, summary): `body` runs on every rank (it
  // does nothing on the others) and a failure anywhere stops every rank with its own message.
  void write(const char* what, const std::function<void()>& body) { comm_.agree(what, body); }

 private:
  Communicator& comm_;
  bool cuda_;
  int64_t batchnorm_synced_at_ = -1;
};

// A 64-bit FNV-1a hash of the tensors' bytes (copied to the CPU): equal on two ranks means the
// same values bit for bit (short of a collision).
uint64_t hash_tensors(const std::vector<at::Tensor>& tensors);

}  // namespace resnet
