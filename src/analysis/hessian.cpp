#include "analysis/hessian.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/csrc/autograd/autograd.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "analysis/helpers.h"
#include "analysis/plots.h"
#include "analysis/registry.h"
#include "analysis/sharding.h"
#include "util/duration.h"

namespace resnet {
namespace {

double dot_value(const at::Tensor& a, const at::Tensor& b) { return at::dot(a, b).item<double>(); }

// Tensors shaped like `params` -> one flat vector (undefined: zeros), in logical element order.
at::Tensor flatten(const std::vector<at::Tensor>& ts, const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> flat;
  for (size_t i = 0; i < ts.size(); ++i)
    flat.push_back(ts[i].defined() ? ts[i].detach().contiguous().view(-1)
                                   : at::zeros({params[i].numel()}, params[i].options()));
  return at::cat(flat);
}

// v minus its components along the unit vectors `basis`, twice (one Gram-Schmidt pass loses
// orthogonality in float32), then normalised. Returns the norm before normalising.
double orthonormalize(at::Tensor& v, const std::vector<at::Tensor>& basis) {
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& u : basis) v.sub_(u * at::dot(v, u));
  const double n = v.norm().item<double>();
  if (n > 0) v.div_(n);
  return n;
}

nlohmann::json density_json(const DensityResult& d) {
  nlohmann::json runs = nlohmann::json::array();
  double lo = 1e300, hi = -1e300;
  for (const auto& r : d.runs) {
    runs.push_back({{"nodes", r.nodes}, {"weights", r.weights}});
    for (double x : r.nodes) lo = std::min(lo, x), hi = std::max(hi, x);
  }
  nlohmann::json j = {{"runs", runs}};
  if (d.runs.empty() || lo > hi) return j;
  // Smoothed on 400 points, Gaussians 1/100 of the node span wide (PyHessian smooths too).
  const double sigma = std::max((hi - lo) / 100, 1e-8), from = lo - 5 * sigma, to = hi + 5 * sigma;
  std::vector<double> grid;
  for (int i = 0; i < 400; ++i) grid.push_back(from + (to - from) * i / 399.0);
  j["sigma"] = sigma;
  j["grid"] = grid;
  j["curve"] = density_curve(d, grid, sigma);
  return j;
}

// One subject: top-k on products summed over the ranks (the batch split), then trace and
// density with rank-local products (the probes and runs split).
nlohmann::json subject_hessian(Subject& s, const at::Tensor& x, const at::Tensor& y, const HessianOptions& o,
                               Communicator& comm) {
  const auto start = std::chrono::steady_clock::now();
  const bool was_training = s.model->is_training();
  s.model->eval();
  nlohmann::json j = subject_header(s);
  int64_t products = 0;
  {
    HessianOperator h = model_hessian(*s.model, x, y, o.chunk, {}, &comm);
    j["parameters"] = h.dimension();
    j["grad_norm"] = h.gradient().norm().item<double>();
    const EigenResult e = top_eigenvalues(h, o.eigen, comm.writer());
    j["top_eigenvalues"] = e.values;
    j["power_iterations"] = e.iterations;
    products += h.products();
  }
  {
    HessianOperator h = model_hessian(*s.model, x, y, o.local_chunk > 0 ? o.local_chunk : o.chunk);
    const TraceResult t = hutchinson_trace(h, o.probes, o.eigen.seed, comm);
    if (o.probes > 0)
      j["trace"] = {
          {"estimate", t.estimate}, {"standard_error", t.standard_error}, {"probes", o.probes}, {"samples", t.samples}};
    j["density"] = density_json(slq_density(h, o.slq_runs, o.lanczos_steps, o.eigen.seed, comm));
    products += h.products();
  }
  if (was_training) s.model->train();
  j["hessian_vector_products"] = products;  // this process's
  j["seconds"] = seconds_since(start);
  return j;
}

}  // namespace

HessianOperator::HessianOperator(std::vector<at::Tensor> params, std::function<at::Tensor(int64_t)> chunk_loss,
                                 std::vector<double> chunk_weights, Communicator* comm)
    : params_(std::move(params)), chunk_loss_(std::move(chunk_loss)), weights_(std::move(chunk_weights)), comm_(comm) {
  for (const auto& p : params_) dimension_ += p.numel();
  const int64_t chunks = static_cast<int64_t>(weights_.size());
  if (comm_) chunks_ = my_items(chunks, *comm_);
  else
    for (int64_t c = 0; c < chunks; ++c) chunks_.push_back(c);
}

std::vector<at::Tensor> HessianOperator::local_gradients(int64_t chunk, bool create_graph) {
  at::Tensor loss = chunk_loss_(chunk) * weights_[static_cast<size_t>(chunk)];
  return torch::autograd::grad({loss}, params_, {}, /*retain_graph=*/create_graph, create_graph, /*allow_unused=*/true);
}

at::Tensor HessianOperator::apply(const at::Tensor& v) {
  std::vector<at::Tensor> parts;  // v as tensors shaped like the parameters
  int64_t offset = 0;
  for (const auto& p : params_) parts.push_back(v.narrow(0, offset, p.numel()).view(p.sizes())), offset += p.numel();
  at::Tensor hv = at::zeros({dimension_}, v.options());
  // Hv = d(g · v)/dθ. With one local chunk, g keeps its graph across products.
  auto add_product = [&](const std::vector<at::Tensor>& g, bool retain) {
    at::Tensor gv = at::zeros({}, v.options());
    for (size_t i = 0; i < g.size(); ++i)
      if (g[i].defined()) gv = gv + (g[i] * parts[i]).sum();
    if (!gv.requires_grad()) return;  // no parameter reaches the loss twice: H v = 0
    hv += flatten(torch::autograd::grad({gv}, params_, {}, retain, false, /*allow_unused=*/true), params_);
  };
  if (chunks_.size() == 1) {
    if (kept_grads_.empty()) kept_grads_ = local_gradients(chunks_[0], true);
    add_product(kept_grads_, true);
  } else {
    for (int64_t c : chunks_) add_product(local_gradients(c, true), false);
  }
  if (comm_) comm_->sum(hv, "hessian: a Hessian-vector product");
  ++products_;
  return hv;
}

bool HessianOperator::on_any_rank(bool flag, const char* what) {
  return comm_ ? comm_->max(flag ? 1 : 0, what) == 1 : flag;
}

at::Tensor HessianOperator::gradient() {
  at::Tensor g = at::zeros({dimension_}, params_.front().options());
  for (int64_t c : chunks_) g += flatten(local_gradients(c, false), params_);
  if (comm_) comm_->sum(g, "hessian: the gradient");
  return g;
}

HessianOperator model_hessian(ResNetImpl& model, const at::Tensor& images, const at::Tensor& labels, int64_t chunk,
                              std::vector<at::Tensor> params, Communicator* comm) {
  if (params.empty()) params = model.parameters();
  const int64_t n = images.size(0);
  chunk = std::max<int64_t>(1, std::min(chunk, n));
  std::vector<double> weights;  // mean over all n = sum over chunks of (n_c / n) * mean over chunk c
  for (int64_t start = 0; start < n; start += chunk)
    weights.push_back(static_cast<double>(std::min(chunk, n - start)) / static_cast<double>(n));
  auto loss = [&model, images, labels, chunk, n](int64_t c) {
    const int64_t start = c * chunk, size = std::min(chunk, n - start);
    return at::cross_entropy_loss(model.forward(images.narrow(0, start, size)), labels.narrow(0, start, size));
  };
  return HessianOperator(std::move(params), loss, weights, comm);
}

at::Tensor random_unit(int64_t n, at::Generator& gen, const at::TensorOptions& options) {
  at::Tensor v = at::randn({n}, gen, at::TensorOptions().dtype(at::kDouble)).to(options);
  return v / v.norm();
}

at::Tensor rademacher(int64_t n, at::Generator& gen, const at::TensorOptions& options) {
  return (at::randint(0, 2, {n}, gen, at::TensorOptions().dtype(at::kLong)) * 2 - 1).to(options);
}

EigenResult top_eigenvalues(HessianOperator& h, const EigenOptions& o, bool show) {
  EigenResult r;
  const at::TensorOptions options = h.params().front().options();
  ProgressLine progress(show, "hessian: top eigenvalues", "product", o.top_k * o.max_iterations);
  for (int64_t i = 0; i < o.top_k; ++i) {
    at::Generator gen = item_generator(o.seed, 1, static_cast<uint64_t>(i));
    at::Tensor v = random_unit(h.dimension(), gen, options);
    double lambda = 0;
    int64_t it = 0;
    while (it < o.max_iterations) {
      ++it;
      orthonormalize(v, r.vectors);  // deflation: stay orthogonal to the eigenvectors found
      at::Tensor hv = h.apply(v);
      const double rayleigh = dot_value(hv, v);  // vᵀHv, |v| = 1
      v = hv;
      const bool converged = it > 1 && std::abs(rayleigh - lambda) < o.tolerance * (std::abs(lambda) + 1e-12);
      lambda = rayleigh;
      progress.update(h.products(), h.products());
      if (h.on_any_rank(converged || v.norm().item<double>() == 0, "hessian: power iteration converged")) break;
    }
    orthonormalize(v, r.vectors);
    r.values.push_back(lambda);
    r.iterations.push_back(it);
    r.vectors.push_back(v);
  }
  progress.finish();
  return r;
}

TraceResult hutchinson_trace(HessianOperator& h, int64_t probes, uint64_t seed, Communicator& comm) {
  TraceResult r;
  if (probes <= 0) return r;
  at::Tensor values = at::zeros({probes}, at::kDouble);  // this rank's probes; zeros elsewhere
  const at::TensorOptions options = h.params().front().options();
  ProgressLine progress(comm.writer(), "hessian: trace", "probe", probes);
  int64_t done = 0;
  for (int64_t p : my_items(probes, comm)) {
    at::Generator gen = item_generator(seed, 2, static_cast<uint64_t>(p));
    const at::Tensor v = rademacher(h.dimension(), gen, options);
    values[p] = dot_value(h.apply(v), v);
    ++done;
    progress.update(std::min(probes, done * comm.size()), done);
  }
  progress.finish();
  comm.sum(values, "hessian: Hutchinson probes");
  r.samples.assign(values.data_ptr<double>(), values.data_ptr<double>() + probes);
  r.estimate = values.mean().item<double>();
  r.standard_error = probes > 1 ? values.std().item<double>() / std::sqrt(static_cast<double>(probes)) : 0.0;
  return r;
}

LanczosResult lanczos(HessianOperator& h, const at::Tensor& start, int64_t steps) {
  std::vector<at::Tensor> basis;
  std::vector<double> alpha, beta;
  at::Tensor v = start.clone();
  orthonormalize(v, {});
  double scale = 0;
  for (int64_t j = 0; j < std::min(steps, h.dimension()); ++j) {
    basis.push_back(v);
    at::Tensor w = h.apply(v);
    alpha.push_back(dot_value(w, v));
    scale = std::max(scale, std::abs(alpha.back()));
    const double b = orthonormalize(w, basis);      // w - αv - βv_prev, and every other v (full)
    if (b <= 1e-6 * std::max(scale, 1e-30)) break;  // the Krylov space is exhausted
    if (j + 1 < steps) beta.push_back(b);
    v = w;
  }
  const int64_t m = static_cast<int64_t>(alpha.size());
  at::Tensor t = at::diag(at::tensor(alpha, at::kDouble));
  if (m > 1) {
    at::Tensor off = at::tensor(std::vector<double>(beta.begin(), beta.begin() + (m - 1)), at::kDouble);
    t = t + at::diag(off, 1) + at::diag(off, -1);
  }
  auto [nodes, vectors] = at::linalg_eigh(t);
  at::Tensor weights = vectors.select(0, 0).pow(2).contiguous();
  LanczosResult r;
  r.nodes.assign(nodes.data_ptr<double>(), nodes.data_ptr<double>() + m);
  r.weights.assign(weights.data_ptr<double>(), weights.data_ptr<double>() + m);
  return r;
}

DensityResult slq_density(HessianOperator& h, int64_t runs, int64_t steps, uint64_t seed, Communicator& comm) {
  DensityResult d;
  if (runs <= 0) return d;
  // Row r: run r's nodes, then its weights, then its node count (zeros for other ranks' runs).
  at::Tensor table = at::zeros({runs, 2 * steps + 1}, at::kDouble);
  const at::TensorOptions options = h.params().front().options();
  for (int64_t r : my_items(runs, comm)) {
    at::Generator gen = item_generator(seed, 3, static_cast<uint64_t>(r));
    const LanczosResult l = lanczos(h, rademacher(h.dimension(), gen, options), steps);
    auto row = table.accessor<double, 2>()[r];
    for (size_t j = 0; j < l.nodes.size(); ++j) row[j] = l.nodes[j], row[steps + j] = l.weights[j];
    row[2 * steps] = static_cast<double>(l.nodes.size());
  }
  comm.sum(table, "hessian: Lanczos runs");
  auto a = table.accessor<double, 2>();
  for (int64_t r = 0; r < runs; ++r) {
    LanczosResult l;
    for (int64_t j = 0; j < static_cast<int64_t>(a[r][2 * steps]); ++j)
      l.nodes.push_back(a[r][j]), l.weights.push_back(a[r][steps + j]);
    d.runs.push_back(l);
  }
  return d;
}

std::vector<double> density_curve(const DensityResult& d, const std::vector<double>& grid, double sigma) {
  std::vector<double> out(grid.size(), 0.0);
  const double norm = 1.0 / (sigma * std::sqrt(2 * M_PI) * static_cast<double>(std::max<size_t>(1, d.runs.size())));
  for (const auto& run : d.runs)
    for (size_t j = 0; j < run.nodes.size(); ++j)
      for (size_t g = 0; g < grid.size(); ++g)
        out[g] += run.weights[j] * norm * std::exp(-std::pow(grid[g] - run.nodes[j], 2) / (2 * sigma * sigma));
  return out;
}

nlohmann::json hessian_json(std::vector<Subject>& subjects, const ImageSet& set, const nlohmann::json& images_desc,
                            const HessianOptions& o, Communicator& comm) {
  nlohmann::json out = {{"analysis", "hessian"},
                        {"images", images_desc},
                        {"precision", "fp32"},
                        {"top_k", o.eigen.top_k},
                        {"tolerance", o.eigen.tolerance},
                        {"max_iterations", o.eigen.max_iterations},
                        {"probes", o.probes},
                        {"slq_runs", o.slq_runs},
                        {"lanczos_steps", o.lanczos_steps},
                        {"seed", o.eigen.seed},
                        {"measure",
                         "Hessian of the mean cross-entropy over the images w.r.t. all parameters, "
                         "BN in eval mode; top eigenvalues by power iteration (largest |lambda| first), "
                         "trace by Hutchinson, density by stochastic Lanczos quadrature"},
                        {"subjects", nlohmann::json::array()}};
  for (auto& s : subjects) {
    const auto device = s.model->parameters().front().device();
    const at::Tensor x = s.normalizer.to(device)(set.images.to(device));
    out["subjects"].push_back(subject_hessian(s, x, set.labels.to(device), o, comm));
  }
  return out;
}

std::vector<std::string> plot_hessian(const nlohmann::json& result, const std::string& dir) {
  plots::Panel density{"eigenvalue density (stochastic Lanczos quadrature)", "eigenvalue", "density"};
  plots::Panel top{"top eigenvalues (power iteration)", "rank i", "lambda_i"};
  density.logy = true;
  density.style = "lines";
  top.style = "linespoints";
  for (const auto& s : result.at("subjects")) {
    std::string label = s.at("label");
    if (s.contains("trace"))
      label += fmt::format(" (trace {:.4g} +- {:.2g})", s["trace"]["estimate"].get<double>(),
                           s["trace"]["standard_error"].get<double>());
    const auto& d = s.at("density");
    if (d.contains("curve")) {
      std::vector<double> curve;
      for (const auto& v : d["curve"]) curve.push_back(std::max(v.get<double>(), 1e-12));  // log axis
      density.series.push_back({label, d["grid"], curve, {}});
    }
    std::vector<double> values = s.at("top_eigenvalues"), rank;
    for (size_t i = 0; i < values.size(); ++i) rank.push_back(static_cast<double>(i + 1));
    top.series.push_back({s.at("label"), rank, values, {}});
  }
  const std::string png = (std::filesystem::path(dir) / "hessian.png").string();
  std::vector<plots::Panel> panels{top};
  if (!density.series.empty()) panels.insert(panels.begin(), density);  // no SLQ runs: no density
  plots::line_plot(png, "Curvature of the loss: the Hessian's spectrum (as PyHessian)", panels, 2, 640, 460);
  return {png};
}

namespace {

// resnet-analyze hessian: the flags, their defaults, and the run over the ranks.
class Hessian final : public Analysis {
 public:
  std::string name() const override { return "hessian"; }
  std::string summary() const override {
    return "curvature: top eigenvalues, trace, spectral density (Hessian-vector products), over the ranks";
  }
  void add_flags(CLI::App& app) override {
    add_split_flags(app, images_, 200, "power-iteration starts and probes");  // PyHessian's mini-batch
    app.add_option("--batch", batch_, "images per chunk (default: the images shared out among the ranks)")
        ->check(CLI::PositiveNumber);
    app.add_option("--top-k", o_.eigen.top_k, "eigenvalues by power iteration (default 1)")->check(CLI::Range(1, 100));
    app.add_option("--max-iterations", o_.eigen.max_iterations, "power iterations per eigenvalue (default 100)")
        ->check(CLI::Range(1, 100000));
    app.add_option("--tolerance", o_.eigen.tolerance, "power iteration stops at this relative change (default 1e-3)")
        ->check(CLI::Range(0.0, 1.0));
    app.add_option("--probes", o_.probes, "Hutchinson probes for the trace (default 32; 0: none)")
        ->check(CLI::Range(0, 100000));
    app.add_option("--slq-runs", o_.slq_runs, "Lanczos runs for the density (default 1; 0: none)")
        ->check(CLI::Range(0, 10000));
    app.add_option("--lanczos-steps", o_.lanczos_steps, "Lanczos steps per run (default 40)")
        ->check(CLI::Range(1, 10000));
  }
  bool needs_train_images() const override { return images_.split == "train"; }
  bool splits_over_ranks() const override { return true; }

  nlohmann::json run(AnalysisInputs& in) override {
    nlohmann::json desc;
    const ImageSet set = named_images(in.data, images_.split, images_.images, desc);
    HessianOptions o = o_;
    o.eigen.seed = images_.seed;
    // Default: the top eigenvalues' batch in one chunk per rank, the trace's and density's (rank
    // local) in one chunk; one chunk keeps its gradient graph between products.
    o.chunk = batch_ > 0 ? batch_ : (set.size() + in.comm.size() - 1) / in.comm.size();
    o.local_chunk = batch_ > 0 ? batch_ : set.size();
    return hessian_json(in.subjects, set, desc, o, in.comm);
  }
  std::vector<std::string> plot(const nlohmann::json& result, const std::string& dir) override {
    return plot_hessian(result, dir);
  }

 private:
  SplitFlags images_;
  int64_t batch_ = 0;
  HessianOptions o_;
};

}  // namespace

std::unique_ptr<Analysis> make_hessian_analysis() { return std::make_unique<Hessian>(); }

}  // namespace resnet
