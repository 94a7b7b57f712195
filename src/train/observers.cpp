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
  void on_eval(const EvalReport& r) override { dir_.append_metrics(r.row); }

 private:
  const RunDir& dir_;
};

#if defined(RESNET_WITH_TENSORBOARD)
// The same numbers as the metrics row, one TensorBoard tag each.
class TensorBoardEvents final : public Observer {
 public:
  explicit TensorBoardEvents(const RunDir& dir) : events_(dir.path()) {}
  void on_eval(const EvalReport& r) override {
    std::map<std::string, double> scalars;
    for (const auto& [column, tag] : std::map<std::string, std::string>{
             {"train_loss", "train/loss"}, {"train_error", "train/error"}, {"test_loss", "test/loss"},
             {"test_error", "test/error"}, {"val_loss", "val/loss"}, {"val_error", "val/error"},
             {"lr", "lr"}, {"images_per_sec", "images_per_sec"}})
      if (r.row[column].is_number()) scalars[tag] = r.row[column].get<double>();
    events_.scalars(r.row["step"].get<int64_t>(), scalars);
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
    const auto& row = r.row;
    const bool have_val = row["val_error"].is_number();
    log_.info("step {}/{} epoch {:.2f}: train loss {:.4f} err {:.2f}% | test loss {:.4f} err {:.2f}%{} | lr {:.4g} | {:.0f} img/s",
              row["step"].get<int64_t>(), r.total, row["epoch"].get<double>(), row["train_loss"].get<double>(),
              100 * row["train_error"].get<double>(), row["test_loss"].get<double>(),
              100 * row["test_error"].get<double>(),
              have_val ? fmt::format(" | val err {:.2f}%", 100 * row["val_error"].get<double>()) : std::string(),
              row["lr"].get<double>(), row["images_per_sec"].get<double>());
  }

 private:
  spdlog::logger& log_;
};

// The progress line at log points: rewritten in place on a terminal, else a log line.
class ProgressLine final : public Observer {
 public:
  ProgressLine(spdlog::logger& log, bool tty) : log_(log), tty_(tty) {}
  void on_progress(const Progress& p) override {
    const std::string line = fmt::format("step {}/{} | loss {:.4f} | train err {:.2f}% | lr {:.4g} | {:.0f} img/s | ETA {}",
                                         p.step, p.total, p.loss, 100 * p.error, p.lr, p.images_per_sec,
                                         format_duration(p.eta_seconds));
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

Observers make_observers(const RunDir* dir, spdlog::logger& log, bool tty, bool tensorboard) {
  Observers out;
  if (!dir) return out;
  out.add(std::make_unique<MetricsFiles>(*dir));
#if defined(RESNET_WITH_TENSORBOARD)
  if (tensorboard) out.add(std::make_unique<TensorBoardEvents>(*dir));
#else
  if (tensorboard)
    log.warn("runtime.tensorboard: this build has no TensorBoard support (protobuf or Boost were missing when it "
             "was built); no event files");
#endif
  out.add(std::make_unique<EvalLogLine>(log));
  out.add(std::make_unique<ProgressLine>(log, tty));
  return out;
}

}  // namespace resnet
