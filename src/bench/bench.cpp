#include "bench/bench.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <unistd.h>
#include <filesystem>
#include <fstream>

#include "compat/torch_compat.h"
#include "data/batches.h"
#include "data/cifar10.h"
#include "eval/evaluate.h"
#include "models/resnet.h"
#include "train/checkpoint.h"
#include "train/runtime.h"
#include "train/sgd.h"
#include "train/step.h"
#include "train/trainer.h"
#include "bench/conv_limit.h"
#include "bench/verify.h"
#include "util/duration.h"
#include "util/errors.h"
#include "util/json_io.h"

#if defined(RESNET_WITH_CUDA)
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace resnet {
namespace {

using Clock = std::chrono::steady_clock;

void device_sync(const c10::Device& d) {
#if defined(RESNET_WITH_CUDA)
  if (d.is_cuda()) c10::cuda::device_synchronize();
#endif
}

ImageSet random_images(int64_t n) {
  at::Generator gen = at::detail::createCPUGenerator(0);
  return {at::randint(0, 256, {n, 3, 32, 32}, gen, at::kLong).to(at::kByte), at::randint(0, 10, {n}, gen, at::kLong)};
}

ResNet build(const ExperimentConfig& c, const Runtime& rt) {
  at::manual_seed(0);
  ResNet model = make_model(c.model);
  model->to(rt.device);
  if (rt.channels_last) to_channels_last(*model);
  return model;
}

// Times `fn` over `steps` calls after `warmup` calls; returns seconds per call.
template <typename Fn>
double time_per_call(const c10::Device& device, int64_t warmup, int64_t steps, Fn fn) {
  for (int64_t i = 0; i < warmup; ++i) fn(i);
  device_sync(device);
  const auto start = Clock::now();
  for (int64_t i = 0; i < steps; ++i) fn(warmup + i);
  device_sync(device);
  return seconds_since(start) / static_cast<double>(steps);
}

// Checkpoint write and read (resnet-bench --mode checkpoint): `steps` saves of the model with its
// momentum and a normaliser, then `steps` reads of the file with the weights loaded into a model
// and the momentum into an optimizer, as resume does. The median of each, and the file's size.
nlohmann::json time_checkpoints(const ExperimentConfig& c, const Runtime& rt, int64_t steps) {
  ResNet model = build(c, rt);
  Sgd sgd(model->parameters(), sgd_options(c.train));
  for (auto& m : sgd.momentum_buffers()) m.normal_();
  const ImageSet images = random_images(64);
  CheckpointContents contents{to_json(c), TrainState{}, fit_normalizer(images.images, "channel"), "bench",
                              nlohmann::json::array()};
  const auto dir = std::filesystem::temp_directory_path() / ("resnet-bench-ckpt-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "last.ckpt").string();
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::vector<double> writes, reads;
  try {
    for (int64_t i = 0; i < steps; ++i) {
      const auto start = Clock::now();
      save_checkpoint(path, contents, *model, &sgd);
      writes.push_back(seconds_since(start));
    }
    for (int64_t i = 0; i < steps; ++i) {
      const auto start = Clock::now();
      CheckpointReader reader(path);
      reader.load_model(*model);
      reader.load_optimizer(sgd, *model);
      reads.push_back(seconds_since(start));
    }
  } catch (...) {
    std::filesystem::remove_all(dir);
    throw;
  }
  const auto bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  std::filesystem::remove_all(dir);
  return {{"parameters", count_parameters(*model)},
          {"bytes", bytes},
          {"repeats", steps},
          {"write_s", median(writes)},
          {"read_s", median(reads)}};
}

// bare: the model step alone on one fixed batch; step: the trainer's step (batches, augmentation,
// the graph where enabled).
nlohmann::json bench_steps(const ExperimentConfig& c, const BenchOptions& o, const Runtime& rt, nlohmann::json out) {
  const int64_t batch = c.train.batch_size;
  ResNet model = build(c, rt);
  model->train();
  Sgd sgd(model->parameters(), sgd_options(c.train));
  sgd.set_lr(c.train.lr);
  ImageSet images = random_images(batch * 4);
  Normalizer norm = fit_normalizer(images.images, "channel");
  double seconds = 0;
  bool graph = false;
  if (o.mode == "bare") {
    // Fixed batch, prepared once: only the model's work is timed.
    at::Tensor x = norm(images.images.narrow(0, 0, batch)).to(rt.device);
    if (rt.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor y = images.labels.narrow(0, 0, batch).to(rt.device);
    seconds = time_per_call(rt.device, o.warmup, o.steps,
                            [&](int64_t) { model_step(*model, sgd, x, y, rt.device, rt.bf16); });
  } else {
    BatchSource source(images, norm, batch, true, 0, rt.device);
    TrainStep step(*model, sgd, source, rt, nullptr);
    seconds = time_per_call(rt.device, o.warmup, o.steps, [&](int64_t i) { step.run(i, c.train.lr); });
    graph = step.graph_active();
    out["train_loss"] = step.take_totals().loss_sum / static_cast<double>((o.warmup + o.steps) * batch);
  }
  out["cuda_graph"] = graph;
  out["steps"] = o.steps;
  out["ms_per_step"] = 1000.0 * seconds;
  out["images_per_sec"] = static_cast<double>(batch) / seconds;
  return out;
}

// Evaluation throughput on the test set (or 10,000 synthetic images).
nlohmann::json bench_eval(const ExperimentConfig& c, const BenchOptions& o, const Runtime& rt, nlohmann::json out) {
  ResNet model = build(c, rt);
  ImageSet set;
  std::string source = "synthetic";
  if (!o.data_dir.empty() || !c.data.dir.empty() || std::getenv("CIFAR10_DIR")) {
    set = load_cifar10(resolve_data_dir(o.data_dir, c.data), false).test;
    source = "cifar10-test";
  } else {
    set = random_images(10000);
  }
  Normalizer norm = fit_normalizer(set.images, "channel");
  EvalOptions eo{c.train.eval_batch_size, rt.channels_last, rt.bf16};
  const double seconds = time_per_call(rt.device, o.warmup > 0 ? 1 : 0, std::max<int64_t>(1, o.steps / 10),
                                       [&](int64_t) { evaluate(*model, set, norm, eo); });
  out["images"] = set.size();
  out["source"] = source;
  out["eval_batch"] = c.train.eval_batch_size;
  out["seconds_per_pass"] = seconds;
  out["images_per_sec"] = static_cast<double>(set.size()) / seconds;
  return out;
}

// A whole run through the trainer, end to end.
nlohmann::json bench_train(const ExperimentConfig& c, const BenchOptions& o, nlohmann::json out) {
  const int64_t batch = c.train.batch_size;
  const auto dir = std::filesystem::temp_directory_path() / ("resnet-bench-" + std::to_string(::getpid()));
  TrainOptions to;
  to.out_dir = dir.string();
  to.data_dir = o.data_dir;
  to.force = true;
  to.progress = false;
  to.console = false;
  const auto start = Clock::now();
  int rc = 0;
  try {
    rc = train(c, to);
  } catch (...) {
    std::filesystem::remove_all(dir);
    throw;
  }
  const double wall = seconds_since(start);
  nlohmann::json summary = read_json_file((dir / "summary.json").string());
  // The last two evaluation rows bracket the last evaluation period: its steps, its evaluation
  // and the checkpoint before it, without the run's start-up (with train.epochs >= 2 and
  // eval_every 0, one whole steady-state epoch).
  std::vector<nlohmann::json> rows;
  {
    std::ifstream metrics(dir / "metrics.jsonl");
    for (std::string line; std::getline(metrics, line);) rows.push_back(nlohmann::json::parse(line));
  }
  std::filesystem::remove_all(dir);
  if (rc != 0) throw std::runtime_error("benchmark run was interrupted");
  const double images = static_cast<double>(summary["steps"].get<int64_t>() * batch);
  out["cuda_graph"] = summary["cuda_graph"];
  out["steps"] = summary["steps"];
  out["wall_s"] = wall;
  out["images_per_sec"] = images / wall;                    // end to end: data, augmentation, steps, evaluation
  out["train_images_per_sec"] = summary["images_per_sec"];  // training steps alone
  // Where the wall time went: steps, evaluation, and the rest (loading, checkpoints, setup).
  out["train_s"] = summary["train_time_s"];
  out["eval_s"] = summary["eval_time_s"];
  out["other_s"] = wall - summary["train_time_s"].get<double>() - summary["eval_time_s"].get<double>();
  out["ms_per_step"] = 1000.0 * wall / summary["steps"].get<double>();
  out["test_error"] = summary["final_test_error"];
  if (rows.size() >= 2) {
    const auto& last = rows.back();
    const auto& before = rows[rows.size() - 2];
    const double seconds = last["elapsed_s"].get<double>() - before["elapsed_s"].get<double>();
    const int64_t steps = last["step"].get<int64_t>() - before["step"].get<int64_t>();
    out["last_period_s"] = seconds;
    out["last_period_images_per_sec"] = static_cast<double>(steps * batch) / seconds;
  }
  return out;
}

}  // namespace

nlohmann::json run_bench(const ExperimentConfig& c, const BenchOptions& o) {
  if (o.steps < 1 || o.warmup < 0) throw InputError("--steps must be >= 1 and --warmup >= 0");
  if (o.mode == "verify") return run_verify(c, o.steps);
  Runtime rt = resolve_runtime(c.runtime);
  apply_runtime(rt);
  nlohmann::json out = {{"mode", o.mode},
                        {"model", model_name(c.model)},
                        {"batch", c.train.batch_size},
                        {"precision", rt.bf16 ? "bf16" : "fp32"},
                        {"channels_last", rt.channels_last},
                        {"device", compat::device_name(rt.device)},
                        {"threads", rt.threads},
                        {"torch_version", compat::torch_version()}};
  if (!rt.warnings.empty()) out["warnings"] = rt.warnings;
  if (o.mode == "bare" || o.mode == "step") return bench_steps(c, o, rt, out);
  if (o.mode == "eval") return bench_eval(c, o, rt, out);
  if (o.mode == "train") return bench_train(c, o, out);
  if (o.mode == "convs") {
    out.update(time_convolutions(c, rt, o.warmup, o.steps));
    return out;
  }
  if (o.mode == "checkpoint") {
    out.update(time_checkpoints(c, rt, o.steps));
    return out;
  }
  throw InputError("--mode: '" + o.mode + "' is not one of bare|step|eval|train|verify|checkpoint|convs");
}

}  // namespace resnet
