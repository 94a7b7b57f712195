#pragma once
// Curvature of the loss (as PyHessian, Yao et al. 2020, measures it): the Hessian H of the mean
// cross-entropy over a named batch of images with respect to the parameters, BN in eval mode
// (the ordinary layers: folded BN is not differentiable w.r.t. BN's parameters the same way),
// fp32. H is never formed: everything is built on Hessian-vector products by double backward,
//   Hv = d/dθ (g(θ) · v),  g = dL/dθ taken with create_graph.
//   top-k eigenvalues  power iteration on Hv, deflated against the eigenvectors already found
//                      (largest |λ| first, as PyHessian)
//   trace              Hutchinson: tr H = E[vᵀHv], v Rademacher; mean over probes ± standard error
//   density            stochastic Lanczos quadrature: m Lanczos steps (full re-orthogonalisation)
//                      from a random unit v; the tridiagonal T's eigenvalues θ_j are the nodes,
//                      the squared first components of its eigenvectors the weights; averaged
//                      over runs it approximates the eigenvalue density (Ghorbani et al. 2019).
// All vectors are flat [P] tensors in the parameters' order.
#include <ATen/core/Tensor.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "analysis/analysis.h"
#include "parallel/communicator.h"

namespace resnet {

class HessianOperator {
 public:
  // H of sum_c weight[c] * loss(c) w.r.t. `params`, where loss(c) is the scalar loss of chunk c
  // of the batch (evaluated anew on each product unless the process holds one chunk: then its
  // gradient graph is kept). With `comm`, the chunks are split over the ranks and each product
  // is summed over them; without, every chunk is local.
  HessianOperator(std::vector<at::Tensor> params, std::function<at::Tensor(int64_t)> chunk_loss,
                  std::vector<double> chunk_weights, Communicator* comm = nullptr);

  at::Tensor apply(const at::Tensor& v);  // H v, flat [P]
  at::Tensor gradient();                  // g, flat [P] (no graph)
  int64_t dimension() const { return dimension_; }
  int64_t products() const { return products_; }
  const std::vector<at::Tensor>& params() const { return params_; }
  // Whether `flag` holds on any rank (itself without a communicator): iterative methods stop
  // together, even where ranks' roundings could differ (mixed devices).
  bool on_any_rank(bool flag, const char* what);

 private:
  std::vector<at::Tensor> local_gradients(int64_t chunk, bool create_graph);
  std::vector<at::Tensor> params_;
  std::function<at::Tensor(int64_t)> chunk_loss_;
  std::vector<double> weights_;
  Communicator* comm_;
  std::vector<int64_t> chunks_;         // this process's chunks
  std::vector<at::Tensor> kept_grads_;  // g with its graph, when one chunk is local
  int64_t dimension_ = 0, products_ = 0;
};

// The operator of a model's mean cross-entropy over (images, labels) in chunks of `chunk` images,
// w.r.t. `params` (all parameters if empty). The model must be in eval mode while it is used.
HessianOperator model_hessian(ResNetImpl& model, const at::Tensor& images, const at::Tensor& labels, int64_t chunk,
                              std::vector<at::Tensor> params = {}, Communicator* comm = nullptr);

// A unit Gaussian vector (power iteration starts) and a Rademacher vector (±1), from gen.
at::Tensor random_unit(int64_t n, at::Generator& gen, const at::TensorOptions& options);
at::Tensor rademacher(int64_t n, at::Generator& gen, const at::TensorOptions& options);

struct EigenOptions {
  int64_t top_k = 1;
  int64_t max_iterations = 100;
  double tolerance = 1e-3;  // stop when |λ_t - λ_{t-1}| < tolerance * |λ_{t-1}|
  uint64_t seed = 0;        // start of eigenvalue i: item_generator(seed, 1, i)
};
struct EigenResult {
  std::vector<double> values;       // largest |λ| first
  std::vector<int64_t> iterations;  // power iterations each took
  std::vector<at::Tensor> vectors;  // unit eigenvectors
};
// `progress`: print a progress line (the writer).
EigenResult top_eigenvalues(HessianOperator& h, const EigenOptions& options, bool progress = false);

struct TraceResult {
  double estimate = 0, standard_error = 0;
  std::vector<double> samples;  // vᵀHv per probe, probe p drawn from item_generator(seed, 2, p)
};
// Probes are split over the ranks (my_items) and summed; `h` must be rank-local (no comm).
TraceResult hutchinson_trace(HessianOperator& h, int64_t probes, uint64_t seed, Communicator& comm);

struct LanczosResult {
  std::vector<double> nodes, weights;  // Ritz values and their quadrature weights (sum 1)
};
// m steps from `start` (normalised here), full re-orthogonalisation; stops early on breakdown.
LanczosResult lanczos(HessianOperator& h, const at::Tensor& start, int64_t steps);

struct DensityResult {
  std::vector<LanczosResult> runs;  // run r starts from item_generator(seed, 3, r) (Rademacher)
};
DensityResult slq_density(HessianOperator& h, int64_t runs, int64_t steps, uint64_t seed, Communicator& comm);

// The smoothed density of SLQ's nodes: Gaussians of width `sigma` on `grid` points.
std::vector<double> density_curve(const DensityResult& d, const std::vector<double>& grid, double sigma);

struct HessianOptions {
  EigenOptions eigen;
  int64_t probes = 32;   // Hutchinson probes (0: no trace)
  int64_t slq_runs = 1;  // SLQ runs (0: no density)
  int64_t lanczos_steps = 40;
  int64_t chunk = 128;      // images per backward pass (the top eigenvalues: the batch split over ranks)
  int64_t local_chunk = 0;  // the same for the rank-local trace and density; 0: chunk
};

// The hessian analysis of each subject on `set` (normalised as trained).
nlohmann::json hessian_json(std::vector<Subject>& subjects, const ImageSet& set, const nlohmann::json& images_desc,
                            const HessianOptions& options, Communicator& comm);
// hessian.png: the eigenvalue density (SLQ) and the top eigenvalues of every subject.
std::vector<std::string> plot_hessian(const nlohmann::json& result, const std::string& dir);

}  // namespace resnet
