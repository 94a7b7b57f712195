// activations: the feature maps of chosen test images at the stem and after each stage, one grid
// per subject and image, with the true and the predicted class.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/core/GradMode.h>
#include <fmt/format.h>

#include <cmath>

#include "analysis/helpers.h"
#include "analysis/plots.h"
#include "analysis/registry.h"
#include "util/errors.h"

namespace resnet {

std::vector<at::Tensor> feature_maps(Subject& s, const ImageSet& images, int64_t index) {
  struct Rec : ForwardRecorder {
    std::vector<at::Tensor> stages;
    void on_stage(int, const at::Tensor& out) override { stages.push_back(out[0].to(at::kFloat).cpu()); }
  } rec;
  ImageSet one{images.images.narrow(0, index, 1), images.labels.narrow(0, index, 1)};
  forward_all(s, one, 1, rec);
  return rec.stages;
}

namespace {

// Feature maps [C, H, W] tiled into one grey image, each map scaled to 0..1 on its own, with a
// one-pixel white gap between maps.
plots::ImagePanel tile(const at::Tensor& maps, const std::string& title) {
  const int64_t c = maps.size(0), h = maps.size(1), w = maps.size(2);
  const int64_t cols = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(c))));
  const int64_t rows = (c + cols - 1) / cols;
  plots::ImagePanel p;
  p.title = title;
  p.rows = rows * (h + 1) - 1;
  p.cols = cols * (w + 1) - 1;
  p.values.assign(static_cast<size_t>(p.rows * p.cols), 1.0f);
  at::Tensor flat = maps.reshape({c, -1});
  at::Tensor lo = std::get<0>(flat.min(1, true)), hi = std::get<0>(flat.max(1, true));
  at::Tensor scaled = ((flat - lo) / (hi - lo).clamp_min(1e-8)).reshape({c, h, w}).contiguous();
  auto a = scaled.accessor<float, 3>();
  for (int64_t k = 0; k < c; ++k)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        p.values[static_cast<size_t>(((k / cols) * (h + 1) + y) * p.cols + (k % cols) * (w + 1) + x)] = a[k][y][x];
  return p;
}

// The input image (RGB, 0..1) and a grid per stage.
std::vector<plots::ImagePanel> panels(const at::Tensor& image, const std::string& truth,
                                      const std::vector<at::Tensor>& maps) {
  plots::ImagePanel input;
  input.title = "input: " + truth;
  input.rows = input.cols = 32;
  input.rgb = true;
  const at::Tensor rgb = image.to(at::kFloat).div(255).contiguous();  // [3, 32, 32]
  input.values.assign(rgb.data_ptr<float>(), rgb.data_ptr<float>() + rgb.numel());
  std::vector<plots::ImagePanel> out = {input};
  for (size_t st = 0; st < maps.size(); ++st)
    out.push_back(tile(maps[st], st == 0 ? fmt::format("stem ({} maps)", maps[st].size(0))
                                         : fmt::format("stage {} ({} maps, {}x{})", st, maps[st].size(0),
                                                       maps[st].size(1), maps[st].size(2))));
  return out;
}

int64_t predicted_class(Subject& s, const ImageSet& test, int64_t index) {
  c10::NoGradGuard no_grad;
  s.model->eval();
  const auto device = s.model->parameters().front().device();
  return s.model->forward(s.normalizer.to(device)(test.images.narrow(0, index, 1).to(device)))
      .argmax(1)
      .item<int64_t>();
}

class Activations final : public Analysis {
 public:
  std::string name() const override { return "activations"; }
  std::string summary() const override { return "feature maps of chosen test images at the stem and each stage"; }
  void add_flags(CLI::App& app) override {
    app.add_option("--show", show_, "test image indices (default 0,1,2,3)")->delimiter(',');
  }

  nlohmann::json run(AnalysisInputs& in) override {
    nlohmann::json out = {{"analysis", "activations"}, {"subjects", nlohmann::json::array()}};
    for (size_t si = 0; si < in.subjects.size(); ++si) out["subjects"].push_back(subject(in, si));
    return out;
  }

  std::vector<std::string> plot(const nlohmann::json&, const std::string& dir) override {
    std::vector<std::string> pngs;
    for (const Grid& g : grids_) {
      pngs.push_back(file_in(dir, g.file));
      plots::image_grid(pngs.back(), g.title, g.panels, static_cast<int>(g.panels.size()), 320);
    }
    return pngs;
  }

 private:
  struct Grid {
    std::string file, title;
    std::vector<plots::ImagePanel> panels;
  };

  nlohmann::json subject(AnalysisInputs& in, size_t si) {
    Subject& s = in.subjects[si];
    const ImageSet& test = in.data.test;
    auto name = [&](int64_t c) {
      return c < static_cast<int64_t>(in.data.class_names.size()) ? in.data.class_names[c] : std::to_string(c);
    };
    nlohmann::json j = {{"label", s.label}, {"images", nlohmann::json::array()}, {"stages", nlohmann::json::array()}};
    for (int64_t index : show_) {
      if (index < 0 || index >= test.size())
        throw InputError(fmt::format("--show: image {} is outside the {} test images", index, test.size()));
      const std::vector<at::Tensor> maps = feature_maps(s, test, index);  // stage 0 (stem) .. S: [C, H, W]
      const std::string truth = name(test.labels[index].item<int64_t>()),
                        predicted = name(predicted_class(s, test, index));
      const std::string file = fmt::format("activations_{}_{}.png", si, index);
      grids_.push_back({file, fmt::format("{}: test image {} ({}), predicted {}", s.label, index, truth, predicted),
                        panels(test.images[index], truth, maps)});
      j["images"].push_back({{"index", index}, {"true_class", truth}, {"predicted_class", predicted}, {"file", file}});
      if (j["stages"].empty())
        for (size_t st = 0; st < maps.size(); ++st)
          j["stages"].push_back({{"stage", st},
                                 {"channels", maps[st].size(0)},
                                 {"height", maps[st].size(1)},
                                 {"width", maps[st].size(2)}});
    }
    return j;
  }

  std::vector<int64_t> show_ = {0, 1, 2, 3};
  std::vector<Grid> grids_;  // run() computes them, plot() draws them
};

}  // namespace

std::unique_ptr<Analysis> make_activations_analysis() { return std::make_unique<Activations>(); }

}  // namespace resnet
