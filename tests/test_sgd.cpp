// The tensor-lr SGD (graph-safe) equals torch::optim::SGD in fp32 on the CPU.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "train/sgd.h"

using namespace resnet;

namespace {

// Runs `steps` updates with both optimizers on identical parameters and random gradients,
// changing lr every step (as the schedule and a graph replay would); returns max |diff|.
double max_difference(double momentum, double weight_decay, bool nesterov) {
  torch::manual_seed(0);
  std::vector<torch::Tensor> a = {torch::randn({8, 4, 3, 3}), torch::randn({16}), torch::randn({10, 64})};
  std::vector<torch::Tensor> b;
  for (auto& p : a) {
    p.set_requires_grad(true);
    b.push_back(p.detach().clone().set_requires_grad(true));
  }
  torch::optim::SGD reference(
      a, torch::optim::SGDOptions(0.1).momentum(momentum).weight_decay(weight_decay).nesterov(nesterov));
  SgdOptions options;
  options.momentum = momentum;
  options.weight_decay = weight_decay;
  options.nesterov = nesterov;
  Sgd mine(b, options);
  for (int step = 0; step < 20; ++step) {
    const double lr = step < 5 ? 0.01 : (step < 12 ? 0.1 : 0.01);
    for (auto& group : reference.param_groups()) static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
    mine.set_lr(lr);
    for (size_t i = 0; i < a.size(); ++i) {
      torch::Tensor g = torch::randn_like(a[i]);
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    reference.step();
    mine.step();
  }
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, (a[i] - b[i]).abs().max().item<double>());
  return diff;
}

}  // namespace

TEST(Sgd, MatchesTorchOptimSgdWithMomentumAndWeightDecay) { EXPECT_LE(max_difference(0.9, 1e-4, false), 1e-6); }

TEST(Sgd, MatchesTorchOptimSgdWithNesterov) { EXPECT_LE(max_difference(0.9, 5e-4, true), 1e-6); }

TEST(Sgd, MatchesTorchOptimSgdWithoutMomentum) { EXPECT_LE(max_difference(0.0, 1e-4, false), 1e-6); }

TEST(Sgd, LearningRateIsReadFromATensorAtStepTime) {
  torch::Tensor p = torch::ones({3}, torch::requires_grad());
  SgdOptions plain;
  plain.momentum = 0;
  plain.weight_decay = 0;
  Sgd sgd({p}, plain);
  p.mutable_grad() = torch::ones({3});
  sgd.set_lr(0.5);
  sgd.step();
  EXPECT_TRUE(torch::allclose(p, torch::full({3}, 0.5)));
  sgd.set_lr(0.25);
  sgd.step();
  EXPECT_TRUE(torch::allclose(p, torch::full({3}, 0.25)));
  sgd.zero_grad();
  EXPECT_EQ(p.grad().abs().sum().item<float>(), 0.0f);
}
