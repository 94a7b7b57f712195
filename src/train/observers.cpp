#include "train/observers.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <map>

#include "train/run_dir.h"
#include "util/duration.h"

#if defined(RESNET_WITH_TENSORBOARD)
#include "tensorboard/event_writer.h"
#endif

namespace resnet {
namespace {

// metrics.jsonl and metrics.csv: one row per evaluation, appended and fsynced.
class MetricsFiles final : public Observer {
 public:
  explicit MetricsFiles(const RunDir& dir) : dir_(dir) {}
  void on_eval(const EvalReport& r) override { dir_.append_metrics(to_json(r.row)); }

 private:
  const RunDir& dir_;
};

#if defined(RESNET_WITH_TENSORBOARD)
// The same numbers as the metrics row, one TensorBoard tag each.
class TensorBoardEvents final : public Observer {
 public:
  explicit TensorBoardEvents(const RunDir& dir) : events_(dir.path()) {}
  void on_eval(const EvalReport& r) override {
    const EvalRow& row = r.row;
    std::map<std::string, double> scalars = {{"train/loss", row.train_loss},
                                             {"train/error", row.train_error},
                                             {"test/loss", row.test_loss},
                                             {"test/error", row.test_error},
                                             {"lr", row.lr},
                                             {"images_per_sec", row.images_per_sec}};
    if (row.val_loss) scalars["val/loss"] = *row.val_loss;
    if (row.val_error) scalars["val/error"] = *row.val_error;
    events_.scalars(row.step, scalars);
  }

 private:
  tensorboard::EventWriter events_;
};
#endif

// The evaluation's line in train.log (and on the console).
class EvalLogLine final : public Observer {
 public:
  explicit EvalLogLine(spdlog::logger& log) : log_(log) {}
  void on_eval(const EvalReport& r) override {
    const EvalRow& row = r.row;
    log_.info(
        "step {}/{} epoch {:.2f}: train loss {:.4f} err {:.2f}% | test loss {:.4f} err {:.2f}%{} | lr {:.4g} | {:.0f} "
        "img/s",
        row.step, r.total, row.epoch, row.train_loss, 100 * row.train_error, row.test_loss, 100 * row.test_error,
        row.val_error ? fmt::format(" | val err {:.2f}%", 100 * *row.val_error) : std::string(), row.lr,
        row.images_per_sec);
  }

 private:
  spdlog::logger& log_;
};

// The progress line at log points: rewritten in place on a terminal, else a log line.
class ProgressLine final : public Observer {
 public:
  ProgressLine(spdlog::logger& log, bool tty) : log_(log), tty_(tty) {}
  void on_progress(const Progress& p) override {
    const std::string line =
        fmt::format("step {}/{} | loss {:.4f} | train err {:.2f}% | lr {:.4g} | {:.0f} img/s | ETA {}", p.step, p.total,
                    p.loss, 100 * p.error, p.lr, p.images_per_sec, format_duration(p.eta_seconds));
    if (tty_) {
      std::fputs(("\r\033[K" + line).c_str(), stdout);
      std::fflush(stdout);
    } else {
      log_.info("{}", line);
    }
  }

 private:
  spdlog::logger& log_;
  bool tty_;
};

}  // namespace

nlohmann::json to_json(const EvalRow& r) {
  auto optional = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
  return {{"step", r.step},
          {"epoch", r.epoch},
          {"lr", r.lr},
          {"train_loss", r.train_loss},
          {"train_error", r.train_error},
          {"test_loss", r.test_loss},
          {"test_error", r.test_error},
          {"val_loss", optional(r.val_loss)},
          {"val_error", optional(r.val_error)},
          {"images_per_sec", r.images_per_sec},
          {"elapsed_s", r.elapsed_s}};
}

Observers make_observers(const RunDir* dir, spdlog::logger& log, bool tty, bool tensorboard) {
  Observers out;
  if (!dir) return out;
  out.add(std::make_unique<MetricsFiles>(*dir));
#if defined(RESNET_WITH_TENSORBOARD)
  if (tensorboard) out.add(std::make_unique<TensorBoardEvents>(*dir));
#else
  if (tensorboard)
    log.warn(
        "runtime.tensorboard: this build has no TensorBoard support (protobuf or Boost were missing when it "
        "was built); no event files");
#endif
  out.add(std::make_unique<EvalLogLine>(log));
  out.add(std::make_unique<ProgressLine>(log, tty));
  return out;
}

}  // namespace resnet
