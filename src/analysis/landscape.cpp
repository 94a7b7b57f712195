#include "analysis/landscape.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>
#include <c10/core/GradMode.h>
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "analysis/helpers.h"
#include "analysis/plots.h"
#include "analysis/registry.h"
#include "analysis/sharding.h"
#include "analysis/surface_plot.h"
#include "eval/evaluate.h"
#include "interop/weights_file.h"
#include "util/duration.h"
#include "util/errors.h"
#include "util/json_io.h"
#include "util/sha256.h"

namespace resnet {
namespace {

// Every float tensor of the model's state by name (parameters, then buffers).
std::map<std::string, at::Tensor> float_state(const ResNetImpl& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : model.named_parameters()) out[p.key()] = p.value();
  for (const auto& b : model.named_buffers())
    if (b.value().is_floating_point()) out[b.key()] = b.value();
  return out;
}

// The model at θ + αδ + βη for the scope (set_point); θ is put back when it ends.
class PerturbedModel {
 public:
  PerturbedModel(ResNetImpl& model, const Directions& d) : state_(float_state(model)) {
    const auto device = model.parameters().front().device();
    for (const auto& [name, t] : d.delta) {
      base_.emplace_back(name, state_.at(name).detach().clone());
      delta_.push_back(t.to(device));
    }
    for (const auto& [name, t] : d.eta) eta_.push_back(t.to(device));
  }
  ~PerturbedModel() { set(0, 0); }
  void set(double alpha, double beta) {
    c10::NoGradGuard no_grad;
    for (size_t i = 0; i < base_.size(); ++i) {
      at::Tensor v = at::add(base_[i].second, delta_[i], alpha);  // θ + αδ (+ βη)
      if (!eta_.empty()) v.add_(eta_[i], beta);
      state_.at(base_[i].first).copy_(v);
    }
  }

 private:
  std::map<std::string, at::Tensor> state_;
  NamedTensors base_;
  std::vector<at::Tensor> delta_, eta_;
};

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }
double number_or_nan(const nlohmann::json& v) { return v.is_number() ? v.get<double>() : std::nan(""); }

// The first top-level key where two argument sets differ, as "key: the file has X, this run Y".
std::string first_difference(const nlohmann::json& file, const nlohmann::json& now) {
  for (const auto& [k, v] : now.items())
    if (!file.contains(k) || file.at(k) != v)
      return fmt::format("{}: the file has {}, this run {}", k, file.contains(k) ? file.at(k).dump() : "none",
                         v.dump());
  return "other arguments";
}

// One line of a points file; false when it is not a point of this grid.
bool parse_point(const std::string& line, const std::vector<double>& axis, int64_t points, at::Tensor& table) {
  // Bounded nesting (util/json_io.h): a point line is flat; a deep one is refused, not recursed into.
  nlohmann::json j = parse_json_or_null(line, "a landscape point").value_or(nlohmann::json());
  if (!j.is_object() || !j.contains("i") || !j["i"].is_number_integer()) return false;
  const int64_t i = j["i"].get<int64_t>(), n = static_cast<int64_t>(axis.size());
  if (i < 0 || i >= points || !j.contains("alpha") || !j["alpha"].is_number() || !j.contains("beta") ||
      !j["beta"].is_number() || !j.contains("loss") || !j.contains("error"))
    return false;
  const double beta = points == n ? 0.0 : axis[static_cast<size_t>(i / n)];
  if (std::abs(j["alpha"].get<double>() - axis[static_cast<size_t>(i % n)]) > 1e-9 ||
      std::abs(j["beta"].get<double>() - beta) > 1e-9)
    return false;
  table[i][0] = number_or_nan(j["loss"]);
  table[i][1] = number_or_nan(j["error"]);
  table[i][2] = 1.0;
  return true;
}

// Reads the points already written into `table` (loss, error, done); a missing file is started
// with its key line. A torn last line (a crash while appending) is dropped from the file.
void read_points(const std::string& file, const nlohmann::json& key, const std::vector<double>& axis,
                 at::Tensor& table) {
  const nlohmann::json header = {{"landscape_points", 1}, {"key", key}};
  if (!std::filesystem::exists(file)) return write_file_atomic(file, header.dump() + "\n");
  const std::string text = read_text_file(file);
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  nlohmann::json first =
      lines.empty() ? nlohmann::json() : parse_json_or_null(lines[0], file + " line 1").value_or(nlohmann::json());
  if (!first.is_object() || !first.contains("key") || !first.contains("landscape_points"))
    throw InputError(
        file + ": not a landscape points file (its first line is not a landscape key); remove it or use another --out");
  if (first["key"] != key)
    throw InputError(file + ": holds a partial landscape made with other arguments (" +
                     excerpt(first_difference(first["key"], key), 200) + "); use another --out or remove it");
  std::string kept = lines[0] + "\n";
  for (size_t k = 1; k < lines.size(); ++k) {
    bool point = false;
    try {
      point = parse_point(lines[k], axis, table.size(0), table);
    } catch (const InputError& e) {
      throw InputError(fmt::format("{} line {}: {}", file, k + 1, e.what()));
    }
    if (point) kept += lines[k] + "\n";
    else if (k + 1 < lines.size())  // only the last line may be cut short (a crash while appending)
      throw InputError(
          fmt::format("{}: line {} is not a point of this landscape; remove the file to start again", file, k + 1));
  }
  if (kept != text) write_file_atomic(file, kept);
}

std::string point_line(int64_t i, const std::vector<double>& axis, bool two_d, double loss, double error) {
  const size_t n = axis.size();
  nlohmann::json j = {{"i", i},
                      {"alpha", axis[static_cast<size_t>(i) % n]},
                      {"beta", two_d ? axis[static_cast<size_t>(i) / n] : 0.0},
                      {"loss", number_or_null(loss)},
                      {"error", number_or_null(error)}};
  return j.dump() + "\n";
}

nlohmann::json landscape_key(const Subject& s, const Subject* to, const nlohmann::json& images,
                             const LandscapeOptions& o) {
  nlohmann::json key = {{"analysis", "landscape"}, {"kind", o.kind},
                        {"grid", o.grid},          {"range", o.range},
                        {"seed", o.seed},          {"include_bn", o.include_bn},
                        {"images", images},        {"precision", o.bf16 ? "bf16" : "fp32"},
                        {"subject", s.label},      {"weights_sha256", state_digest(*s.model)}};
  if (to) key["to"] = {{"subject", to->label}, {"weights_sha256", state_digest(*to->model)}};
  if (o.kind == "interpolate") key.erase("seed"), key.erase("include_bn");  // no random direction
  return key;
}

void check_interpolation(const std::vector<Subject>& subjects) {
  if (subjects.size() != 2)
    throw InputError(fmt::format("landscape --kind interpolate: give exactly two models (got {})", subjects.size()));
  if (to_json(subjects[0].config)["model"] != to_json(subjects[1].config)["model"])
    throw InputError("landscape --kind interpolate: " + subjects[0].label + " and " + subjects[1].label +
                     " are different networks (their model sections differ)");
}

// The grid's values as rows over beta (2-D: [beta][alpha]) or one row (1-D).
nlohmann::json grid_values(const at::Tensor& v, size_t n, bool two_d) {
  auto a = v.accessor<double, 1>();
  auto row = [&](size_t j) {
    nlohmann::json r = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i) r.push_back(number_or_null(a[static_cast<int64_t>(j * n + i)]));
    return r;
  };
  if (!two_d) return row(0);
  nlohmann::json rows = nlohmann::json::array();
  for (size_t j = 0; j < n; ++j) rows.push_back(row(j));
  return rows;
}

nlohmann::json subject_result(const Subject& s, const LandscapeGrid& g, bool two_d) {
  const size_t n = g.axis.size();
  nlohmann::json j = subject_header(s);
  j.update({{"axis", g.axis},
            {"loss", grid_values(g.loss, n, two_d)},
            {"error", grid_values(g.error, n, two_d)},
            {"points_computed", g.computed},
            {"points_resumed", g.resumed},
            {"seconds_per_point", g.seconds_per_point}});
  const at::Tensor finite = g.loss.masked_select(at::isfinite(g.loss));
  if (finite.numel()) j["min_loss"] = finite.min().item<double>(), j["max_loss"] = finite.max().item<double>();
  return j;
}

}  // namespace

void filter_normalize(at::Tensor& d, const at::Tensor& w, bool include_bn) {
  c10::NoGradGuard no_grad;
  const at::Tensor wf = w.detach().to(d.device(), d.scalar_type());
  if (d.dim() <= 1) {
    // Each entry is its own filter: |d_j| = |θ_j|.
    if (include_bn) d.copy_(d.sign() * wf.abs());
    else d.zero_();
    return;
  }
  at::Tensor rows = d.view({d.size(0), -1});
  rows.mul_(wf.reshape({w.size(0), -1}).norm(2, {1}, true) / rows.norm(2, {1}, true).clamp_min(1e-10));
}

NamedTensors random_direction(const ResNetImpl& model, at::Generator& gen, bool include_bn) {
  NamedTensors out;
  for (const auto& p : model.named_parameters()) {
    at::Tensor d = at::randn(p.value().sizes(), gen, at::TensorOptions().dtype(at::kFloat));
    filter_normalize(d, p.value(), include_bn);
    out.emplace_back(p.key(), d);
  }
  return out;
}

Directions make_directions(const ResNetImpl& from, const ResNetImpl* to, const LandscapeOptions& o) {
  Directions d;
  if (o.kind == "interpolate") {
    if (!to) throw std::invalid_argument("interpolation needs the second model");
    const auto target = float_state(*to);
    for (const auto& [name, t] : float_state(from))
      d.delta.emplace_back(name,
                           (target.at(name).detach().to(at::kCPU, at::kFloat) - t.detach().to(at::kCPU, at::kFloat)));
    return d;
  }
  at::Generator gen = item_generator(o.seed, 0, 0);
  d.delta = random_direction(from, gen, o.include_bn);
  if (o.kind == "surface") d.eta = random_direction(from, gen, o.include_bn);
  return d;
}

void write_directions(const std::string& path, const Directions& d, const nlohmann::json& metadata) {
  NamedTensors all;
  for (const auto& [name, t] : d.delta) all.emplace_back("delta." + name, t);
  for (const auto& [name, t] : d.eta) all.emplace_back("eta." + name, t);
  write_weights(path, WeightsFormat::kSafetensors, all, metadata);
}

std::vector<double> landscape_axis(const LandscapeOptions& o) {
  const double lo = -o.range, hi = o.kind == "interpolate" ? 1.0 + o.range : o.range;
  if (o.grid <= 1) return {o.kind == "interpolate" ? 0.0 : 0.0};
  std::vector<double> axis;
  for (int64_t i = 0; i < o.grid; ++i)
    axis.push_back(lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(o.grid - 1));
  return axis;
}

std::string state_digest(const ResNetImpl& model) {
  std::string bytes;
  auto add = [&](const std::string& name, const at::Tensor& t) {
    const at::Tensor c = t.detach().to(at::kCPU).contiguous();
    bytes += name;
    for (int64_t size : c.sizes()) bytes += "," + std::to_string(size);
    bytes.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  };
  for (const auto& p : model.named_parameters()) add(p.key(), p.value());
  for (const auto& b : model.named_buffers()) add(b.key(), b.value());
  return sha256_hex(bytes);
}

LandscapeGrid landscape_grid(Subject& s, const ImageSet& images, const Directions& d, const LandscapeOptions& o,
                             Communicator& comm, const std::string& points_file, const nlohmann::json& key) {
  LandscapeGrid g;
  g.axis = landscape_axis(o);
  const bool two_d = !d.eta.empty();
  const int64_t n = static_cast<int64_t>(g.axis.size()), points = two_d ? n * n : n;
  at::Tensor table = at::zeros({points, 3}, at::kDouble);  // loss, error, done
  // Rank 0 reads (and may refuse) the points file; every rank learns whether it did.
  comm.agree("landscape: reading the points written", [&] {
    if (comm.writer()) read_points(points_file, key, g.axis, table);
  });
  comm.broadcast({table}, "landscape: the points already written");
  std::vector<int64_t> todo;
  for (int64_t i = 0; i < points; ++i)
    if (table.accessor<double, 2>()[i][2] == 0) todo.push_back(i);
  g.resumed = points - static_cast<int64_t>(todo.size());
  ProgressLine progress(comm.writer(), "landscape " + s.label, "point", points);
  progress.update(g.resumed, 0);
  const EvalOptions eval(o.batch_size, o.channels_last, o.bf16);
  const auto start = std::chrono::steady_clock::now();
  {
    PerturbedModel at_point(*s.model, d);
    const int64_t rounds = (static_cast<int64_t>(todo.size()) + comm.size() - 1) / comm.size();
    for (int64_t r = 0; r < rounds; ++r) {
      at::Tensor round = at::zeros_like(table);
      const int64_t j = r * comm.size() + comm.rank();
      if (j < static_cast<int64_t>(todo.size())) {
        const int64_t i = todo[static_cast<size_t>(j)];
        at_point.set(g.axis[static_cast<size_t>(i % n)], two_d ? g.axis[static_cast<size_t>(i / n)] : 0.0);
        const EvalResult e = evaluate(*s.model, images, s.normalizer, eval);
        auto a = round.accessor<double, 2>();
        a[i][0] = e.loss, a[i][1] = e.error, a[i][2] = 1.0;
      }
      comm.sum(round, "landscape: a round of grid points");
      g.computed += round.select(1, 2).sum().item<int64_t>();  // by all ranks: the job's rate
      std::string lines;
      auto a = round.accessor<double, 2>();
      for (int64_t i = 0; i < points; ++i)
        if (a[i][2] == 1.0) lines += point_line(i, g.axis, two_d, a[i][0], a[i][1]);
      comm.agree("landscape: writing a round of points", [&] {
        if (comm.writer() && !lines.empty()) append_file(points_file, lines);
      });
      table += round;
      progress.update(table.select(1, 2).sum().item<int64_t>(), g.computed);
    }
  }
  progress.finish();
  const double seconds = seconds_since(start);
  g.seconds_per_point = g.computed ? seconds / static_cast<double>(g.computed) : 0.0;
  g.loss = table.select(1, 0).clone();
  g.error = table.select(1, 1).clone();
  return g;
}

nlohmann::json landscape_json(std::vector<Subject>& subjects, const ImageSet& images, const nlohmann::json& images_desc,
                              const LandscapeOptions& o, Communicator& comm, const std::string& dir) {
  const bool interpolate = o.kind == "interpolate";
  if (interpolate) check_interpolation(subjects);
  nlohmann::json out = {{"analysis", "landscape"},
                        {"kind", o.kind},
                        {"grid", o.grid},
                        {"range", o.range},
                        {"seed", o.seed},
                        {"include_bn", o.include_bn},
                        {"filter_normalized", !interpolate},
                        {"images", images_desc},
                        {"precision", o.bf16 ? "bf16" : "fp32"},
                        {"measure",
                         "mean cross-entropy and top-1 error at theta + alpha delta + beta eta, "
                         "BN in eval mode, no augmentation"},
                        {"subjects", nlohmann::json::array()}};
  const size_t count = interpolate ? 1 : subjects.size();
  for (size_t i = 0; i < count; ++i) {
    Subject& s = subjects[i];
    const Subject* to = interpolate ? &subjects[1] : nullptr;
    const Directions d = make_directions(*s.model, to ? to->model.get() : nullptr, o);
    const nlohmann::json key = landscape_key(s, to, images_desc, o);
    const std::string dirs = fmt::format("directions_{}.safetensors", i), points = fmt::format("landscape_{}.jsonl", i);
    auto path = [&](const std::string& f) { return (std::filesystem::path(dir) / f).string(); };
    comm.agree("landscape: writing the directions", [&] {
      if (comm.writer()) write_directions(path(dirs), d, key);
    });
    const LandscapeGrid g = landscape_grid(s, images, d, o, comm, path(points), key);
    nlohmann::json j = subject_result(s, g, !d.eta.empty());
    j["directions"] = dirs;
    j["points"] = points;
    if (to) j["to"] = to->label;
    out["subjects"].push_back(j);
  }
  return out;
}

std::vector<std::string> plot_landscape(const nlohmann::json& result, const std::string& dir) {
  auto path = [&](const std::string& f) { return (std::filesystem::path(dir) / f).string(); };
  const std::string kind = result.at("kind");
  std::vector<std::string> written;
  if (kind == "surface") {
    std::vector<plots::SurfacePanel> panels;
    for (const auto& s : result.at("subjects")) {
      plots::SurfacePanel p{s.at("label"), s.at("axis"), s.at("axis"), {}};
      for (const auto& row : s.at("loss"))
        for (const auto& v : row) p.z.push_back(number_or_nan(v));
      panels.push_back(p);
    }
    plots::SurfaceStyle st = plots::common_scale(panels, 10.0);
    st.xlabel = "alpha (direction delta)", st.ylabel = "beta (direction eta)", st.zlabel = "training loss";
    const std::string title = fmt::format("Loss landscape (Li et al. 2018), clipped at {:.3g}", st.zmax);
    written.push_back(path("landscape_contour.png"));
    plots::contour_plot(written.back(), title, panels, st);
    written.push_back(path("landscape_surface.png"));
    plots::surface_plot(written.back(), title, panels, st);
    return written;
  }
  plots::Panel loss{"loss", kind == "interpolate" ? "alpha (0: first model, 1: second)" : "alpha", "cross-entropy"};
  plots::Panel error{"top-1 error", loss.xlabel, "error"};
  for (const auto& s : result.at("subjects")) {
    std::vector<double> l, e;
    for (const auto& v : s.at("loss")) l.push_back(number_or_nan(v));
    for (const auto& v : s.at("error")) e.push_back(number_or_nan(v));
    const std::string label = s.contains("to")
                                  ? s.at("label").get<std::string>() + " -> " + s.at("to").get<std::string>()
                                  : s.at("label").get<std::string>();
    loss.series.push_back({label, s.at("axis"), l, {}});
    error.series.push_back({label, s.at("axis"), e, {}});
  }
  written.push_back(path("landscape.png"));
  plots::line_plot(written.back(),
                   kind == "interpolate" ? "Linear interpolation between two models"
                                         : "Loss along a filter-normalised random direction",
                   {loss, error}, 2, 620, 440);
  return written;
}

namespace {

// resnet-analyze landscape: the flags, their defaults, and the run over the ranks.
class Landscape final : public Analysis {
 public:
  std::string name() const override { return "landscape"; }
  std::string summary() const override { return "loss surfaces around each net (Li et al. 2018), over the ranks"; }
  void add_flags(CLI::App& app) override {
    add_split_flags(app, images_, 2000, "the random directions");  // Li et al. evaluate on the training set too
    app.add_option("--batch", batch_, "evaluation batch (default 500)")->check(CLI::PositiveNumber);
    app.add_option("--kind", kind_, "surface (2-D, default) | line (1-D) | interpolate (two models)")
        ->check(CLI::IsMember({"surface", "line", "interpolate"}));
    app.add_option("--grid", grid_, "points per axis (default 21; 41 in 1-D)")->check(CLI::Range(2, 1001));
    app.add_option("--range", range_, "alpha, beta in [-R, R] (interpolate: [-R, 1 + R]; default 1, 0.5)")
        ->check(CLI::Range(0.0, 1e6));
    app.add_flag("--include-bn", include_bn_, "also perturb biases and BN parameters");
  }
  bool needs_train_images() const override { return images_.split == "train"; }
  bool splits_over_ranks() const override { return true; }

  nlohmann::json run(AnalysisInputs& in) override {
    nlohmann::json desc;
    const ImageSet set = named_images(in.data, images_.split, images_.images, desc);
    LandscapeOptions o;
    o.kind = kind_;
    o.grid = grid_ > 0 ? grid_ : (kind_ == "surface" ? 21 : 41);
    o.range = range_ >= 0 ? range_ : (kind_ == "interpolate" ? 0.5 : 1.0);
    o.seed = images_.seed;
    o.include_bn = include_bn_;
    o.batch_size = batch_;
    o.bf16 = in.runtime.bf16;
    o.channels_last = in.runtime.channels_last;
    if (o.channels_last)
      for (auto& s : in.subjects) to_channels_last(*s.model);
    return landscape_json(in.subjects, set, desc, o, in.comm, in.out_dir);
  }
  std::vector<std::string> plot(const nlohmann::json& result, const std::string& dir) override {
    return plot_landscape(result, dir);
  }

 private:
  SplitFlags images_;
  int64_t batch_ = 500;
  std::string kind_ = "surface";
  int64_t grid_ = 0;   // 0: 21 (surface), 41 (line, interpolate)
  double range_ = -1;  // < 0: 1 (surface, line), 0.5 (interpolate)
  bool include_bn_ = false;
};

}  // namespace

std::unique_ptr<Analysis> make_landscape_analysis() { return std::make_unique<Landscape>(); }

}  // namespace resnet
