#include "analysis/analysis.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <filesystem>

#include "analysis/plots.h"
#include "eval/evaluate.h"
#include "interop/weights.h"
#include "train/checkpoint.h"
#include "util/errors.h"

namespace resnet {
namespace {

// Runs the model over `images` in eval mode in batches, calling the recorder.
void forward_all(Subject& s, const ImageSet& images, int64_t batch_size, ForwardRecorder& rec) {
  c10::NoGradGuard no_grad;
  const bool was_training = s.model->is_training();
  s.model->eval();
  const auto device = s.model->parameters().front().device();
  const Normalizer norm = s.normalizer.to(device);
  for (int64_t start = 0; start < images.size(); start += batch_size) {
    const int64_t n = std::min(batch_size, images.size() - start);
    s.model->forward(norm(images.images.narrow(0, start, n).to(device)), &rec);
  }
  if (was_training) s.model->train();
}

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

nlohmann::json subject_header(const Subject& s) {
  return {{"label", s.label}, {"depth", s.config.model.depth}, {"residual", s.config.model.residual},
          {"family", s.config.model.family}};
}

std::vector<double> column(const nlohmann::json& rows, const char* key) {
  std::vector<double> v;
  for (const auto& r : rows) v.push_back(r.at(key).get<double>());
  return v;
}

std::vector<double> iota(size_t n, double start = 0) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + static_cast<double>(i);
  return v;
}

}  // namespace

Subject subject_from_checkpoint(const std::string& path, const c10::Device& device) {
  CheckpointReader reader(path);
  Subject s;
  s.config = reader.config();
  s.model = make_model(s.config.model);
  s.model->to(device);
  reader.load_model(*s.model);
  s.normalizer = reader.contents().normalizer;
  s.label = fmt::format("{} @{}", model_name(s.config.model), reader.contents().state.step);
  return s;
}

Subject subject_from_weights(const std::string& path, const ExperimentConfig& config, const ImageSet& train,
                             const c10::Device& device) {
  Subject s;
  s.config = config;
  s.model = make_model(config.model);
  const WeightsLoad load = load_weights_into(*s.model, path);
  s.model->to(device);
  const bool explicit_one = !config.data.mean.empty();
  const bool from_file = !explicit_one && normalizer_from_metadata(load.metadata, path, &s.normalizer);
  if (!from_file) {
    if (!explicit_one && train.size() == 0)
      throw InputError(path + ": no normaliser in the file, and no training images to fit one on");
    s.normalizer = make_normalizer(train.images, config.data);  // data.mean/data.std, else fitted
  }
  s.note = weights_note(load, config, explicit_one || from_file);
  s.label = model_name(config.model) + " (" + std::filesystem::path(path).filename().string() + ")";
  return s;
}

Subject subject_from_config(const ExperimentConfig& config, const Normalizer& normalizer,
                            const c10::Device& device) {
  Subject s;
  s.config = config;
  at::manual_seed(static_cast<uint64_t>(config.runtime.seed));
  s.model = make_model(config.model);
  s.model->to(device);
  s.normalizer = normalizer;
  s.label = model_name(config.model) + " @init";
  return s;
}

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

std::vector<at::Tensor> feature_maps(Subject& s, const ImageSet& images, int64_t index) {
  struct Rec : ForwardRecorder {
    std::vector<at::Tensor> stages;
    void on_stage(int, const at::Tensor& out) override { stages.push_back(out[0].to(at::kFloat).cpu()); }
  } rec;
  ImageSet one{images.images.narrow(0, index, 1), images.labels.narrow(0, index, 1)};
  forward_all(s, one, 1, rec);
  return rec.stages;
}

nlohmann::json responses_json(std::vector<Subject>& subjects, const ImageSet& images, int64_t batch_size) {
  nlohmann::json out = {{"analysis", "responses"}, {"images", images.size()},
                        {"measure", "mean over channels of the per-channel std of each conv layer's response "
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

nlohmann::json gradients_json(std::vector<Subject>& subjects, const ImageSet& images, int64_t batch_size) {
  nlohmann::json out = {{"analysis", "gradients"}, {"batch", std::min(batch_size, images.size())},
                        {"subjects", nlohmann::json::array()}};
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

nlohmann::json residuals_json(std::vector<Subject>& subjects, const ImageSet& images, int64_t batch_size) {
  nlohmann::json out = {{"analysis", "residuals"}, {"images", images.size()}, {"subjects", nlohmann::json::array()}};
  for (auto& s : subjects) {
    nlohmann::json j = subject_header(s);
    j["blocks"] = nlohmann::json::array();
    auto ratios = residual_ratios(s, images, batch_size);
    for (size_t i = 0; i < ratios.size(); ++i)
      j["blocks"].push_back({{"index", i}, {"stage", s.model->stage_of(i)}, {"ratio", ratios[i].ratio},
                             {"branch_norm", ratios[i].branch_norm}, {"input_norm", ratios[i].input_norm}});
    out["subjects"].push_back(j);
  }
  return out;
}

nlohmann::json lesion_json(std::vector<Subject>& subjects, const ImageSet& test, const LesionOptions& o) {
  nlohmann::json out = {{"analysis", "lesion"}, {"images", test.size()}, {"draws", o.draws},
                        {"subjects", nlohmann::json::array()}};
  for (auto& s : subjects) {
    LesionResult r = lesion_study(s, test, o);
    nlohmann::json j = subject_header(s);
    j["baseline_error"] = r.baseline_error;
    j["single"] = nlohmann::json::array();
    for (size_t i = 0; i < r.single.size(); ++i)
      j["single"].push_back({{"block", i}, {"stage", s.model->stage_of(i)},
                             {"downsampling", s.model->blocks()[i]->changes_shape()}, {"error", r.single[i]}});
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

std::vector<std::string> plot_analysis(const std::string& analysis, const nlohmann::json& result,
                                       const std::string& dir) {
  using plots::Panel;
  using plots::Series;
  auto file = [&](const std::string& name) { return (std::filesystem::path(dir) / name).string(); };
  std::vector<std::string> written;
  const auto& subjects = result.at("subjects");
  if (analysis == "responses") {
    Panel by_layer{"std of layer responses, by layer", "layer index (original order)", "std"};
    Panel sorted{"std of layer responses, sorted by magnitude", "layer rank", "std"};
    for (const auto& s : subjects) {
      std::vector<double> y = column(s["layers"], "std");
      by_layer.series.push_back({s["label"], iota(y.size(), 1), y, {}});
      std::sort(y.begin(), y.end(), std::greater<>());
      sorted.series.push_back({s["label"], iota(y.size(), 1), y, {}});
    }
    written.push_back(file("responses.png"));
    plots::line_plot(written.back(), "Layer responses (He et al. 2015, Fig. 7)", {by_layer, sorted}, 1, 900, 380);
  } else if (analysis == "gradients") {
    Panel blocks{"gradient reaching each block's input", "block index", "|dL/dx|"};
    Panel weights{"gradient of each conv layer's weights", "conv layer index", "|dL/dW|"};
    blocks.logy = weights.logy = true;
    for (const auto& s : subjects) {
      std::vector<double> b = column(s["blocks"], "input_grad_norm"), w = column(s["layers"], "weight_grad_norm");
      blocks.series.push_back({s["label"], iota(b.size()), b, {}});
      weights.series.push_back({s["label"], iota(w.size()), w, {}});
    }
    written.push_back(file("gradients.png"));
    plots::line_plot(written.back(), "Gradient flow: dL/dx = dL/dy (dF/dx + 1)", {blocks, weights}, 1, 900, 380);
  } else if (analysis == "residuals") {
    Panel ratio{"size of each block's residual relative to its input", "block index", "|F(x)| / |x|"};
    for (const auto& s : subjects) {
      std::vector<double> r = column(s["blocks"], "ratio");
      ratio.series.push_back({s["label"], iota(r.size()), r, {}});
    }
    written.push_back(file("residuals.png"));
    plots::line_plot(written.back(), "Residual branches are small: blocks stay near the identity", {ratio}, 1, 900, 420);
  } else if (analysis == "lesion") {
    Panel single{"test error with one block deleted", "deleted block", "test error"};
    Panel random{"test error with k random blocks deleted (mean +- std)", "number of deleted blocks k", "test error"};
    single.style = random.style = "linespoints";
    for (const auto& s : subjects) {
      std::vector<double> e = column(s["single"], "error");
      single.series.push_back({s["label"], iota(e.size()), e, {}});
      single.hlines.push_back({std::string(s["label"]) + " intact", s["baseline_error"]});
      std::vector<double> k = column(s["random"], "k"), mean = column(s["random"], "mean"), sd = column(s["random"], "std");
      random.series.push_back({s["label"], k, mean, sd});
    }
    written.push_back(file("lesion_single.png"));
    plots::line_plot(written.back(), "Deleting single blocks (Veit et al. 2016, Fig. 3)", {single}, 1, 900, 420);
    written.push_back(file("lesion_random.png"));
    plots::line_plot(written.back(), "Deleting several blocks (Veit et al. 2016, Fig. 5a)", {random}, 1, 900, 420);
  } else {
    throw InputError("unknown analysis '" + analysis + "'");
  }
  return written;
}

}  // namespace resnet
