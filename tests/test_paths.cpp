// The paths gradients take (Veit et al. 2016, Fig. 6), checked on ResNet-8 (3 blocks, 8 paths) in
// double precision: the surgery leaves the forward pass untouched; with no block sampled the
// gradient is the skip-only gradient (computed here by hand through the ReLU masks and option A's
// shortcuts); the path gradients over all 2^n subsets add up to the ordinary gradient; with every
// block sampled the gradient is the ordinary one only where there are no skips (a plain net); the
// path counts are binomial; 2 ranks give the 1-rank table.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <bitset>
#include <filesystem>

#include "analysis/paths.h"
#include "sharding_support.h"
#include "test_support.h"

using namespace resnet;
using resnet::testing::RankOf;

namespace {

ResNet tiny_model(bool residual, bool preact = false, const std::string& shortcut = "A", int depth = 8) {
  ModelConfig m;
  m.depth = depth;
  m.residual = residual;
  m.preact = preact;
  m.shortcut = shortcut;
  torch::manual_seed(7);
  ResNet model = make_model(m);
  model->to(at::kDouble);
  model->eval();
  return model;
}

// A batch of 6 "normalised" images and labels.
std::pair<at::Tensor, at::Tensor> batch(at::ScalarType dtype = at::kDouble) {
  at::Generator gen = at::detail::createCPUGenerator(3);
  return {at::randn({6, 3, 32, 32}, gen, at::TensorOptions().dtype(dtype)), at::randint(0, 10, {6}, gen, at::kLong)};
}

std::vector<bool> subset(unsigned mask, size_t n) {
  std::vector<bool> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = (mask >> i) & 1u;
  return b;
}

// dL/dx0 through the skips only, by hand: from dL/dy of the last block back through each block's
// ReLU mask (y > 0) and the adjoint of its option-A shortcut (identity; or stride-2 subsample +
// zero channels, whose adjoint scatters the first channels back onto the even pixels).
at::Tensor skip_only_by_hand(ResNetImpl& model, const at::Tensor& images, const at::Tensor& labels) {
  struct Rec : ForwardRecorder {
    std::vector<at::Tensor> x, y;
    void on_block(int, const at::Tensor& in, const at::Tensor&, const at::Tensor& out) override {
      x.push_back(in), y.push_back(out);
    }
  } rec;
  at::Tensor loss = at::cross_entropy_loss(model.forward(images, &rec), labels);
  at::Tensor g = torch::autograd::grad({loss}, {rec.y.back()})[0];
  for (size_t i = rec.y.size(); i-- > 0;) {
    g = g * (rec.y[i] > 0);
    if (g.sizes() == rec.x[i].sizes()) continue;
    using torch::indexing::Slice;
    at::Tensor gx = at::zeros_like(rec.x[i]);
    gx.index_put_({Slice(), Slice(), Slice(0, c10::nullopt, 2), Slice(0, c10::nullopt, 2)},
                  g.narrow(1, 0, rec.x[i].size(1)));
    g = gx;
  }
  return g;
}

bool close(const at::Tensor& a, const at::Tensor& b, double rtol) {
  return (a - b).norm().item<double>() <= rtol * b.norm().item<double>();
}

}  // namespace

TEST(Paths, TheSurgeryLeavesTheForwardValuesUnchanged) {
  for (bool preact : {false, true}) {
    ResNet model = tiny_model(true, preact);
    model->to(at::kFloat);
    auto [x, y] = batch(at::kFloat);
    const at::Tensor plain_forward = model->forward(x).detach();
    for (unsigned mask : {0u, 2u, 5u, 7u}) {
      at::Tensor logits;
      path_gradient(*model, x, y, subset(mask, 3), &logits);
      EXPECT_TRUE(torch::equal(logits, plain_forward)) << "preact " << preact << " subset " << mask;
    }
    // The model is left as it was: every block passes the gradient both ways again.
    for (const auto& b : model->blocks()) EXPECT_EQ(b->gradient_path, BlockImpl::GradientPath::kBoth);
  }
}

TEST(Paths, NoBlockSampledGivesTheSkipOnlyGradient) {
  ResNet model = tiny_model(true);
  auto [x, y] = batch();
  const at::Tensor by_hand = skip_only_by_hand(*model, x, y);
  const at::Tensor none = path_gradient(*model, x, y, {false, false, false});
  ASSERT_GT(by_hand.norm().item<double>(), 0.0);
  EXPECT_TRUE(close(none, by_hand, 1e-12)) << (none - by_hand).norm().item<double>();
  EXPECT_FALSE(close(none, ordinary_gradient(*model, x, y), 1e-3));  // the branches carry some of it
}

TEST(Paths, ThePathGradientsOverAllSubsetsAddUpToTheOrdinaryGradient) {
  // At fixed forward values each block's backward map is linear (J_F + J_s): the ordinary
  // gradient expands into the 2^n paths exactly. Post-activation option A, pre-activation B.
  for (bool preact : {false, true}) {
    ResNet model = tiny_model(true, preact, preact ? "B" : "A");
    auto [x, y] = batch();
    at::Tensor sum = path_gradient(*model, x, y, subset(0, 3));
    for (unsigned mask = 1; mask < 8; ++mask) sum += path_gradient(*model, x, y, subset(mask, 3));
    const at::Tensor ordinary = ordinary_gradient(*model, x, y);
    EXPECT_TRUE(close(sum, ordinary, 1e-10)) << "preact " << preact << ": " << (sum - ordinary).norm().item<double>();
  }
}

TEST(Paths, EveryBlockSampledIsTheOrdinaryGradientOnlyWithoutSkips) {
  auto [x, y] = batch();
  // A plain net has one path, through every block: sampling all of them is the ordinary gradient.
  ResNet plain = tiny_model(false);
  EXPECT_TRUE(close(path_gradient(*plain, x, y, {true, true, true}), ordinary_gradient(*plain, x, y), 1e-12));
  // ...and its skip-only "paths" carry nothing.
  EXPECT_EQ(path_gradient(*plain, x, y, {true, false, true}).abs().max().item<double>(), 0.0);
  // In a ResNet, every block through its branch is the single longest path, one of 2^n.
  ResNet resnet = tiny_model(true);
  EXPECT_FALSE(close(path_gradient(*resnet, x, y, {true, true, true}), ordinary_gradient(*resnet, x, y), 1e-3));
}

TEST(Paths, PathCountsAreBinomial) {
  EXPECT_EQ(path_counts(3), (std::vector<double>{1, 3, 3, 1}));
  // Counting subsets by size among all 2^6 of them.
  std::vector<double> by_size(7, 0.0);
  for (unsigned mask = 0; mask < 64; ++mask) by_size[std::bitset<6>(mask).count()] += 1;
  EXPECT_EQ(path_counts(6), by_size);
  // ResNet-56 (27 blocks): C(27, k) exactly; ResNet-110 (54): they add up to 2^54.
  const std::vector<double> c27 = path_counts(27);
  uint64_t c = 1;
  for (uint64_t k = 0; k <= 27; ++k) {
    EXPECT_EQ(c27[k], static_cast<double>(c)) << k;
    c = c * (27 - k) / (k + 1);
  }
  double total = 0;
  for (double v : path_counts(54)) total += v;
  EXPECT_DOUBLE_EQ(total, std::ldexp(1.0, 54));
}

TEST(Paths, TheShortestRangeHoldsTheMass) {
  using Range = std::pair<int64_t, int64_t>;
  EXPECT_EQ(shortest_range({0, 1, 5, 3, 0.5, 0.5}, 0.8), Range(2, 3));
  EXPECT_EQ(shortest_range({1, 1, 1, 1}, 1.0), Range(0, 3));
  EXPECT_EQ(shortest_range({0, 0, 4, 0}, 0.9), Range(2, 2));
}

TEST(Paths, SamplesOfLengthZeroAndNAreTheSkipAndTheBranchPath) {
  ResNet model = tiny_model(true);
  auto [x, y] = batch();
  PathsOptions o;
  o.samples = 2;
  auto comm = one_process();
  const PathsResult r = gradient_paths(*model, x, y, o, *comm);
  ASSERT_EQ(r.blocks, 3);
  ASSERT_EQ(r.mean_norm.size(), 4u);
  EXPECT_NEAR(r.mean_norm[0], path_gradient(*model, x, y, {false, false, false}).norm().item<double>(), 1e-12);
  EXPECT_NEAR(r.mean_norm[3], path_gradient(*model, x, y, {true, true, true}).norm().item<double>(), 1e-12);
  EXPECT_EQ(r.std_norm[0], 0.0);
  for (size_t k = 0; k < 4; ++k) EXPECT_DOUBLE_EQ(r.total[k], r.count[k] * r.mean_norm[k]);
}

TEST(Paths, TwoRanksGiveTheOneRankTable) {
  ResNet model = tiny_model(true);
  auto [x, y] = batch();
  PathsOptions o;
  o.samples = 3;
  RankOf one(0, 1), first(0, 2), second(1, 2);
  gradient_paths(*model, x, y, o, one);
  gradient_paths(*model, x, y, o, first);
  gradient_paths(*model, x, y, o, second);
  ASSERT_EQ(one.sums.size(), 1u);
  ASSERT_EQ(first.sums.size(), 1u);
  ASSERT_EQ(second.sums.size(), 1u);
  // Each rank filled only its items (i % 2 == rank).
  for (int64_t i = 0; i < one.sums[0].numel(); ++i) EXPECT_EQ(first.sums[0][i].item<double>() == 0, i % 2 == 1) << i;
  EXPECT_TRUE(torch::equal(resnet::testing::summed_over({&first, &second})[0], one.sums[0]));
}

TEST(Paths, JsonAndVeitFigure6) {
  ExperimentConfig c;
  c.model.depth = 8;
  validate(c);
  ImageSet images = resnet::testing::synthetic_set(8, 1);
  std::vector<Subject> subjects{subject_from_config(c, fit_normalizer(images.images, "channel"), at::kCPU)};
  PathsOptions o;
  o.samples = 2;
  auto comm = one_process();
  const nlohmann::json j = paths_json(subjects, images, o, *comm);
  const auto& s = j["subjects"][0];
  ASSERT_EQ(s["lengths"].size(), 4u);
  double share = 0;
  for (const auto& l : s["lengths"]) share += l["share"].get<double>();
  EXPECT_NEAR(share, 1.0, 1e-9);
  EXPECT_GE(s["effective"]["share"].get<double>(), 0.9);
  resnet::testing::TempDir tmp;
  const auto files = plot_paths(j, tmp.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_GT(std::filesystem::file_size(files[0]), 5000u);
}
