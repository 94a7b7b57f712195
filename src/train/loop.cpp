#include "train/loop.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>

#include "compat/torch_compat.h"
#include "eval/evaluate.h"
#include "train/lr_schedule.h"
#include "train/observers.h"
#include "train/run_dir.h"
#include "train/step.h"
#include "util/duration.h"
#include "util/errors.h"

namespace resnet {
namespace {

using Clock = std::chrono::steady_clock;

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
  struct sigaction old_int_ {
  }, old_term_{};
};

// When, after a step, the loop reads metrics back, logs, evaluates or checkpoints.
struct Due {
  bool eval = false, checkpoint = false, log = false;
  bool any() const { return eval || checkpoint || log; }
};

struct Cadence {
  int64_t eval_every, checkpoint_every, log_every, total;
  Due at(int64_t done) const {
    const bool last = done == total;
    return {done % eval_every == 0 || last, done % checkpoint_every == 0 || last, done % log_every == 0};
  }
};

Cadence cadence_of(const TrainConfig& t, int64_t steps_per_epoch, int64_t total) {
  const int64_t eval_every = t.eval_every > 0 ? t.eval_every : steps_per_epoch;
  return {eval_every, t.checkpoint_every > 0 ? t.checkpoint_every : eval_every, t.log_every, total};
}

// The wall clock of this session, and the throughput window since the last evaluation.
struct Timing {
  Clock::time_point start = Clock::now();
  double before = 0;  // elapsed in earlier sessions of the run
  double window_seconds = 0;
  int64_t window_images = 0;
  double elapsed() const { return before + seconds_since(start); }
  double images_per_sec() const { return window_seconds > 0 ? window_images / window_seconds : 0.0; }
};

bool parameters_finite(ResNetImpl& model) {
  c10::NoGradGuard no_grad;
  for (const auto& p : model.parameters())
    if (!at::isfinite(p).all().item<bool>()) return false;
  return true;
}

// The run's opening lines in the log: what trains, on what, and what a resume changed.
void log_start(const Session& s, const RunDir* dir, spdlog::logger& log, bool resumed) {
  const auto& m = s.config.model;
  log.info("{} run '{}' in {}: {} ({} family, {} parameters), {} steps ({} per epoch, batch {})",
           resumed ? "resuming" : "starting", s.config.name, dir ? dir->path() : std::string(), model_name(m), m.family,
           count_parameters(*s.model), s.total, s.source->steps_per_epoch(), s.config.train.batch_size);
  log.info("data: {} train, {} val, {} test images; {}", s.splits.train.size(), s.splits.val.size(),
           s.splits.test.size(), s.runtime.describe());
  for (const auto& note : s.runtime.warnings) log.warn("{}", note);
  if (!s.comm->backend().empty())
    log.info("data parallel: {}; {} backend, {} images per rank and step, per-rank BatchNorm", s.env.describe(),
             s.comm->backend(), s.source->batch_size());
  if (resumed) log.info("continuing at step {}", s.state.step);
  for (const auto& c : s.changes)
    if (c.value("step", int64_t{-1}) == s.state.step)
      log.log(c.value("forced", false) ? spdlog::level::warn : spdlog::level::info, "resume changes {}: {} -> {}{}",
              c["key"].get<std::string>(), c["from"].dump(), c["to"].dump(),
              c.value("forced", false) ? " (--allow-change)" : "");
}

class Loop {
 public:
  Loop(Session& s, const RunDir* dir, spdlog::logger& log, Observers& observers, TrainStep& stepper)
      : s_(s),
        dir_(dir),
        log_(log),
        observers_(observers),
        stepper_(stepper),
        agree_(*s.agree),
        config_json_(to_json(s.config)),
        ckpt_path_(dir ? dir->checkpoint_path() : std::string("(rank 0's checkpoint)")) {
    timing_.before = s.state.elapsed_seconds;
    window_start_ = s.state.step;
    eval_opts_.batch_size = s.config.train.eval_batch_size;
    eval_opts_.channels_last = s.runtime.channels_last;
    eval_opts_.bf16 = s.runtime.bf16;
    eval_opts_.shard = agree_.shard();  // each rank evaluates its share; the counts are summed
    eval_opts_.sum_over_ranks = agree_.evaluation_sum();
  }

  int run();

 private:
  void read_metrics(int64_t done);
  void report_progress(double lr);
  void evaluate_and_report(double lr);
  void checkpoint();
  int stop(int signal);
  void finish();

  Session& s_;
  const RunDir* dir_;
  spdlog::logger& log_;
  Observers& observers_;
  TrainStep& stepper_;
  Agreements& agree_;
  const nlohmann::json config_json_;  // the checkpoint keeps the changes apart
  const std::string ckpt_path_;
  Timing timing_;
  EvalOptions eval_opts_;
  EvalResult last_test_;
  bool have_test_ = false;
  int64_t window_start_ = 0;  // the step count at the last read of the metrics
};

// The loop, on one page.
int Loop::run() {
  const auto& t = s_.config.train;
  const Cadence cadence = cadence_of(t, s_.source->steps_per_epoch(), s_.total);
  while (s_.state.step < s_.total) {
    const int64_t step = s_.state.step;
    const double lr = learning_rate(t, step, s_.total);
    const auto step_start = Clock::now();
    stepper_.run(step, lr);
    const int64_t done = s_.state.step = step + 1;
    s_.state.images_trained += t.batch_size;
    timing_.window_images += t.batch_size;

    const Due due = cadence.at(done);
    const int signal = agree_.stop_signal(g_signal.load(), done, due.any());
    if (due.any() || signal) read_metrics(done);  // the only host syncs
    const double step_seconds = seconds_since(step_start);
    timing_.window_seconds += step_seconds;
    s_.state.train_seconds += step_seconds;

    if (due.log && !due.eval) report_progress(lr);
    if (due.eval) evaluate_and_report(lr);
    if (due.checkpoint || signal) checkpoint();
    if (signal) return stop(signal);
  }
  finish();
  return kExitOk;
}

// The training numbers since the last read, over every rank. A non-finite loss ends the run,
// naming the first step (1-based, as the log counts them) whose loss was not finite on any rank:
// the steps since the last read kept that index on the device.
void Loop::read_metrics(int64_t done) {
  const TrainStep::Totals mine = stepper_.take_totals();
  const TrainStep::Totals totals = agree_.training_metrics(mine);
  const int64_t window_start = window_start_;
  window_start_ = done;
  s_.state.train_loss_sum += totals.loss_sum;
  s_.state.train_correct += totals.correct;
  s_.state.train_seen += totals.seen;
  if (std::isfinite(totals.loss_sum)) return;
  const int64_t step =
      agree_.first_non_finite_step(mine.first_non_finite < 0 ? -1 : window_start + mine.first_non_finite + 1);
  throw std::runtime_error(
      fmt::format("training diverged: the loss of step {} is not finite (read at step {}); "
                  "nothing was saved after the last good checkpoint ({}); try a lower "
                  "train.lr or a warm-up",
                  step, done, ckpt_path_));
}

void Loop::report_progress(double lr) {
  const TrainState& st = s_.state;
  Progress p;
  p.step = st.step;
  p.total = s_.total;
  p.loss = st.train_seen ? st.train_loss_sum / st.train_seen : 0;
  p.error = st.train_seen ? 1.0 - double(st.train_correct) / st.train_seen : 0;
  p.lr = lr;
  p.images_per_sec = timing_.images_per_sec();
  p.eta_seconds = p.images_per_sec > 0 ? double(s_.total - st.step) * s_.config.train.batch_size / p.images_per_sec : 0;
  agree_.write("writing the progress line", [&] { observers_.progress(p); });
}

void Loop::evaluate_and_report(double lr) {
  const auto eval_start = Clock::now();
  TrainState& st = s_.state;
  agree_.batchnorm(*s_.model, st.step);
  last_test_ = evaluate(*s_.model, s_.splits.test, s_.normalizer, eval_opts_);
  have_test_ = true;
  EvalResult val;
  const bool have_val = s_.splits.val.size() > 0;
  if (have_val) {
    val = evaluate(*s_.model, s_.splits.val, s_.normalizer, eval_opts_);
    if (st.best_val_error < 0 || val.error < st.best_val_error)
      st.best_val_error = val.error, st.best_val_step = st.step;
  }
  st.eval_seconds += seconds_since(eval_start);
  const double seen = static_cast<double>(std::max<int64_t>(1, st.train_seen));
  EvalReport report;
  report.total = s_.total;
  EvalRow& row = report.row;
  row.step = st.step;
  row.epoch = static_cast<double>(st.step) / static_cast<double>(s_.source->steps_per_epoch());
  row.lr = lr;
  row.train_loss = st.train_loss_sum / seen;
  row.train_error = 1.0 - static_cast<double>(st.train_correct) / seen;
  row.test_loss = last_test_.loss;
  row.test_error = last_test_.error;
  if (have_val) row.val_loss = val.loss, row.val_error = val.error;
  row.images_per_sec = timing_.images_per_sec();
  row.elapsed_s = timing_.elapsed();
  agree_.write("writing the metrics row", [&] { observers_.eval(report); });
  st.train_loss_sum = 0, st.train_correct = 0, st.train_seen = 0;
  timing_.window_seconds = 0, timing_.window_images = 0;
}

void Loop::checkpoint() {
  if (!parameters_finite(*s_.model))
    throw std::runtime_error(
        fmt::format("training diverged: non-finite weights at step {}; kept the last good "
                    "checkpoint {}",
                    s_.state.step, ckpt_path_));
  s_.state.elapsed_seconds = timing_.elapsed();
  agree_.batchnorm(*s_.model, s_.state.step);
  agree_.same_weights(*s_.model, *s_.sgd, s_.state.step);
  agree_.write("writing the checkpoint", [&] {
    if (!dir_) return;
    const CheckpointContents contents{config_json_, s_.state, s_.normalizer, s_.data_fingerprint, s_.changes};
    save_checkpoint(dir_->checkpoint_path(), contents, *s_.model, s_.sgd.get());
  });
}

int Loop::stop(int signal) {
  agree_.write("reporting the interruption", [&] {
    if (!dir_) return;
    log_.warn("interrupted ({}) at step {}/{}; checkpoint written to {}", signal == SIGINT ? "SIGINT" : "SIGTERM",
              s_.state.step, s_.total, dir_->checkpoint_path());
    log_.warn("resume with: resnet-train --resume {}", dir_->path());
  });
  return signal == SIGINT ? kExitSigint : kExitSigterm;
}

// The final evaluation (unless the last step made one) and summary.json.
void Loop::finish() {
  if (!have_test_) {
    const auto eval_start = Clock::now();
    agree_.batchnorm(*s_.model, s_.state.step);
    last_test_ = evaluate(*s_.model, s_.splits.test, s_.normalizer, eval_opts_);
    s_.state.eval_seconds += seconds_since(eval_start);
  }
  const TrainState& st = s_.state;
  const double wall = timing_.elapsed();
  const bool exchanged = !s_.comm->backend().empty();
  const nlohmann::json summary = {
      {"name", s_.config.name},
      {"final_test_error", last_test_.error},
      {"final_test_loss", last_test_.loss},
      {"best_val_error", st.best_val_error >= 0 ? nlohmann::json(st.best_val_error) : nlohmann::json()},
      {"best_val_step", st.best_val_step >= 0 ? nlohmann::json(st.best_val_step) : nlohmann::json()},
      {"parameters", count_parameters(*s_.model)},
      {"steps", st.step},
      {"wall_time_s", wall},
      {"train_time_s", st.train_seconds},  // training steps only
      {"eval_time_s", st.eval_seconds},    // test (and validation) evaluations
      {"images_per_sec", st.train_seconds > 0 ? st.images_trained / st.train_seconds : 0.0},
      {"device", compat::device_name(s_.runtime.device)},
      {"precision", s_.runtime.bf16 ? "bf16" : "fp32"},
      {"torch_version", compat::torch_version()},
      {"cuda_graph", stepper_.graph_active()},
      {"world_size", s_.comm->size()},
      {"dist_backend", exchanged ? nlohmann::json(s_.comm->backend()) : nlohmann::json()},
      // Host time in the gradient exchange this session; null where there is none, and where the
      // graph replays it (the host never sees it then).
      {"allreduce_time_s",
       exchanged && !stepper_.graph_active() ? nlohmann::json(s_.grads->take_seconds()) : nlohmann::json()}};
  agree_.write("writing the summary", [&] {
    if (!dir_) return;
    dir_->write_json("summary.json", summary);
    log_.info("done: test error {:.2f}% after {} steps in {}; summary in {}", 100 * last_test_.error, st.step,
              format_duration(wall), dir_->file("summary.json"));
  });
}

}  // namespace

int run_session(Session& s, const RunDir* dir, bool resumed) {
  const bool tty = s.options.console && s.options.progress && ::isatty(STDOUT_FILENO) && dir;
  auto log = make_logger(s, dir, tty);
  Observers observers;
  s.agree->write("starting the run's log", [&] {
    log_start(s, dir, *log, resumed);
    observers = make_observers(dir, *log, tty, s.config.runtime.tensorboard);
  });
  TrainStep stepper(*s.model, *s.sgd, *s.source, s.runtime, log.get());
  stepper.set_grad_sync(s.grads.get());
  if (s.options.non_finite_loss_at > 0) stepper.inject_non_finite_loss(s.options.non_finite_loss_at - 1);
  stepper.check_graph(learning_rate(s.config.train, s.state.step, s.total));  // CUDA graphs: graph vs eager, once
  SignalScope signals;
  s.model->train();
  return Loop(s, dir, *log, observers, stepper).run();
}

}  // namespace resnet
