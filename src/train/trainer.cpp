#include "train/trainer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
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

#include "compat/torch_compat.h"
#include "data/batches.h"
#include "data/cifar10.h"
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
};

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
  s.runtime = resolve_runtime(s.config.runtime);
  apply_runtime(s.runtime);
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
    from->load_optimizer(*s.sgd);
    s.state = from->contents().state;
  }
  s.source = std::make_unique<BatchSource>(s.splits.train, s.normalizer, t.batch_size,
                                           s.config.data.augment,
                                           static_cast<uint64_t>(s.config.runtime.seed),
                                           s.runtime.device);
  s.total = total_steps(t, s.source->steps_per_epoch());
}

bool parameters_finite(ResNetImpl& model) {
  c10::NoGradGuard no_grad;
  for (const auto& p : model.parameters())
    if (!at::isfinite(p).all().item<bool>()) return false;
  return true;
}

int run_session(Session& s, const RunDir& dir, bool resumed) {
  const bool tty = s.options.console && s.options.progress && ::isatty(STDOUT_FILENO);
  auto file_sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(dir.log_path(), /*truncate=*/false);
  auto console = std::make_shared<ConsoleSink>(tty);
  console->set_pattern("%v");
  file_sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  auto log = s.options.console
                 ? std::make_shared<spdlog::logger>("train", spdlog::sinks_init_list{console, file_sink})
                 : std::make_shared<spdlog::logger>("train", file_sink);
  log->flush_on(spdlog::level::info);
  // A log that cannot be written (disk full) stops the run like any other write error: one line
  // naming the file, exit 1 (spdlog's default prints to stderr and carries on).
  const std::string log_path = dir.log_path();
  log->set_error_handler([log_path](const std::string& msg) {
    throw std::runtime_error(log_path + ": write failed (" + msg + ")");
  });
  if (!dir.lock_warning().empty()) log->warn("{}", dir.lock_warning());

  const auto& t = s.config.train;
  const int64_t spe = s.source->steps_per_epoch();
  const int64_t eval_every = t.eval_every > 0 ? t.eval_every : spe;
  const int64_t ckpt_every = t.checkpoint_every > 0 ? t.checkpoint_every : eval_every;
  const int64_t params = count_parameters(*s.model);
  EvalOptions eval_opts{t.eval_batch_size, s.runtime.channels_last, s.runtime.bf16};
  const nlohmann::json config_json = to_json(s.config);  // the checkpoint keeps changes apart

  log->info("{} run '{}' in {}: {} {}-{} ({} parameters), {} steps ({} per epoch, batch {})",
            resumed ? "resuming" : "starting", s.config.name, dir.path(),
            s.config.model.residual ? (s.config.model.preact ? "pre-activation ResNet" : "ResNet") : "plain net",
            s.config.model.family, s.config.model.depth, params, s.total, spe, t.batch_size);
  log->info("data: {} train, {} val, {} test images; {}", s.splits.train.size(), s.splits.val.size(),
            s.splits.test.size(), s.runtime.describe());
  for (const auto& note : s.runtime.warnings) log->warn("{}", note);
  if (resumed) log->info("continuing at step {}", s.state.step);
  for (const auto& c : s.changes)
    if (c.value("step", int64_t{-1}) == s.state.step)
      log->log(c.value("forced", false) ? spdlog::level::warn : spdlog::level::info, "resume changes {}: {} -> {}{}",
               c["key"].get<std::string>(), c["from"].dump(), c["to"].dump(),
               c.value("forced", false) ? " (--allow-change)" : "");

  TrainStep stepper(*s.model, *s.sgd, *s.source, s.runtime, log.get());
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
    s.state.train_loss_sum += totals.loss_sum;
    s.state.train_correct += totals.correct;
    s.state.train_seen += totals.seen;
    if (!std::isfinite(totals.loss_sum))
      throw std::runtime_error(fmt::format(
          "training diverged: the loss is {} by step {}; nothing was saved after the last good "
          "checkpoint ({}); try a lower train.lr or a warm-up",
          totals.loss_sum, step, dir.checkpoint_path()));
  };
  auto save = [&] {
    if (!parameters_finite(*s.model))
      throw std::runtime_error(fmt::format("training diverged: non-finite weights at step {}; "
                                           "kept the last good checkpoint {}",
                                           s.state.step, dir.checkpoint_path()));
    s.state.elapsed_seconds = elapsed_before + seconds_since(session_start);
    CheckpointContents contents{config_json, s.state, s.normalizer, s.data_fingerprint, s.changes};
    save_checkpoint(dir.checkpoint_path(), contents, *s.model, s.sgd.get());
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
    const int interrupted = g_signal.load();
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
      dir.append_metrics(row);
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
      log->warn("interrupted ({}) at step {}/{}; checkpoint written to {}", interrupted == SIGINT ? "SIGINT" : "SIGTERM",
                done, s.total, dir.checkpoint_path());
      log->warn("resume with: resnet-train --resume {}", dir.path());
      return interrupted == SIGINT ? kExitSigint : kExitSigterm;
    }
  }

  if (!have_test) {
    const auto eval_start = Clock::now();
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
      {"cuda_graph", stepper.graph_active()}};
  dir.write_json("summary.json", summary);
  log->info("done: test error {:.2f}% after {} steps in {}; summary in {}", 100 * last_test.error,
            s.state.step, format_duration(wall), dir.file("summary.json"));
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
      "runtime.cuda_graph", "runtime.cudnn_benchmark"};
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
  if (options.out_dir.empty()) check_run_name(config.name);  // before any work
  prepare(s, nullptr);  // every input is checked before the run folder is touched
  const std::string out = options.out_dir.empty() ? "runs/" + config.name : options.out_dir;
  RunDir dir = RunDir::create(out, options.force);
  dir.write_json("config.json", stored_config(s));
  return run_session(s, dir, false);
}

int resume(const std::string& run_dir, const std::vector<std::string>& sets, const TrainOptions& options) {
  // Locked first: no other process writes the checkpoint read below.
  RunDir dir = RunDir::open(run_dir);
  const std::string ckpt_path = dir.checkpoint_path();
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
    const std::string config_path = dir.file("config.json");
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

  Session s;
  s.config = config;
  s.options = options;
  s.changes = history;
  for (auto& c : changes) s.changes.push_back(std::move(c));
  prepare(s, reader.get());
  // Complete only with its summary: a run stopped between its last checkpoint and summary.json
  // goes on to its final evaluation and summary (the training loop has nothing left to do).
  if (s.state.step >= s.total && std::filesystem::exists(dir.file("summary.json"))) {
    std::printf("%s: already complete (%lld of %lld steps); raise train.iterations with --set to go on\n",
                run_dir.c_str(), static_cast<long long>(s.state.step), static_cast<long long>(s.total));
    return kExitOk;
  }
  dir.trim_to(s.state.step);
  dir.write_json("config.json", stored_config(s));
  return run_session(s, dir, true);
}

}  // namespace resnet
