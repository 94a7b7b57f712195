// gradients: |dL/dx| at every block input and |dL/dW| of every conv weight on one batch:
// dL/dx = dL/dy (dF/dx + 1) keeps the gradient alive through a residual net.
#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/core/GradMode.h>

#include <cmath>

#include "analysis/helpers.h"
#include "analysis/plots.h"
#include "analysis/registry.h"
#include <torch/csrc/autograd/autograd.h>

namespace resnet {

GradientNorms gradient_norms(ResNetImpl& model, const at::Tensor& images, const at::Tensor& labels) {
  struct Rec : ForwardRecorder {
    std::vector<at::Tensor> inputs;
    void on_block(int, const at::Tensor& x, const at::Tensor&, const at::Tensor&) override { inputs.push_back(x); }
  } rec;
  // Training-mode BN, as during training; its running statistics are put back afterwards.
  std::vector<at::Tensor> saved;
  for (const auto& b : model.buffers()) saved.push_back(b.detach().clone());
  const bool was_training = model.is_training();
  model.train();
  at::Tensor loss = at::cross_entropy_loss(model.forward(images, &rec), labels);

  std::vector<at::Tensor> wrt = rec.inputs;
  std::vector<std::string> weight_names;
  for (const auto& item : model.named_parameters())
    if (item.value().dim() == 4) wrt.push_back(item.value()), weight_names.push_back(item.key());
  // autograd::grad leaves .grad() of the parameters untouched.
  auto grads = torch::autograd::grad({loss}, wrt, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
  GradientNorms g;
  g.loss = loss.item<double>();
  for (size_t i = 0; i < grads.size(); ++i) {
    const double norm = grads[i].defined() ? grads[i].norm().item<double>() : 0.0;
    if (i < rec.inputs.size()) g.block_input.push_back(norm);
    else g.weights.push_back({weight_names[i - rec.inputs.size()], norm});
  }
  {
    c10::NoGradGuard no_grad;
    auto buffers = model.buffers();
    for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved[i]);
  }
  if (!was_training) model.eval();
  return g;
}

nlohmann::json gradients_json(std::vector<Subject>& subjects, const ImageSet& images, int64_t batch_size) {
  nlohmann::json out = {
      {"analysis", "gradients"}, {"batch", std::min(batch_size, images.size())}, {"subjects", nlohmann::json::array()}};
  for (auto& s : subjects) {
    const auto device = s.model->parameters().front().device();
    const int64_t n = std::min(batch_size, images.size());
    at::Tensor x = s.normalizer.to(device)(images.images.narrow(0, 0, n).to(device));
    GradientNorms g = gradient_norms(*s.model, x, images.labels.narrow(0, 0, n).to(device));
    nlohmann::json j = subject_header(s);
    j["loss"] = g.loss;
    j["blocks"] = nlohmann::json::array();
    for (size_t i = 0; i < g.block_input.size(); ++i)
      j["blocks"].push_back({{"index", i}, {"stage", s.model->stage_of(i)}, {"input_grad_norm", g.block_input[i]}});
    j["layers"] = nlohmann::json::array();
    for (size_t i = 0; i < g.weights.size(); ++i)
      j["layers"].push_back({{"index", i}, {"name", g.weights[i].name}, {"weight_grad_norm", g.weights[i].value}});
    out["subjects"].push_back(j);
  }
  return out;
}

namespace {

class Gradients final : public Analysis {
 public:
  std::string name() const override { return "gradients"; }
  std::string summary() const override { return "|dL/dx| at each block's input, |dL/dW| of each conv, on one batch"; }
  void add_flags(CLI::App& app) override {
    app.add_option("--batch", batch_, "the batch: the first N test images (default 128)")->check(CLI::PositiveNumber);
  }
  nlohmann::json run(AnalysisInputs& in) override {
    return gradients_json(in.subjects, first_images(in.data.test, batch_), batch_);
  }
  std::vector<std::string> plot(const nlohmann::json& result, const std::string& dir) override {
    plots::Panel blocks{"gradient reaching each block's input", "block index", "|dL/dx|"};
    plots::Panel weights{"gradient of each conv layer's weights", "conv layer index", "|dL/dW|"};
    blocks.logy = weights.logy = true;
    for (const auto& s : result.at("subjects")) {
      std::vector<double> b = column(s["blocks"], "input_grad_norm"), w = column(s["layers"], "weight_grad_norm");
      blocks.series.push_back({s["label"], iota(b.size()), b, {}});
      weights.series.push_back({s["label"], iota(w.size()), w, {}});
    }
    const std::string png = file_in(dir, "gradients.png");
    plots::line_plot(png, "Gradient flow: dL/dx = dL/dy (dF/dx + 1)", {blocks, weights}, 1, 900, 380);
    return {png};
  }

 private:
  int64_t batch_ = 128;
};

}  // namespace

std::unique_ptr<Analysis> make_gradients_analysis() { return std::make_unique<Gradients>(); }

}  // namespace resnet
