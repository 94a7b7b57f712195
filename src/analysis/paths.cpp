#include "analysis/paths.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/csrc/autograd/autograd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "analysis/helpers.h"
#include "analysis/plots.h"
#include "analysis/registry.h"
#include "analysis/sharding.h"
#include "util/duration.h"

namespace resnet {
namespace {

using Path = BlockImpl::GradientPath;

// Sets each block's gradient path for the scope; puts the previous ones and the mode back.
class PathGuard {
 public:
  PathGuard(ResNetImpl& model, const std::vector<Path>& paths) : model_(model), was_training_(model.is_training()) {
    const auto& blocks = model.blocks();
    if (paths.size() != blocks.size())
      throw std::invalid_argument(fmt::format("{} gradient paths for {} blocks", paths.size(), blocks.size()));
    for (size_t i = 0; i < blocks.size(); ++i)
      saved_.push_back(blocks[i]->gradient_path), blocks[i]->gradient_path = paths[i];
    model.eval();  // BN in eval mode: samples do not interact through batch statistics
  }
  ~PathGuard() {
    for (size_t i = 0; i < saved_.size(); ++i) model_.blocks()[i]->gradient_path = saved_[i];
    if (was_training_) model_.train();
  }

 private:
  ResNetImpl& model_;
  bool was_training_;
  std::vector<Path> saved_;
};

at::Tensor gradient_at_x0(ResNetImpl& model, const at::Tensor& images, const at::Tensor& labels,
                          const std::vector<Path>& paths, at::Tensor* logits) {
  // x0: the stem's output, where every path starts (reported as stage 0).
  struct StemOutput : ForwardRecorder {
    at::Tensor x0;
    void on_stage(int stage, const at::Tensor& out) override {
      if (stage == 0) x0 = out;
    }
  } rec;
  PathGuard guard(model, paths);
  at::Tensor out = model.forward(images, &rec);
  if (logits) *logits = out.detach();
  at::Tensor loss = at::cross_entropy_loss(out, labels);
  // A plain net's skip-only block passes nothing: x0 then has no gradient at all (zero).
  auto g = torch::autograd::grad({loss}, {rec.x0}, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                 /*allow_unused=*/true);
  return g[0].defined() ? g[0] : at::zeros_like(rec.x0);
}

// Mean and population std of each run of `samples` consecutive values.
void per_length_stats(const at::Tensor& norms, int64_t samples, PathsResult& r) {
  auto a = norms.accessor<double, 1>();
  for (int64_t k = 0; k <= r.blocks; ++k) {
    double mean = 0, var = 0;
    for (int64_t s = 0; s < samples; ++s) mean += a[k * samples + s] / static_cast<double>(samples);
    for (int64_t s = 0; s < samples; ++s) var += std::pow(a[k * samples + s] - mean, 2) / static_cast<double>(samples);
    r.mean_norm.push_back(mean);
    r.std_norm.push_back(std::sqrt(var));
    r.total.push_back(mean * r.count[static_cast<size_t>(k)]);
  }
}

}  // namespace

std::vector<double> path_counts(int64_t n) {
  std::vector<double> row{1.0};
  for (int64_t m = 1; m <= n; ++m) {
    std::vector<double> next(static_cast<size_t>(m + 1), 1.0);
    for (int64_t k = 1; k < m; ++k) next[k] = row[k - 1] + row[k];
    row = std::move(next);
  }
  return row;
}

at::Tensor path_gradient(ResNetImpl& model, const at::Tensor& images, const at::Tensor& labels,
                         const std::vector<bool>& through_branch, at::Tensor* logits) {
  std::vector<Path> paths;
  for (bool b : through_branch) paths.push_back(b ? Path::kBranch : Path::kSkip);
  return gradient_at_x0(model, images, labels, paths, logits);
}

at::Tensor ordinary_gradient(ResNetImpl& model, const at::Tensor& images, const at::Tensor& labels) {
  return gradient_at_x0(model, images, labels, std::vector<Path>(model.blocks().size(), Path::kBoth), nullptr);
}

std::pair<int64_t, int64_t> shortest_range(const std::vector<double>& v, double mass) {
  double all = 0;
  for (double x : v) all += x;
  const int64_t n = static_cast<int64_t>(v.size());
  std::pair<int64_t, int64_t> best{0, n - 1};
  double best_sum = -1;
  for (int64_t lo = 0; lo < n; ++lo) {
    double sum = 0;
    for (int64_t hi = lo; hi < n; ++hi) {
      sum += v[hi];
      if (sum < mass * all) continue;
      const int64_t len = hi - lo, best_len = best.second - best.first;
      if (len < best_len || (len == best_len && sum > best_sum)) best = {lo, hi}, best_sum = sum;
      break;
    }
  }
  return best;
}

PathsResult gradient_paths(ResNetImpl& model, const at::Tensor& images, const at::Tensor& labels, const PathsOptions& o,
                           Communicator& comm) {
  PathsResult r;
  r.blocks = static_cast<int64_t>(model.blocks().size());
  r.count = path_counts(r.blocks);
  const int64_t items = (r.blocks + 1) * o.samples;
  // Each rank fills its own items; zeros elsewhere; the sum over ranks is the whole table.
  at::Tensor norms = at::zeros({items}, at::kDouble);
  ProgressLine progress(comm.writer(), "paths", "sample", items);
  int64_t done = 0;
  for (int64_t item : my_items(items, comm)) {
    const int64_t k = item / o.samples, s = item % o.samples;
    at::Generator gen = item_generator(o.seed, static_cast<uint64_t>(k), static_cast<uint64_t>(s));
    at::Tensor pick = at::randperm(r.blocks, gen, at::kLong).narrow(0, 0, k);
    std::vector<bool> branch(static_cast<size_t>(r.blocks), false);
    for (int64_t j = 0; j < k; ++j) branch[static_cast<size_t>(pick[j].item<int64_t>())] = true;
    norms[item] = path_gradient(model, images, labels, branch).to(at::kDouble).norm().item<double>();
    ++done;
    progress.update(std::min(items, done * comm.size()), done);
  }
  progress.finish();
  comm.sum(norms, "paths: gradient norms per path length");
  per_length_stats(norms, o.samples, r);
  std::tie(r.effective_lo, r.effective_hi) = shortest_range(r.total, o.mass);
  return r;
}

nlohmann::json paths_json(std::vector<Subject>& subjects, const ImageSet& set, const PathsOptions& o,
                          Communicator& comm) {
  nlohmann::json out = {{"analysis", "paths"},
                        {"images", set.size()},
                        {"samples", o.samples},
                        {"seed", o.seed},
                        {"mass", o.mass},
                        {"measure",
                         "|dL/dx0| at the first block's input (Frobenius, whole batch, mean cross-entropy, "
                         "BN in eval mode) along one path of length k: k sampled blocks pass the gradient "
                         "through their branch only, the others through their skip only"},
                        {"subjects", nlohmann::json::array()}};
  for (auto& s : subjects) {
    const auto start = std::chrono::steady_clock::now();
    const auto device = s.model->parameters().front().device();
    at::Tensor x = s.normalizer.to(device)(set.images.to(device));
    at::Tensor y = set.labels.to(device);
    PathsResult r = gradient_paths(*s.model, x, y, o, comm);
    nlohmann::json j = subject_header(s);
    double all = 0, in_range = 0;
    for (size_t k = 0; k < r.total.size(); ++k) all += r.total[k];
    for (int64_t k = r.effective_lo; k <= r.effective_hi; ++k) in_range += r.total[static_cast<size_t>(k)];
    j["blocks"] = r.blocks;
    j["ordinary_grad_norm"] = ordinary_gradient(*s.model, x, y).to(at::kDouble).norm().item<double>();
    j["lengths"] = nlohmann::json::array();
    for (size_t k = 0; k < r.count.size(); ++k)
      j["lengths"].push_back({{"k", k},
                              {"count", r.count[k]},
                              {"mean_norm", r.mean_norm[k]},
                              {"std_norm", r.std_norm[k]},
                              {"total", r.total[k]},
                              {"share", all > 0 ? r.total[k] / all : 0.0}});
    j["effective"] = {{"lo", r.effective_lo}, {"hi", r.effective_hi}, {"share", all > 0 ? in_range / all : 0.0}};
    j["seconds"] = seconds_since(start);
    out["subjects"].push_back(j);
  }
  return out;
}

std::vector<std::string> plot_paths(const nlohmann::json& result, const std::string& dir) {
  using plots::Panel;
  Panel counts{"distribution of path lengths", "path length k (blocks passed through their branch)",
               "share of the 2^n paths"};
  Panel per_path{"gradient along one path of length k (mean +- std)", "path length k", "|dL/dx0|"};
  Panel total{"total gradient per path length (count x mean)", "path length k", "share of the total"};
  per_path.logy = true;
  for (const auto& s : result.at("subjects")) {
    std::vector<double> k, share, mean, sd, carried;
    const double paths = std::pow(2.0, s.at("blocks").get<double>());
    for (const auto& l : s.at("lengths")) {
      k.push_back(l.at("k").get<double>());
      share.push_back(l.at("count").get<double>() / paths);
      mean.push_back(std::max(l.at("mean_norm").get<double>(), 1e-30));  // log axis
      sd.push_back(l.at("std_norm").get<double>());
      carried.push_back(l.at("share").get<double>());
    }
    const std::string label = s.at("label");
    const auto& e = s.at("effective");
    counts.series.push_back({label, k, share, {}});
    per_path.series.push_back({label, k, mean, sd});
    total.series.push_back({fmt::format("{} ({:.0f}% in lengths {}-{})", label, 100 * e.at("share").get<double>(),
                                        e.at("lo").get<int64_t>(), e.at("hi").get<int64_t>()),
                            k,
                            carried,
                            {}});
  }
  const std::string png = (std::filesystem::path(dir) / "paths.png").string();
  plots::line_plot(png, "The paths gradients take (Veit et al. 2016, Fig. 6)", {counts, per_path, total}, 3, 560, 440);
  return {png};
}

namespace {

// resnet-analyze paths: the flags, their defaults, and the run over the ranks.
class Paths final : public Analysis {
 public:
  std::string name() const override { return "paths"; }
  std::string summary() const override {
    return "the gradient along paths of each length (Veit et al. 2016, Fig. 6), over the ranks";
  }
  void add_flags(CLI::App& app) override {
    add_split_flags(app, images_, 128, "the sampled block subsets");  // one batch
    app.add_option("--samples", o_.samples, "random block subsets per path length (default 10)")
        ->check(CLI::Range(1, 100000));
    app.add_option("--mass", o_.mass, "the effective range holds at least this share of the gradient (default 0.9)")
        ->check(CLI::Range(0.0, 1.0));
  }
  bool needs_train_images() const override { return images_.split == "train"; }
  bool splits_over_ranks() const override { return true; }

  nlohmann::json run(AnalysisInputs& in) override {
    nlohmann::json desc;
    const ImageSet set = named_images(in.data, images_.split, images_.images, desc);
    PathsOptions o = o_;
    o.seed = images_.seed;
    nlohmann::json result = paths_json(in.subjects, set, o, in.comm);
    result["images"] = desc;
    return result;
  }
  std::vector<std::string> plot(const nlohmann::json& result, const std::string& dir) override {
    return plot_paths(result, dir);
  }

 private:
  SplitFlags images_;
  PathsOptions o_;
};

}  // namespace

std::unique_ptr<Analysis> make_paths_analysis() { return std::make_unique<Paths>(); }

}  // namespace resnet
