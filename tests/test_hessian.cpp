// Curvature by Hessian-vector products (double backward), checked in double precision on ResNet-8:
// products agree with finite differences of gradients; on a slice of the parameters small enough
// to form the Hessian explicitly (by differentiating each gradient component, no product code),
// power iteration finds its top eigenvalues, Hutchinson's estimate is the probes' mean of vᵀHv
// and lies within a few standard errors of the trace, and Lanczos with as many steps as
// dimensions finds its extreme eigenvalues; ranks split chunks, probes and runs and add up to the
// 1-rank result.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "analysis/hessian.h"
#include "analysis/sharding.h"
#include "sharding_support.h"
#include "test_support.h"

using namespace resnet;
using resnet::testing::RankOf;

namespace {

struct Problem {
  ResNet model{nullptr};
  at::Tensor x, y;
};

// ResNet-8 in double with non-trivial BN statistics, eval mode, on 8 random images.
Problem problem() {
  ModelConfig m;
  m.depth = 8;
  torch::manual_seed(3);
  Problem p{make_model(m), {}, {}};
  p.model->to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    for (auto& b : p.model->named_buffers())
      if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 1.5);
  }
  p.model->eval();
  at::Generator gen = at::detail::createCPUGenerator(4);
  p.x = at::randn({8, 3, 32, 32}, gen, at::TensorOptions().dtype(at::kDouble));
  p.y = at::randint(0, 10, {8}, gen, at::kLong);
  return p;
}

// The slice: the last block's second BN (gamma, beta: a non-convex interplay with the fc) and
// the fc bias: 64 + 64 + 10 = 138 dimensions.
std::vector<at::Tensor> slice(ResNetImpl& model) {
  auto named = model.named_parameters();
  return {named["block2.bn2.weight"], named["block2.bn2.bias"], named["fc.bias"]};
}

// H over `params` row by row: d(g_i)/dθ for each gradient component g_i (no product code).
at::Tensor explicit_hessian(Problem& p, const std::vector<at::Tensor>& params) {
  at::Tensor loss = at::cross_entropy_loss(p.model->forward(p.x), p.y);
  auto g = torch::autograd::grad({loss}, params, {}, true, true);
  std::vector<at::Tensor> flat;
  for (auto& t : g) flat.push_back(t.reshape(-1));
  at::Tensor gf = at::cat(flat);
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < gf.numel(); ++i) {
    auto r = torch::autograd::grad({gf[i]}, params, {}, true, false, true);
    std::vector<at::Tensor> parts;
    for (size_t k = 0; k < r.size(); ++k)
      parts.push_back(r[k].defined() ? r[k].reshape(-1) : at::zeros({params[k].numel()}, gf.options()));
    rows.push_back(at::cat(parts));
  }
  return at::stack(rows);
}

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-12); }

}  // namespace

TEST(Hessian, ProductsAgreeWithFiniteDifferencesOfGradients) {
  Problem p = problem();
  HessianOperator h = model_hessian(*p.model, p.x, p.y, 3);  // 3 chunks of 3, 3 and 2 images
  at::Generator gen = at::detail::createCPUGenerator(8);
  const at::Tensor v = random_unit(h.dimension(), gen, at::TensorOptions().dtype(at::kDouble));
  const at::Tensor hv = h.apply(v);
  // (g(θ + εv) - g(θ - εv)) / 2ε, by moving the weights.
  // ε small enough that no ReLU flips between θ - εv and θ + εv (a flip is a jump in g, which
  // the division by 2ε would blow up), large enough for double rounding (|g| 1e-16 / ε).
  const double eps = 1e-6;
  auto shift = [&](double s) {
    torch::NoGradGuard no_grad;
    int64_t offset = 0;
    for (auto& w : p.model->parameters())
      w.add_(v.narrow(0, offset, w.numel()).view(w.sizes()), s), offset += w.numel();
  };
  shift(eps);
  const at::Tensor plus = h.gradient();
  shift(-2 * eps);
  const at::Tensor minus = h.gradient();
  shift(eps);
  const at::Tensor fd = (plus - minus) / (2 * eps);
  EXPECT_LT((hv - fd).norm().item<double>(), 1e-6 * hv.norm().item<double>()) << hv.norm().item<double>();
  // One chunk (its graph kept between products) gives the same product.
  HessianOperator whole = model_hessian(*p.model, p.x, p.y, 8);
  EXPECT_TRUE(at::allclose(whole.apply(v), hv, 1e-9, 1e-12));
  EXPECT_TRUE(at::allclose(whole.apply(v), hv, 1e-9, 1e-12));  // and again, from the kept graph
}

TEST(Hessian, TopEigenvaluesTraceAndDensityAgreeWithTheExplicitMatrix) {
  Problem p = problem();
  const at::Tensor H = explicit_hessian(p, slice(*p.model));
  ASSERT_EQ(H.size(0), 138);
  ASSERT_TRUE(at::allclose(H, H.t(), 1e-9, 1e-12));
  const at::Tensor eig = at::linalg_eigvalsh(H);  // ascending
  // Largest |λ| first, as power iteration finds them.
  const at::Tensor by_size = eig.index_select(0, std::get<1>(eig.abs().sort(0, /*descending=*/true)));
  HessianOperator h = model_hessian(*p.model, p.x, p.y, 8, slice(*p.model));
  EigenOptions eo;
  eo.top_k = 3;
  eo.tolerance = 1e-12;
  eo.max_iterations = 3000;
  const EigenResult top = top_eigenvalues(h, eo);
  for (int i = 0; i < 3; ++i) EXPECT_LT(rel(top.values[i], by_size[i].item<double>()), 1e-6) << i;
  // Hutchinson: exactly the mean of the probes' vᵀHv, and near the trace.
  auto comm = one_process();
  const TraceResult t = hutchinson_trace(h, 200, 5, *comm);
  double mean = 0;
  for (int64_t probe = 0; probe < 200; ++probe) {
    at::Generator gen = item_generator(5, 2, static_cast<uint64_t>(probe));
    const at::Tensor v = rademacher(138, gen, at::TensorOptions().dtype(at::kDouble));
    mean += at::dot(v, at::mv(H, v)).item<double>() / 200;
  }
  EXPECT_LT(rel(t.estimate, mean), 1e-9);
  const double trace = H.trace().item<double>();
  EXPECT_GT(t.standard_error, 0.0);
  EXPECT_LT(std::abs(t.estimate - trace), 4 * t.standard_error) << t.estimate << " vs " << trace;
  // Lanczos over the whole space: its nodes reach both ends of the spectrum; weights sum to 1.
  at::Generator gen = at::detail::createCPUGenerator(6);
  const LanczosResult l = lanczos(h, rademacher(138, gen, at::TensorOptions().dtype(at::kDouble)), 138);
  const double scale = eig.abs().max().item<double>();
  EXPECT_LT(std::abs(l.nodes.back() - eig[-1].item<double>()), 1e-6 * scale);
  EXPECT_LT(std::abs(l.nodes.front() - eig[0].item<double>()), 1e-6 * scale);
  double weights = 0;
  for (double w : l.weights) weights += w;
  EXPECT_NEAR(weights, 1.0, 1e-9);
}

TEST(Hessian, RanksSplitChunksProbesAndRunsAndAddUpToOneRank) {
  Problem p = problem();
  at::Generator gen = at::detail::createCPUGenerator(9);
  HessianOperator probe = model_hessian(*p.model, p.x, p.y, 4);
  const at::Tensor v = random_unit(probe.dimension(), gen, at::TensorOptions().dtype(at::kDouble));
  // Products: 2 chunks of 4 images, one per rank.
  RankOf one(0, 1), first(0, 2), second(1, 2);
  model_hessian(*p.model, p.x, p.y, 4, {}, &one).apply(v);
  model_hessian(*p.model, p.x, p.y, 4, {}, &first).apply(v);
  model_hessian(*p.model, p.x, p.y, 4, {}, &second).apply(v);
  ASSERT_EQ(first.sums.size(), 1u);
  ASSERT_EQ(second.sums.size(), 1u);
  EXPECT_TRUE(at::allclose(resnet::testing::summed_over({&first, &second})[0], one.sums[0], 1e-12, 1e-14));
  EXPECT_FALSE(at::allclose(first.sums[0], one.sums[0], 1e-3, 0)) << "each rank has half of the images";
  // Probes and Lanczos runs: rank-local products, items split, the tables summed.
  HessianOperator local = model_hessian(*p.model, p.x, p.y, 8, slice(*p.model));
  RankOf a(0, 1), b(0, 2), c(1, 2);
  for (RankOf* r : {&a, &b, &c}) hutchinson_trace(local, 5, 1, *r), slq_density(local, 3, 4, 1, *r);
  const auto sums = resnet::testing::summed_over({&b, &c});
  ASSERT_EQ(sums.size(), 2u);
  EXPECT_TRUE(torch::equal(sums[0], a.sums[0]));  // probes
  EXPECT_TRUE(torch::equal(sums[1], a.sums[1]));  // Lanczos runs
  EXPECT_EQ(b.sums[0][1].item<double>(), 0.0);    // probe 1 is rank 1's
}

TEST(Hessian, JsonAndPicture) {
  ExperimentConfig c;
  c.model.depth = 8;
  validate(c);
  ImageSet images = resnet::testing::synthetic_set(6, 1);
  std::vector<Subject> subjects{subject_from_config(c, fit_normalizer(images.images, "channel"), at::kCPU)};
  HessianOptions o;
  o.eigen.top_k = 2;
  o.eigen.max_iterations = 5;
  o.probes = 3;
  o.lanczos_steps = 4;
  auto comm = one_process();
  const nlohmann::json j = hessian_json(subjects, images, {{"split", "test"}}, o, *comm);
  const auto& s = j["subjects"][0];
  EXPECT_EQ(s["parameters"], count_parameters(*subjects[0].model));
  EXPECT_EQ(s["top_eigenvalues"].size(), 2u);
  EXPECT_EQ(s["trace"]["samples"].size(), 3u);
  EXPECT_EQ(s["density"]["runs"][0]["nodes"].size(), 4u);
  EXPECT_EQ(s["density"]["curve"].size(), 400u);
  EXPECT_TRUE(subjects[0].model->is_training()) << "the model's mode is put back";
  resnet::testing::TempDir tmp;
  const auto files = plot_hessian(j, tmp.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_GT(std::filesystem::file_size(files[0]), 5000u);
}
