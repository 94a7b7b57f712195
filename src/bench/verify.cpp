#include "bench/verify.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/GradMode.h>
#include <torch/optim/sgd.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include "compat/torch_compat.h"
#include "data/batches.h"
#include "data/cifar10.h"
#include "models/resnet.h"
#include "train/runtime.h"
#include "train/graph_check.h"
#include "train/sgd.h"
#include "train/step.h"
#include "train/trainer.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace resnet {
namespace {

ImageSet random_images(int64_t n, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return {at::randint(0, 256, {n, 3, 32, 32}, gen, at::kLong).to(at::kByte), at::randint(0, 10, {n}, gen, at::kLong)};
}

ResNet fresh_model(const ExperimentConfig& c, const Runtime& rt) {
  at::manual_seed(0);
  ResNet model = make_model(c.model);
  model->to(rt.device);
  if (rt.channels_last) to_channels_last(*model);
  model->train();
  return model;
}

// `steps` steps of TrainStep as the trainer runs them, from a fresh model; `at_step` sees the model
// before each step.
Trajectory train_steps(const ExperimentConfig& c, const Runtime& rt, const ImageSet& data, const Normalizer& norm,
                       int64_t steps, const LrFn& lr, TrainStep::CaptureFault fault = TrainStep::CaptureFault::kNone,
                       const std::function<void(int64_t, ResNetImpl&)>& at_step = {}) {
  ResNet model = fresh_model(c, rt);
  Sgd sgd(model->parameters(), sgd_options(c.train));
  BatchSource source(data, norm, c.train.batch_size, true, 7, rt.device);
  return run_steps(*model, sgd, source, rt, 0, steps, lr, fault, at_step);
}

// The same steps with LibTorch's own optimizer, eager, lr set from the schedule each step.
Trajectory reference_steps(const ExperimentConfig& c, const Runtime& rt, const ImageSet& data, const Normalizer& norm,
                           int64_t steps, const LrFn& lr) {
  ResNet model = fresh_model(c, rt);
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(lr(0))
                                                 .momentum(c.train.momentum)
                                                 .weight_decay(c.train.weight_decay)
                                                 .nesterov(c.train.nesterov));
  BatchSource source(data, norm, c.train.batch_size, true, 7, rt.device);
  Trajectory t;
  for (int64_t i = 0; i < steps; ++i) {
    static_cast<torch::optim::SGDOptions&>(opt.param_groups()[0].options()).lr(lr(i));
    Batch b = source.batch(i);
    at::Tensor x = rt.channels_last ? b.images.contiguous(at::MemoryFormat::ChannelsLast) : b.images;
    opt.zero_grad();
    at::Tensor loss = at::cross_entropy_loss(model->forward(x).to(at::kFloat), b.labels);
    loss.backward();
    opt.step();
    t.losses.push_back(loss.item<double>());
  }
  t.params = cpu_params(*model);
  return t;
}

bool all_equal(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (!at::equal(a[i], b[i])) return false;
  return true;
}

// A training run through the trainer on a small synthetic CIFAR-10 folder; returns summary.json.
nlohmann::json tiny_run(const ExperimentConfig& base, int64_t steps) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "resnet-verify-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("verify: cannot make a temp folder");
  const std::filesystem::path dir = tmpl;
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};
  const int64_t per_file = std::max<int64_t>(8, (2 * base.train.batch_size + 4) / 5);
  for (int i = 1; i <= 5; ++i)
    write_cifar10_file((dir / ("data_batch_" + std::to_string(i) + ".bin")).string(), random_images(per_file, i));
  write_cifar10_file((dir / "test_batch.bin").string(), random_images(64, 99));
  ExperimentConfig c = base;
  c.name = "verify";
  c.data = DataConfig{};
  c.data.dir = (dir / "").string();
  c.train.iterations = steps;
  c.train.epochs = 0;
  c.train.eval_every = steps;
  c.train.checkpoint_every = steps;
  c.train.log_every = steps;
  c.train.eval_batch_size = 64;
  c.train.lr_schedule = LrScheduleConfig{};
  c.train.lr_schedule.type = "constant";
  TrainOptions o;
  o.out_dir = (dir / "run").string();
  o.progress = false;
  o.console = false;
  if (train(c, o) != 0) throw std::runtime_error("verify: the tiny training run was interrupted");
  return read_json_file((dir / "run" / "summary.json").string());
}

}  // namespace

nlohmann::json tally_checks(const nlohmann::json& checks) {
  int64_t ran = 0, skipped = 0;
  bool passed = true;
  for (const auto& check : checks) {
    if (check.contains("skipped")) {
      ++skipped;
    } else {
      ++ran;
      passed = passed && check.value("passed", false);
    }
  }
  return {{"ran", ran}, {"skipped", skipped}, {"passed", ran > 0 && passed}};
}

namespace {

// What every check shares: the config, eager and graph runtimes, the data, the step count and the
// eager reference trajectory.
struct VerifyContext {
  VerifyContext(const ExperimentConfig& c, const Runtime& rt) : config(c), eager(rt), graph(rt) {}
  const ExperimentConfig& config;
  Runtime eager, graph;
  bool cuda = false;
  int64_t capture_step = TrainStep::kWarmupSteps;  // the capture happens at this step
  int64_t n = 0;
  double lr0 = 0;
  ImageSet data;
  Normalizer norm;
  LrFn constant;
};

// (a) graph vs eager: the comparison the trainer's first CUDA run makes on itself (graph_check.h).
nlohmann::json graph_matches_eager(const VerifyContext& v, const Trajectory& ref, const Trajectory& fast) {
  const GraphVerdict g = judge_graph(fast, ref, /*expect_graph=*/v.cuda);
  return {{"name", "graph_matches_eager"},
          {"graph", fast.graph},
          {"steps", v.n},
          {"max_rel_loss_diff", g.loss_diff},
          {"max_rel_weight_diff", g.weight_diff},
          {"bit_identical", all_equal(fast.params, ref.params)},
          {"passed", g.agree}};
}

// (b) lr 0 after the capture: the replays must leave every parameter as it was.
nlohmann::json lr_zero_freezes(const VerifyContext& v) {
  const int64_t freeze = v.capture_step + 2;
  std::vector<at::Tensor> frozen;
  const double lr0 = v.lr0;
  const Trajectory t = train_steps(
      v.config, v.graph, v.data, v.norm, v.n, [&](int64_t i) { return i < freeze ? lr0 : 0.0; },
      TrainStep::CaptureFault::kNone,
      [&](int64_t i, ResNetImpl& m) {
        if (i == freeze) frozen = cpu_params(m);
      });
  return {{"name", "lr_zero_freezes"},
          {"graph", t.graph},
          {"frozen_from_step", freeze},
          {"passed", t.graph == v.cuda && all_equal(frozen, t.params)}};
}

// (c) a milestone during the replays, against torch::optim::SGD. A run that kept the first lr
// (a graph with the lr baked in: `fast`) sets the scale the error is measured against.
nlohmann::json milestone_follows(const VerifyContext& v, const Trajectory& fast) {
  const int64_t milestone = v.capture_step + 4;
  const double lr0 = v.lr0;
  const LrFn schedule = [&](int64_t i) { return i < milestone ? lr0 : lr0 * 0.1; };
  const Trajectory t = train_steps(v.config, v.graph, v.data, v.norm, v.n, schedule);
  const Trajectory torch_ref = reference_steps(v.config, v.eager, v.data, v.norm, v.n, schedule);
  const double error = weight_gap(t.params, torch_ref.params);
  const double baked = weight_gap(fast.params, torch_ref.params);  // lr0 all along
  return {{"name", "milestone_follows"},
          {"graph", t.graph},
          {"milestone", milestone},
          {"max_rel_weight_diff", error},
          {"max_rel_loss_diff", loss_gap(t, torch_ref)},
          {"without_milestone_diff", baked},
          {"passed", t.graph == v.cuda && baked > 0 && error <= 0.01 * baked}};
}

// (e) a failed capture falls back to plain eager steps.
nlohmann::json falls_back(const VerifyContext& v, const Trajectory& ref, const char* name,
                          TrainStep::CaptureFault fault) {
  if (!v.cuda) return {{"name", name}, {"skipped", "needs CUDA"}};
  const Trajectory t = train_steps(v.config, v.graph, v.data, v.norm, v.n, v.constant, fault);
  const GraphVerdict g = judge_graph(t, ref, /*expect_graph=*/false);  // eager after the failure
  return {{"name", name},
          {"capture_failed", t.capture_failed},
          {"graph", t.graph},
          {"max_rel_loss_diff", g.loss_diff},
          {"max_rel_weight_diff", g.weight_diff},
          {"passed", t.capture_failed && g.agree}};
}

// (d) the run's own summary says how it trained. Last: train() applies the run's own runtime
// (cuDNN benchmark on, on CUDA), which the checks above must not run under.
nlohmann::json summary_says_graph(const VerifyContext& v) {
  ExperimentConfig c = v.config;
  c.runtime.precision = "fp32";
  const nlohmann::json summary = tiny_run(c, v.capture_step + 3);
  const bool expected = resolve_runtime(c.runtime).cuda_graph;
  return {{"name", "summary_says_graph"},
          {"cuda_graph", summary["cuda_graph"]},
          {"expected", expected},
          {"passed", summary["cuda_graph"] == expected}};
}

}  // namespace

nlohmann::json run_verify(const ExperimentConfig& config, int64_t steps) {
  Runtime rt = resolve_runtime(config.runtime);
  rt.bf16 = false;             // fp32: graph and eager must agree to rounding
  rt.cudnn_benchmark = false;  // the same convolution algorithms on both sides
  apply_runtime(rt);
  if (rt.device.is_cuda()) at::globalContext().setDeterministicCuDNN(true);
  VerifyContext v(config, rt);  // eager and graph start from the same runtime
  v.cuda = rt.device.is_cuda();
  v.eager.cuda_graph = false;
  v.graph.cuda_graph = v.cuda;  // the graph where there is one; eager again on the CPU
  v.n = std::max<int64_t>(steps, v.capture_step + 8);
  v.lr0 = config.train.lr;
  v.data = random_images(config.train.batch_size * 4, 1);
  v.norm = fit_normalizer(v.data.images, "channel");
  const double lr0 = v.lr0;
  v.constant = [lr0](int64_t) { return lr0; };

  const Trajectory ref = train_steps(config, v.eager, v.data, v.norm, v.n, v.constant);
  const Trajectory fast = train_steps(config, v.graph, v.data, v.norm, v.n, v.constant);
  nlohmann::json checks = nlohmann::json::array();
  checks.push_back(graph_matches_eager(v, ref, fast));
  checks.push_back(lr_zero_freezes(v));
  checks.push_back(milestone_follows(v, fast));
  checks.push_back(falls_back(v, ref, "fallback_after_throw", TrainStep::CaptureFault::kThrow));
  checks.push_back(falls_back(v, ref, "fallback_after_sync", TrainStep::CaptureFault::kHostSync));
  checks.push_back(summary_says_graph(v));

  nlohmann::json out = {{"mode", "verify"},
                        {"model", model_name(config.model)},
                        {"batch", config.train.batch_size},
                        {"device", compat::device_name(rt.device)},
                        {"threads", rt.threads},
                        {"torch_version", compat::torch_version()},
                        {"precision", "fp32"},
                        {"channels_last", rt.channels_last},
                        {"checks", checks}};
  out.update(tally_checks(checks));
  return out;
}

}  // namespace resnet
