#include "train/trainer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>

#include "compat/torch_compat.h"
#include "data/batches.h"
#include "data/cifar10.h"
#include "dist/dist.h"
#include "eval/evaluate.h"
#include "interop/weights.h"
#include "models/resnet.h"
#include "train/checkpoint.h"
#include "train/lr_schedule.h"
#include "train/run_dir.h"
#include "train/runtime.h"
#include "train/sgd.h"
#include "train/step.h"
#include "util/errors.h"
#include "util/json_io.h"

#if defined(RESNET_WITH_TENSORBOARD)
#include "tensorboard/event_writer.h"
#endif

namespace resnet {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// ---- signals: finish the step, checkpoint, exit 130/143 -----------------------------------
std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal.store(sig); }

class SignalScope {
 public:
  SignalScope() {
    g_signal.store(0);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalScope() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

// ---- console: log lines, and a live progress line on a terminal ---------------------------
class ConsoleSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit ConsoleSink(bool tty) : tty_(tty) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    if (tty_) std::fputs("\r\033[K", stdout);  // clear the progress line first
    std::fwrite(buf.data(), 1, buf.size(), stdout);
    std::fflush(stdout);
  }
  void flush_() override { std::fflush(stdout); }

 private:
  bool tty_;
};

std::string format_duration(double s) {
  const auto t = static_cast<int64_t>(s);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

nlohmann::json nullable(double v, bool present) { return present ? nlohmann::json(v) : nlohmann::json(); }

// Everything one process needs to run (part of) a training run.
struct Session {
  ExperimentConfig config;
  TrainOptions options;
  Runtime runtime;
  Cifar10 data;
  Splits splits;
  Normalizer normalizer;
  ResNet model{nullptr};
  std::unique_ptr<Sgd> sgd;
  std::unique_ptr<BatchSource> source;
  TrainState state;
  int64_t total = 0;
  std::string data_fingerprint;
  nlohmann::json changes = nlohmann::json::array();  // recorded --resume changes
  // Data-parallel training (under torchrun / srun): the group, this process's place in it and
  // the gradient exchange. pg is null for a plain single process.
  DistEnv env;
  std::unique_ptr<ProcessGroup> pg;
  std::unique_ptr<GradAllReduce> grads;
  bool rank0() const { return !pg || pg->rank() == 0; }
};

// Runs `body` on every rank and stops them all if one fails (see ProcessGroup::together).
void together(Session& s, const char* what, const std::function<void()>& body) {
  if (s.pg) s.pg->together(what, body);
  else body();
}

// The machine side of the run (device, threads), then, under a launcher, the process group:
// before anything that may fail on one rank only, so that every failure reaches every rank.
void start(Session& s) {
  s.runtime = resolve_runtime(s.config.runtime, s.env.local_rank, s.env.local_world_size);
  apply_runtime(s.runtime);
  if (!s.env.active()) return;
  const std::string backend = resolve_backend(s.config.runtime.dist_backend, s.runtime.device);
  if (s.runtime.cuda_graph && backend != "nccl") {
    // Gloo's collectives on CUDA tensors synchronise with the host: they cannot be captured.
    s.runtime.cuda_graph = false;
    s.runtime.warnings.push_back("runtime.cuda_graph: off with the gloo backend (its all-reduce cannot be "
                                 "captured); use nccl on GPUs");
  }
  s.pg = ProcessGroup::connect(s.env, backend, s.runtime.device,
                               std::chrono::seconds(s.config.runtime.dist_timeout_s));
}

// config.json and the checkpoint's config: the resolved config, plus the changes made on resume.
nlohmann::json stored_config(const Session& s) {
  nlohmann::json j = to_json(s.config);
  if (!s.changes.empty()) j["resume_changes"] = s.changes;
  return j;
}

bool allowed_by(const std::vector<std::string>& allow, const std::string& key) {
  for (const auto& a : allow)
    if (key == a || key.rfind(a + ".", 0) == 0) return true;
  return false;
}

// Builds data, model and optimizer; checks every input before anything is written.
void prepare(Session& s, CheckpointReader* from) {
  // The resolved folder goes into the stored config, so resume and resnet-eval find the data
  // without being told again (a --data-dir given later still wins).
  const std::string data_dir = resolve_data_dir(s.options.data_dir, s.config.data);
  s.data = load_cifar10(data_dir);
  s.config.data.dir = std::filesystem::absolute(data_dir).lexically_normal().string();
  s.data_fingerprint = data_fingerprint(s.data);
  if (from) {  // a new folder (--data-dir or data.dir) is a change of the run: record it
    const nlohmann::json& stored = from->contents().config;
    const std::string before = stored.contains("data") && stored["data"].contains("dir") && stored["data"]["dir"].is_string()
                                   ? stored["data"]["dir"].get<std::string>() : std::string();
    bool recorded = false;
    for (auto& c : s.changes)
      if (c.value("key", "") == "data.dir" && c.value("step", int64_t{-1}) == from->contents().state.step)
        c["to"] = s.config.data.dir, recorded = true;
    if (!recorded && before != s.config.data.dir)
      s.changes.push_back({{"step", from->contents().state.step}, {"key", "data.dir"}, {"from", before},
                           {"to", s.config.data.dir}, {"forced", false}});
  }
  if (from && !from->contents().data_fingerprint.empty() &&
      from->contents().data_fingerprint != s.data_fingerprint) {
    if (!allowed_by(s.options.allow_changes, "data.dir"))
      throw InputError("data.dir: the CIFAR-10 files in " + data_dir + " are not the ones this run trained on "
                       "(fingerprint " + s.data_fingerprint + ", the run's " + from->contents().data_fingerprint +
                       "); resume with the run's data, or pass --allow-change data.dir");
    s.changes.push_back({{"step", from->contents().state.step}, {"key", "data.fingerprint"},
                         {"from", from->contents().data_fingerprint}, {"to", s.data_fingerprint}, {"forced", true}});
  }
  s.splits = make_splits(s.data, s.config.data);
  // Evaluation sets stay on the device too: evaluate() then reads them in place every time.
  for (ImageSet* set : {&s.splits.test, &s.splits.val})
    if (set->size() > 0) *set = {set->images.to(s.runtime.device), set->labels.to(s.runtime.device)};
  s.normalizer = from ? from->contents().normalizer
                      : fit_normalizer(s.splits.train.images, s.config.data.normalize);

  at::manual_seed(static_cast<uint64_t>(s.config.runtime.seed));  // weight initialisation
  s.model = make_model(s.config.model);
  if (!from) init_from_file(*s.model, s.config.model);  // model.init_from: fine-tuning (interop/weights.h)
  s.model->to(s.runtime.device);
  if (s.runtime.channels_last) to_channels_last(*s.model);
  const auto& t = s.config.train;
  s.sgd = std::make_unique<Sgd>(s.model->parameters(), SgdOptions{t.momentum, t.weight_decay, t.nesterov});
  if (from) {
    from->load_model(*s.model);
    from->load_optimizer(*s.sgd, *s.model);
    s.state = from->contents().state;
  }
  const Shard shard = s.pg ? Shard{s.pg->rank(), s.pg->size()} : Shard{};
  s.source = std::make_unique<BatchSource>(s.splits.train, s.normalizer, t.batch_size,
                                           s.config.data.augment,
                                           static_cast<uint64_t>(s.config.runtime.seed),
                                           s.runtime.device, shard);
  s.total = total_steps(t, s.source->steps_per_epoch());
}

// After prepare() succeeded on every rank (never inside a together() body: a collective there
// would meet another rank's agreement): every rank takes rank 0's weights, BN statistics and
// momentum (after a resume too), and the gradient exchange is set up.
void join_ranks(Session& s) {
  if (!s.pg) return;
  std::vector<at::Tensor> state = s.model->parameters();
  for (const auto& b : s.model->buffers()) state.push_back(b);
  for (const auto& m : s.sgd->momentum_buffers()) state.push_back(m);
  s.pg->broadcast(state, "the start-up broadcast of the weights");
  s.grads = std::make_unique<GradAllReduce>(*s.pg, s.model->parameters());
}

bool parameters_finite(ResNetImpl& model) {
  c10::NoGradGuard no_grad;
  for (const auto& p : model.parameters())
    if (!at::isfinite(p).all().item<bool>()) return false;
  return true;
}

// The run's logger: console + train.log on rank 0 (or a single process); the other ranks of a
// data-parallel run write warnings and errors only, to stderr, prefixed with their rank.
std::shared_ptr<spdlog::logger> make_logger(const Session& s, const RunDir* dir, bool tty) {
  if (!dir) {
    auto err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    err->set_pattern(fmt::format("[rank {}] %v", s.pg ? s.pg->rank() : 0));
    auto log = std::make_shared<spdlog::logger>("train", err);
    log->set_level(spdlog::level::warn);
    return log;
  }
  auto file_sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(dir->log_path(), /*truncate=*/false);
  auto console = std::make_shared<ConsoleSink>(tty);
  console->set_pattern("%v");
  file_sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  auto log = s.options.console
                 ? std::make_shared<spdlog::logger>("train", spdlog::sinks_init_list{console, file_sink})
                 : std::make_shared<spdlog::logger>("train", file_sink);
  log->flush_on(spdlog::level::info);
  // A log that cannot be written (disk full) stops the run like any other write error: one line
  // naming the file, exit 1 (spdlog's default prints to stderr and carries on).
  const std::string log_path = dir->log_path();
  log->set_error_handler([log_path](const std::string& msg) {
    throw std::runtime_error(log_path + ": write failed (" + msg + ")");
  });
  if (!dir->lock_warning().empty()) log->warn("{}", dir->lock_warning());
  return log;
}

// `dir` is the run folder on rank 0 (or a single process), null on the other ranks: they train
// and evaluate their share and write nothing.
int run_session(Session& s, const RunDir* dir, bool resumed) {
  const bool tty = s.options.console && s.options.progress && ::isatty(STDOUT_FILENO) && dir;
  auto log = make_logger(s, dir, tty);
  const std::string run_path = dir ? dir->path() : std::string();
  const std::string ckpt_path = dir ? dir->checkpoint_path() : std::string("(rank 0's checkpoint)");

  const auto& t = s.config.train;
  const int64_t spe = s.source->steps_per_epoch();
  const int64_t eval_every = t.eval_every > 0 ? t.eval_every : spe;
  const int64_t ckpt_every = t.checkpoint_every > 0 ? t.checkpoint_every : eval_every;
  const int64_t params = count_parameters(*s.model);
  EvalOptions eval_opts{t.eval_batch_size, s.runtime.channels_last, s.runtime.bf16};
  if (s.pg) {  // each rank evaluates its share; the counts are summed
    eval_opts.shard = {s.pg->rank(), s.pg->size()};
    eval_opts.sum_over_ranks = [&s](at::Tensor& totals) {
      at::Tensor here = totals.to(s.pg->device());
      s.pg->all_reduce_sum(here, "the evaluation's all-reduce");
      totals.copy_(here);
    };
  }
  const nlohmann::json config_json = to_json(s.config);  // the checkpoint keeps changes apart

  log->info("{} run '{}' in {}: {} {}-{} ({} parameters), {} steps ({} per epoch, batch {})",
            resumed ? "resuming" : "starting", s.config.name, run_path,
            s.config.model.residual ? (s.config.model.preact ? "pre-activation ResNet" : "ResNet") : "plain net",
            s.config.model.family, s.config.model.depth, params, s.total, spe, t.batch_size);
  log->info("data: {} train, {} val, {} test images; {}", s.splits.train.size(), s.splits.val.size(),
            s.splits.test.size(), s.runtime.describe());
  for (const auto& note : s.runtime.warnings) log->warn("{}", note);
  if (s.pg)
    log->info("data parallel: {}; {} backend, {} images per rank and step, per-rank BatchNorm", s.env.describe(),
              s.pg->backend(), s.source->batch_size());
  if (resumed) log->info("continuing at step {}", s.state.step);
  for (const auto& c : s.changes)
    if (c.value("step", int64_t{-1}) == s.state.step)
      log->log(c.value("forced", false) ? spdlog::level::warn : spdlog::level::info, "resume changes {}: {} -> {}{}",
               c["key"].get<std::string>(), c["from"].dump(), c["to"].dump(),
               c.value("forced", false) ? " (--allow-change)" : "");

#if defined(RESNET_WITH_TENSORBOARD)
  std::unique_ptr<tensorboard::EventWriter> events;
  if (dir && s.config.runtime.tensorboard) events = std::make_unique<tensorboard::EventWriter>(dir->path());
#else
  if (dir && s.config.runtime.tensorboard)
    log->warn("runtime.tensorboard: this build has no TensorBoard support (protobuf or Boost were missing when it "
              "was built); no event files");
#endif

  TrainStep stepper(*s.model, *s.sgd, *s.source, s.runtime, log.get());
  stepper.set_grad_sync(s.grads.get());
  stepper.check_graph(learning_rate(t, s.state.step, s.total));  // CUDA graphs: graph vs eager, once
  SignalScope signals;
  s.model->train();

  const auto session_start = Clock::now();
  const double elapsed_before = s.state.elapsed_seconds;
  double window_seconds = 0;
  int64_t window_images = 0;
  double lr = 0;

  // Reads the device accumulators into the state; a non-finite loss ends the run.
  auto sync = [&](int64_t step) {
    TrainStep::Totals totals = stepper.take_totals();
    if (s.pg) {  // the whole global batch's numbers (exact: integers below 2^53 in double)
      at::Tensor sums = at::tensor({totals.loss_sum, static_cast<double>(totals.correct),
                                    static_cast<double>(totals.seen)}, at::kDouble).to(s.pg->device());
      s.pg->all_reduce_sum(sums, "the training metrics' all-reduce");
      sums = sums.cpu();
      totals.loss_sum = sums[0].item<double>();
      totals.correct = static_cast<int64_t>(sums[1].item<double>());
      totals.seen = static_cast<int64_t>(sums[2].item<double>());
    }
    s.state.train_loss_sum += totals.loss_sum;
    s.state.train_correct += totals.correct;
    s.state.train_seen += totals.seen;
    if (!std::isfinite(totals.loss_sum))
      throw std::runtime_error(fmt::format(
          "training diverged: the loss is {} by step {}; nothing was saved after the last good "
          "checkpoint ({}); try a lower train.lr or a warm-up",
          totals.loss_sum, step, ckpt_path));
  };
  // Per-rank BatchNorm: the ranks' running statistics differ. Before an evaluation or a
  // checkpoint every rank takes rank 0's, so all evaluate, and rank 0 saves, the same model.
  int64_t buffers_synced_at = -1;
  auto sync_buffers = [&] {
    if (!s.pg || buffers_synced_at == s.state.step) return;
    s.pg->broadcast(s.model->buffers(), "the BatchNorm statistics' broadcast");
    buffers_synced_at = s.state.step;
  };
  auto save = [&] {
    if (!parameters_finite(*s.model))
      throw std::runtime_error(fmt::format("training diverged: non-finite weights at step {}; "
                                           "kept the last good checkpoint {}",
                                           s.state.step, ckpt_path));
    s.state.elapsed_seconds = elapsed_before + seconds_since(session_start);
    if (s.pg) {
      sync_buffers();
      // The ranks must hold the same weights and momentum bit for bit (the same averaged
      // gradients, the same update): checked on every checkpoint, cheaply, by a hash.
      std::vector<at::Tensor> state = s.model->parameters();
      for (const auto& m : s.sgd->momentum_buffers()) state.push_back(m);
      const auto h = static_cast<int64_t>(hash_tensors(state));
      if (s.pg->min(h, "the weight check") != s.pg->max(h, "the weight check"))
        throw std::runtime_error(fmt::format("rank {}: the ranks' weights differ at step {} (they must stay "
                                             "identical); not saving. Please report this with train.log",
                                             s.pg->rank(), s.state.step));
    }
    together(s, "writing the checkpoint", [&] {
      if (!dir) return;
      CheckpointContents contents{config_json, s.state, s.normalizer, s.data_fingerprint, s.changes};
      save_checkpoint(dir->checkpoint_path(), contents, *s.model, s.sgd.get());
    });
  };
  // A signal reaches one rank or all, at different moments: the ranks agree on it every step on
  // the CPU (one tiny all-reduce; a step takes far longer) and at every host sync point, or every
  // 10 steps, on CUDA (a read-back per step would cost the GPU its lead).
  auto stop_signal = [&](int64_t done, bool sync_point) -> int {
    if (!s.pg) return g_signal.load();
    if (s.runtime.device.is_cuda() && !sync_point && done % 10 != 0) return 0;
    return static_cast<int>(s.pg->max(g_signal.load(), "the stop-signal agreement"));
  };

  EvalResult last_test;
  bool have_test = false;
  while (s.state.step < s.total) {
    const int64_t step = s.state.step;
    lr = learning_rate(t, step, s.total);
    const auto step_start = Clock::now();
    stepper.run(step, lr);
    s.state.step = step + 1;
    const int64_t done = s.state.step;
    s.state.images_trained += t.batch_size;
    window_images += t.batch_size;

    const bool is_last = done == s.total;
    const bool eval_due = done % eval_every == 0 || is_last;
    const bool ckpt_due = done % ckpt_every == 0 || is_last;
    const bool log_due = done % t.log_every == 0;
    const int interrupted = stop_signal(done, eval_due || ckpt_due || log_due);
    if (eval_due || ckpt_due || log_due || interrupted) sync(done);  // host sync only here
    const double step_seconds = seconds_since(step_start);
    window_seconds += step_seconds;
    s.state.train_seconds += step_seconds;

    if (log_due && !eval_due) {
      const double ips = window_seconds > 0 ? window_images / window_seconds : 0;
      const double loss = s.state.train_seen ? s.state.train_loss_sum / s.state.train_seen : 0;
      const double err = s.state.train_seen ? 1.0 - double(s.state.train_correct) / s.state.train_seen : 0;
      const double eta = ips > 0 ? double(s.total - done) * t.batch_size / ips : 0;
      const std::string line = fmt::format("step {}/{} | loss {:.4f} | train err {:.2f}% | lr {:.4g} | {:.0f} img/s | ETA {}",
                                           done, s.total, loss, 100 * err, lr, ips, format_duration(eta));
      if (tty) {
        std::fputs(("\r\033[K" + line).c_str(), stdout);
        std::fflush(stdout);
      } else {
        log->info("{}", line);
      }
    }
    if (eval_due) {
      const auto eval_start = Clock::now();
      sync_buffers();
      last_test = evaluate(*s.model, s.splits.test, s.normalizer, eval_opts);
      have_test = true;
      EvalResult val;
      const bool have_val = s.splits.val.size() > 0;
      if (have_val) {
        val = evaluate(*s.model, s.splits.val, s.normalizer, eval_opts);
        if (s.state.best_val_error < 0 || val.error < s.state.best_val_error) {
          s.state.best_val_error = val.error;
          s.state.best_val_step = done;
        }
      }
      s.state.eval_seconds += seconds_since(eval_start);
      const double seen = static_cast<double>(std::max<int64_t>(1, s.state.train_seen));
      nlohmann::json row = {
          {"step", done},
          {"epoch", static_cast<double>(done) / static_cast<double>(spe)},
          {"lr", lr},
          {"train_loss", s.state.train_loss_sum / seen},
          {"train_error", 1.0 - static_cast<double>(s.state.train_correct) / seen},
          {"test_loss", last_test.loss},
          {"test_error", last_test.error},
          {"val_loss", nullable(val.loss, have_val)},
          {"val_error", nullable(val.error, have_val)},
          {"images_per_sec", window_seconds > 0 ? window_images / window_seconds : 0.0},
          {"elapsed_s", elapsed_before + seconds_since(session_start)}};
      if (dir) dir->append_metrics(row);
#if defined(RESNET_WITH_TENSORBOARD)
      if (events) {  // the same numbers as the metrics row, one tag each
        std::map<std::string, double> scalars;
        for (const auto& [column, tag] : std::map<std::string, std::string>{
                 {"train_loss", "train/loss"}, {"train_error", "train/error"}, {"test_loss", "test/loss"},
                 {"test_error", "test/error"}, {"val_loss", "val/loss"}, {"val_error", "val/error"},
                 {"lr", "lr"}, {"images_per_sec", "images_per_sec"}})
          if (row[column].is_number()) scalars[tag] = row[column].get<double>();
        events->scalars(done, scalars);
      }
#endif
      log->info("step {}/{} epoch {:.2f}: train loss {:.4f} err {:.2f}% | test loss {:.4f} err {:.2f}%{} | lr {:.4g} | {:.0f} img/s",
                done, s.total, row["epoch"].get<double>(), row["train_loss"].get<double>(),
                100 * row["train_error"].get<double>(), last_test.loss, 100 * last_test.error,
                have_val ? fmt::format(" | val err {:.2f}%", 100 * val.error) : std::string(),
                lr, row["images_per_sec"].get<double>());
      s.state.train_loss_sum = 0;
      s.state.train_correct = 0;
      s.state.train_seen = 0;
      window_seconds = 0;
      window_images = 0;
    }
    if (ckpt_due || interrupted) save();
    if (interrupted) {
      if (dir) {
        log->warn("interrupted ({}) at step {}/{}; checkpoint written to {}", interrupted == SIGINT ? "SIGINT" : "SIGTERM",
                  done, s.total, dir->checkpoint_path());
        log->warn("resume with: resnet-train --resume {}", dir->path());
      }
      return interrupted == SIGINT ? kExitSigint : kExitSigterm;
    }
  }

  if (!have_test) {
    const auto eval_start = Clock::now();
    sync_buffers();
    last_test = evaluate(*s.model, s.splits.test, s.normalizer, eval_opts);
    s.state.eval_seconds += seconds_since(eval_start);
  }
  const double wall = elapsed_before + seconds_since(session_start);
  nlohmann::json summary = {
      {"name", s.config.name},
      {"final_test_error", last_test.error},
      {"final_test_loss", last_test.loss},
      {"best_val_error", s.state.best_val_error >= 0 ? nlohmann::json(s.state.best_val_error) : nlohmann::json()},
      {"best_val_step", s.state.best_val_step >= 0 ? nlohmann::json(s.state.best_val_step) : nlohmann::json()},
      {"parameters", params},
      {"steps", s.state.step},
      {"wall_time_s", wall},
      {"train_time_s", s.state.train_seconds},  // training steps only
      {"eval_time_s", s.state.eval_seconds},     // test (and validation) evaluations
      {"images_per_sec", s.state.train_seconds > 0 ? s.state.images_trained / s.state.train_seconds : 0.0},
      {"device", compat::device_name(s.runtime.device)},
      {"precision", s.runtime.bf16 ? "bf16" : "fp32"},
      {"torch_version", compat::torch_version()},
      {"cuda_graph", stepper.graph_active()},
      {"world_size", s.pg ? s.pg->size() : 1},
      {"dist_backend", s.pg ? nlohmann::json(s.pg->backend()) : nlohmann::json()},
      // Host time in the gradient all-reduce during this session (copies, waits, division).
      {"allreduce_time_s", s.grads ? nlohmann::json(s.grads->take_seconds()) : nlohmann::json()}};
  together(s, "writing the summary", [&] {
    if (dir) dir->write_json("summary.json", summary);
  });
  if (dir)
    log->info("done: test error {:.2f}% after {} steps in {}; summary in {}", 100 * last_test.error,
              s.state.step, format_duration(wall), dir->file("summary.json"));
  return kExitOk;
}

}  // namespace

void check_run_name(const std::string& name) {
  const std::string why = "the default run folder is runs/<name>: use a plain folder name or give --out";
  if (name.empty() || name == "." || name == "..")
    throw InputError("name: '" + name + "' is not a folder name (" + why + ")");
  for (const char ch : name)
    if (ch == '/' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
      throw InputError("name: " + nlohmann::json(name).dump() + " is not a plain folder name (" + why + ")");
}

const std::vector<std::string>& resumable_keys() {
  static const std::vector<std::string> keys = {
      "name", "data.dir", "train.iterations", "train.epochs", "train.lr", "train.lr_schedule",
      "train.eval_every", "train.checkpoint_every", "train.log_every", "train.eval_batch_size",
      "runtime.device", "runtime.threads", "runtime.precision", "runtime.channels_last",
      "runtime.cuda_graph", "runtime.cudnn_benchmark", "runtime.dist_backend", "runtime.dist_timeout_s",
      "runtime.tensorboard"};
  return keys;
}

namespace {

// Dotted key -> value for every leaf of a config (arrays are leaves).
void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, nlohmann::json>& out) {
  if (!j.is_object()) {
    out[prefix] = j;
    return;
  }
  for (const auto& [key, value] : j.items()) flatten(value, prefix.empty() ? key : prefix + "." + key, out);
}

// What `config` changes of the run's `stored` config, checked against resumable_keys() and
// --allow-change; returns the changes to record at `step`.
nlohmann::json check_changes(const ExperimentConfig& stored, const ExperimentConfig& config,
                             const std::vector<std::string>& allow, int64_t step) {
  std::map<std::string, nlohmann::json> before, after;
  flatten(to_json(stored), "", before);
  flatten(to_json(config), "", after);
  for (const auto& a : allow) {
    bool known = false;
    for (const auto& [key, value] : before) known = known || key == a || key.rfind(a + ".", 0) == 0;
    if (!known) throw InputError("--allow-change " + a + ": not a config key");
  }
  nlohmann::json changes = nlohmann::json::array();
  for (const auto& [key, value] : after) {
    if (before[key] == value) continue;
    const bool routine = allowed_by(resumable_keys(), key);
    if (!routine && !allowed_by(allow, key))
      throw InputError(key + ": a resumed run cannot change it (" + before[key].dump() + " -> " + value.dump() +
                       "): the result would be neither the old run nor a new one; start a new run, or pass "
                       "--allow-change " + key);
    changes.push_back({{"step", step}, {"key", key}, {"from", before[key]}, {"to", value}, {"forced", !routine}});
  }
  return changes;
}

// The stored config of a run (a checkpoint's or config.json), without its change history.
ExperimentConfig parse_stored(nlohmann::json j, const std::string& origin) {
  if (j.is_object()) j.erase("resume_changes");
  try {
    return config_from_json(j);
  } catch (const InputError& e) {
    throw InputError(origin + ": " + e.what());
  }
}

}  // namespace

int train(const ExperimentConfig& config, const TrainOptions& options) {
  if (!options.allow_changes.empty()) throw InputError("--allow-change: only with --resume");
  Session s;
  s.config = config;
  s.options = options;
  s.env = read_dist_env();
  if (options.out_dir.empty()) check_run_name(config.name);  // before any work
  const std::string out = options.out_dir.empty() ? "runs/" + config.name : options.out_dir;
  start(s);
  // Every input is checked before the run folder is touched.
  together(s, "checking the inputs", [&] { prepare(s, nullptr); });
  join_ranks(s);
  std::optional<RunDir> dir;
  together(s, "creating the run folder", [&] {
    if (!s.rank0()) return;
    dir.emplace(RunDir::create(out, options.force));
    dir->write_json("config.json", stored_config(s));
  });
  return run_session(s, dir ? &*dir : nullptr, false);
}

int resume(const std::string& run_dir, const std::vector<std::string>& sets, const TrainOptions& options) {
  Session s;
  s.env = read_dist_env();
  // A single process locks first: no other process writes the checkpoint read below. The ranks
  // of a data-parallel run read it first (atomic renames: whole either way) and rank 0 locks
  // once the group is formed, so that a refusal reaches every rank.
  std::optional<RunDir> dir;
  if (!s.env.active()) dir.emplace(RunDir::open(run_dir));
  const std::filesystem::path folder(run_dir);
  const std::string ckpt_path = (folder / "checkpoints" / "last.ckpt").string();
  std::unique_ptr<CheckpointReader> reader;
  nlohmann::json base, history = nlohmann::json::array();
  std::string origin;
  if (std::filesystem::exists(ckpt_path)) {
    reader = std::make_unique<CheckpointReader>(ckpt_path);
    base = reader->contents().config;
    history = reader->contents().changes;
    origin = ckpt_path;
  } else {
    // Stopped before its first checkpoint (killed during start-up or its first steps): start
    // again from the run's own config.
    const std::string config_path = (folder / "config.json").string();
    if (!std::filesystem::exists(config_path))
      throw InputError(run_dir + ": not a run folder (no checkpoints/last.ckpt, no config.json)");
    base = read_json_file(config_path);
    if (base.is_object() && base.contains("resume_changes")) {
      history = base["resume_changes"];
      bool ok = history.is_array();
      for (const auto& c : history) ok = ok && c.is_object() && c.contains("key") && c["key"].is_string();
      if (!ok) throw InputError(config_path + ": resume_changes: expected a list of {step, key, from, to}");
    }
    origin = config_path;
  }
  const ExperimentConfig stored = parse_stored(base, origin);
  nlohmann::json user = base;
  if (user.is_object()) user.erase("resume_changes");
  for (const auto& assignment : sets) apply_override(user, assignment);
  ExperimentConfig config;
  try {
    config = config_from_json(user);
  } catch (const InputError& e) {
    throw InputError(origin + ": " + e.what());
  }
  const int64_t at_step = reader ? reader->contents().state.step : 0;
  nlohmann::json changes = check_changes(stored, config, options.allow_changes, at_step);

  s.config = config;
  s.options = options;
  s.changes = history;
  for (auto& c : changes) s.changes.push_back(std::move(c));
  start(s);
  together(s, "opening the run folder and checking the inputs", [&] {
    if (s.pg && s.rank0()) dir.emplace(RunDir::open(run_dir));
    prepare(s, reader.get());
  });
  join_ranks(s);
  // Complete only with its summary: a run stopped between its last checkpoint and summary.json
  // goes on to its final evaluation and summary (the training loop has nothing left to do).
  if (s.state.step >= s.total && std::filesystem::exists(folder / "summary.json")) {
    if (s.rank0())
      std::printf("%s: already complete (%lld of %lld steps); raise train.iterations with --set to go on\n",
                  run_dir.c_str(), static_cast<long long>(s.state.step), static_cast<long long>(s.total));
    return kExitOk;
  }
  together(s, "preparing the run folder", [&] {
    if (!dir) return;
    dir->trim_to(s.state.step);
#if defined(RESNET_WITH_TENSORBOARD)
    tensorboard::trim_events(dir->path(), s.state.step);
#endif
    dir->write_json("config.json", stored_config(s));
  });
  return run_session(s, dir ? &*dir : nullptr, true);
}

bool restarted_run(const std::string& out_dir, const ExperimentConfig& config) {
  const DistEnv env = read_dist_env();
  const std::filesystem::path stored_path = std::filesystem::path(out_dir) / "config.json";
  if (!env.active() || env.restart_count == 0 || !std::filesystem::exists(stored_path)) return false;
  // Only the run this command started: its stored config is this config (the data folder aside,
  // which the run stores resolved). Anything else there (another run the first attempt was
  // refused for) is not resumed by a restart: train() refuses it again.
  try {
    nlohmann::json stored = read_json_file(stored_path.string());
    if (stored.is_object()) stored.erase("resume_changes");
    nlohmann::json mine = to_json(config);
    ExperimentConfig theirs = config_from_json(stored);
    nlohmann::json theirs_json = to_json(theirs);
    mine["data"]["dir"] = "";
    theirs_json["data"]["dir"] = "";
    return mine == theirs_json;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace resnet
