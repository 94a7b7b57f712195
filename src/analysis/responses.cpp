// responses: the std of each conv layer's response, after BN and before ReLU/addition (He et al.
// 2015, Fig. 7): residual functions are closer to zero than the unreferenced ones of a plain net.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/core/GradMode.h>

#include <cmath>

#include "analysis/helpers.h"
#include "analysis/plots.h"
#include "analysis/registry.h"

namespace resnet {
namespace {

// Per-channel running moments of a [B, C, H, W] response.
struct Moments {
  at::Tensor sum, sum_sq;
  double count = 0;
  void add(const at::Tensor& t) {
    at::Tensor x = t.to(at::kDouble).transpose(0, 1).reshape({t.size(1), -1});
    if (!sum.defined()) sum = at::zeros({t.size(1)}, x.options()), sum_sq = at::zeros_like(sum);
    sum += x.sum(1);
    sum_sq += x.pow(2).sum(1);
    count += static_cast<double>(x.size(1));
  }
  double mean_channel_std() const {
    at::Tensor mean = sum / count;
    at::Tensor var = (sum_sq / count - mean * mean).clamp_min(0);
    return var.sqrt().mean().item<double>();
  }
};

}  // namespace

std::vector<LayerStat> response_std(Subject& s, const ImageSet& images, int64_t batch_size) {
  struct Rec : ForwardRecorder {
    std::vector<std::string> names;
    std::vector<Moments> moments;
    size_t next = 0;
    void on_stage(int stage, const at::Tensor&) override {
      if (stage == 0) next = 1;  // the stem ran first: its layer is index 0
    }
    void on_layer(const std::string& name, const at::Tensor& r) override {
      const size_t i = name == "stem" ? 0 : next++;
      if (i >= moments.size()) names.push_back(name), moments.emplace_back();
      moments[i].add(r);
    }
  } rec;
  forward_all(s, images, batch_size, rec);
  std::vector<LayerStat> out;
  for (size_t i = 0; i < rec.names.size(); ++i) out.push_back({rec.names[i], rec.moments[i].mean_channel_std()});
  return out;
}

nlohmann::json responses_json(std::vector<Subject>& subjects, const ImageSet& images, int64_t batch_size) {
  nlohmann::json out = {{"analysis", "responses"},
                        {"images", images.size()},
                        {"measure",
                         "mean over channels of the per-channel std of each conv layer's response "
                         "(after BN, before ReLU/addition; BN in eval mode)"},
                        {"subjects", nlohmann::json::array()}};
  for (auto& s : subjects) {
    nlohmann::json j = subject_header(s);
    j["layers"] = nlohmann::json::array();
    auto stats = response_std(s, images, batch_size);
    for (size_t i = 0; i < stats.size(); ++i)
      j["layers"].push_back({{"index", i}, {"name", stats[i].name}, {"std", stats[i].value}});
    out["subjects"].push_back(j);
  }
  return out;
}

namespace {

class Responses final : public Analysis {
 public:
  std::string name() const override { return "responses"; }
  std::string summary() const override { return "std of each conv layer's response (He et al. 2015, Fig. 7)"; }
  void add_flags(CLI::App& app) override {
    app.add_option("--images", images_, "test images (default 1000)")->check(CLI::PositiveNumber);
    app.add_option("--batch", batch_, "images per forward pass (default 128)")->check(CLI::PositiveNumber);
  }
  nlohmann::json run(AnalysisInputs& in) override {
    return responses_json(in.subjects, first_images(in.data.test, images_), batch_);
  }
  std::vector<std::string> plot(const nlohmann::json& result, const std::string& dir) override {
    plots::Panel by_layer{"std of layer responses, by layer", "layer index (original order)", "std"};
    plots::Panel sorted{"std of layer responses, sorted by magnitude", "layer rank", "std"};
    for (const auto& s : result.at("subjects")) {
      std::vector<double> y = column(s["layers"], "std");
      by_layer.series.push_back({s["label"], iota(y.size(), 1), y, {}});
      std::sort(y.begin(), y.end(), std::greater<>());
      sorted.series.push_back({s["label"], iota(y.size(), 1), y, {}});
    }
    const std::string png = file_in(dir, "responses.png");
    plots::line_plot(png, "Layer responses (He et al. 2015, Fig. 7)", {by_layer, sorted}, 1, 900, 380);
    return {png};
  }

 private:
  int64_t images_ = 1000, batch_ = 128;
};

}  // namespace

std::unique_ptr<Analysis> make_responses_analysis() { return std::make_unique<Responses>(); }

}  // namespace resnet
