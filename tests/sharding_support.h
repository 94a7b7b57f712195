#pragma once
// Sharding without a second process: a Communicator that says it is rank r of n and whose
// collectives are identities (so this process's partial result comes back as it is), keeping
// a copy of every tensor handed to sum(). Running an analysis once as each rank of n and adding
// the copies gives what a real n-rank sum would have given every rank.
#include <ATen/ATen.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace resnet::testing {

class RankOf final : public Communicator {
 public:
  RankOf(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "test"; }
  c10::Device device() const override { return c10::Device(c10::kCPU); }
  void broadcast(const std::vector<at::Tensor>&, const char* what) override { note("broadcast", what); }
  void sum(at::Tensor& t, const char* what) override {
    note("sum", what);
    sums.push_back(t.detach().clone());
  }
  int64_t max(int64_t v, const char* what) override { return note("max", what), v; }
  int64_t min(int64_t v, const char* what) override { return note("min", what), v; }
  void agree(const char* what, const std::function<void()>& body) override {
    note("agree", what);
    body();
  }
  // The analyses average no gradients: a test that asks has misused the fake.
  std::unique_ptr<GradientAverage> gradient_average(const std::vector<at::Tensor>&, int64_t) override {
    throw std::logic_error("RankOf: no gradient average in the analyses");
  }

  std::vector<at::Tensor> sums;  // what each sum() was given, in order

 private:
  int rank_, size_;
};

// Element-wise sum of the i-th sum() of every rank: what each would have received.
inline std::vector<at::Tensor> summed_over(const std::vector<const RankOf*>& ranks) {
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < ranks.front()->sums.size(); ++i) {
    at::Tensor total = at::zeros_like(ranks.front()->sums[i]);
    for (const RankOf* r : ranks) total += r->sums.at(i);
    out.push_back(total);
  }
  return out;
}

}  // namespace resnet::testing
