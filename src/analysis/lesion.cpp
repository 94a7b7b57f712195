// lesion: test error with one block deleted, and with k random blocks deleted (Veit et al. 2016):
// a residual net degrades smoothly, a plain net collapses.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/core/GradMode.h>

#include <cmath>

#include "analysis/helpers.h"
#include "analysis/plots.h"
#include "analysis/registry.h"
#include <ATen/CPUGeneratorImpl.h>

#include "eval/evaluate.h"

namespace resnet {

LesionResult lesion_study(Subject& s, const ImageSet& test, const LesionOptions& o) {
  EvalOptions eo;
  eo.batch_size = o.batch_size;
  auto error = [&](const std::vector<int>& deleted) {
    s.model->set_lesioned(deleted);
    return evaluate(*s.model, test, s.normalizer, eo).error;
  };
  LesionResult r;
  const int blocks = static_cast<int>(s.model->blocks().size());
  r.baseline_error = error({});
  for (int i = 0; i < blocks; ++i) r.single.push_back(error({i}));
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  const int max_k = o.max_k > 0 ? std::min<int>(static_cast<int>(o.max_k), blocks) : blocks;
  for (int k = 1; k <= max_k; ++k) {
    std::vector<double> errors;
    for (int64_t d = 0; d < o.draws; ++d) {
      at::Tensor pick = at::randperm(blocks, gen, at::kLong).narrow(0, 0, k);
      std::vector<int> deleted;
      for (int64_t j = 0; j < k; ++j) deleted.push_back(static_cast<int>(pick[j].item<int64_t>()));
      errors.push_back(error(deleted));
    }
    r.random.push_back(errors);
  }
  s.model->set_lesioned({});
  return r;
}

nlohmann::json lesion_json(std::vector<Subject>& subjects, const ImageSet& test, const LesionOptions& o) {
  nlohmann::json out = {
      {"analysis", "lesion"}, {"images", test.size()}, {"draws", o.draws}, {"subjects", nlohmann::json::array()}};
  for (auto& s : subjects) {
    LesionResult r = lesion_study(s, test, o);
    nlohmann::json j = subject_header(s);
    j["baseline_error"] = r.baseline_error;
    j["single"] = nlohmann::json::array();
    for (size_t i = 0; i < r.single.size(); ++i)
      j["single"].push_back({{"block", i},
                             {"stage", s.model->stage_of(i)},
                             {"downsampling", s.model->blocks()[i]->changes_shape()},
                             {"error", r.single[i]}});
    j["random"] = nlohmann::json::array();
    for (size_t k = 0; k < r.random.size(); ++k) {
      const auto& e = r.random[k];
      double mean = 0, var = 0;
      for (double v : e) mean += v / static_cast<double>(e.size());
      for (double v : e) var += (v - mean) * (v - mean) / static_cast<double>(e.size());
      j["random"].push_back({{"k", k + 1}, {"mean", mean}, {"std", std::sqrt(var)}, {"errors", e}});
    }
    out["subjects"].push_back(j);
  }
  return out;
}

namespace {

class Lesion final : public Analysis {
 public:
  std::string name() const override { return "lesion"; }
  std::string summary() const override { return "test error with blocks deleted (Veit et al. 2016, Fig. 3 and 5a)"; }
  void add_flags(CLI::App& app) override {
    app.add_option("--limit", limit_, "test images (default 2000; 0 = all)")->check(CLI::NonNegativeNumber);
    app.add_option("--draws", options_.draws, "random draws per k (default 4)")->check(CLI::PositiveNumber);
    app.add_option("--max-k", options_.max_k, "largest number of deleted blocks (default 0 = all)")
        ->check(CLI::NonNegativeNumber);
  }
  nlohmann::json run(AnalysisInputs& in) override {
    return lesion_json(in.subjects, first_images(in.data.test, limit_), options_);
  }
  std::vector<std::string> plot(const nlohmann::json& result, const std::string& dir) override {
    plots::Panel single{"test error with one block deleted", "deleted block", "test error"};
    plots::Panel random{"test error with k random blocks deleted (mean +- std)", "number of deleted blocks k",
                        "test error"};
    for (const auto& s : result.at("subjects")) {
      std::vector<double> e = column(s["single"], "error");
      single.series.push_back({s["label"], iota(e.size()), e, {}});
      single.hlines.push_back({std::string(s["label"]) + " intact", s["baseline_error"]});
      std::vector<double> k = column(s["random"], "k"), mean = column(s["random"], "mean"),
                          sd = column(s["random"], "std");
      random.series.push_back({s["label"], k, mean, sd});
    }
    const std::vector<std::string> pngs = {file_in(dir, "lesion_single.png"), file_in(dir, "lesion_random.png")};
    plots::line_plot(pngs[0], "Deleting single blocks (Veit et al. 2016, Fig. 3)", {single}, 1, 900, 420);
    plots::line_plot(pngs[1], "Deleting several blocks (Veit et al. 2016, Fig. 5a)", {random}, 1, 900, 420);
    return pngs;
  }

 private:
  int64_t limit_ = 2000;
  LesionOptions options_;
};

}  // namespace

std::unique_ptr<Analysis> make_lesion_analysis() { return std::make_unique<Lesion>(); }

}  // namespace resnet
