// residuals: |F(x)| / |x| per block, how far each block is from the identity.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/core/GradMode.h>

#include <cmath>

#include "analysis/helpers.h"
#include "analysis/plots.h"
#include "analysis/registry.h"

namespace resnet {

std::vector<BlockRatio> residual_ratios(Subject& s, const ImageSet& images, int64_t batch_size) {
  struct Rec : ForwardRecorder {
    std::vector<double> branch_sq, input_sq;
    void on_block(int i, const at::Tensor& x, const at::Tensor& f, const at::Tensor&) override {
      if (static_cast<size_t>(i) >= branch_sq.size()) branch_sq.resize(i + 1), input_sq.resize(i + 1);
      if (f.defined()) branch_sq[i] += f.to(at::kDouble).pow(2).sum().item<double>();
      input_sq[i] += x.to(at::kDouble).pow(2).sum().item<double>();
    }
  } rec;
  forward_all(s, images, batch_size, rec);
  std::vector<BlockRatio> out;
  for (size_t i = 0; i < rec.branch_sq.size(); ++i) {
    BlockRatio r{std::sqrt(rec.branch_sq[i]), std::sqrt(rec.input_sq[i]), 0};
    r.ratio = r.input_norm > 0 ? r.branch_norm / r.input_norm : 0;
    out.push_back(r);
  }
  return out;
}

nlohmann::json residuals_json(std::vector<Subject>& subjects, const ImageSet& images, int64_t batch_size) {
  nlohmann::json out = {{"analysis", "residuals"}, {"images", images.size()}, {"subjects", nlohmann::json::array()}};
  for (auto& s : subjects) {
    nlohmann::json j = subject_header(s);
    j["blocks"] = nlohmann::json::array();
    auto ratios = residual_ratios(s, images, batch_size);
    for (size_t i = 0; i < ratios.size(); ++i)
      j["blocks"].push_back({{"index", i},
                             {"stage", s.model->stage_of(i)},
                             {"ratio", ratios[i].ratio},
                             {"branch_norm", ratios[i].branch_norm},
                             {"input_norm", ratios[i].input_norm}});
    out["subjects"].push_back(j);
  }
  return out;
}

namespace {

class Residuals final : public Analysis {
 public:
  std::string name() const override { return "residuals"; }
  std::string summary() const override { return "|F(x)| / |x| per block: how far each block is from the identity"; }
  void add_flags(CLI::App& app) override {
    app.add_option("--images", images_, "test images (default 1000)")->check(CLI::PositiveNumber);
    app.add_option("--batch", batch_, "images per forward pass (default 128)")->check(CLI::PositiveNumber);
  }
  nlohmann::json run(AnalysisInputs& in) override {
    return residuals_json(in.subjects, first_images(in.data.test, images_), batch_);
  }
  std::vector<std::string> plot(const nlohmann::json& result, const std::string& dir) override {
    plots::Panel ratio{"size of each block's residual relative to its input", "block index", "|F(x)| / |x|"};
    for (const auto& s : result.at("subjects")) {
      std::vector<double> r = column(s["blocks"], "ratio");
      ratio.series.push_back({s["label"], iota(r.size()), r, {}});
    }
    const std::string png = file_in(dir, "residuals.png");
    plots::line_plot(png, "Residual branches are small: blocks stay near the identity", {ratio}, 1, 900, 420);
    return {png};
  }

 private:
  int64_t images_ = 1000, batch_ = 128;
};

}  // namespace

std::unique_ptr<Analysis> make_residuals_analysis() { return std::make_unique<Residuals>(); }

}  // namespace resnet
