#include "train/session.h"

#include <ATen/ATen.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "interop/state_dict.h"
#include "interop/weights.h"
#include "train/lr_schedule.h"
#include "train/resume_policy.h"
#include "train/run_dir.h"
#include "util/errors.h"

namespace resnet {
namespace {

// Console output: log lines, clearing a live progress line first on a terminal.
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

// Whether `now` normalises otherwise than the checkpoint's run did (a resume allowed to change
// data.normalize, data.mean or data.std).
bool normaliser_changed(const DataConfig& before, const DataConfig& now) {
  return before.normalize != now.normalize || before.mean != now.mean || before.std != now.std;
}

// The data, its splits and the normaliser; the data folder resolved into the stored config (so
// resume and resnet-eval find it without being told again; a --data-dir given later still wins).
void prepare_data(Session& s, CheckpointReader* from) {
  const std::string data_dir = resolve_data_dir(s.options.data_dir, s.config.data);
  s.data = load_cifar10(data_dir);
  s.config.data.dir = std::filesystem::absolute(data_dir).lexically_normal().string();
  s.data_fingerprint = data_fingerprint(s.data);
  if (from)  // a new folder, or other files, are a change of the run: recorded or refused
    check_data_change(*from, data_dir, s.config.data.dir, s.data_fingerprint, s.options.allow_changes, s.changes);
  s.splits = make_splits(s.data, s.config.data);
  // Evaluation sets stay on the device too: evaluate() then reads them in place every time.
  for (ImageSet* set : {&s.splits.test, &s.splits.val})
    if (set->size() > 0) *set = {set->images.to(s.runtime.device), set->labels.to(s.runtime.device)};
  // A resume keeps the checkpoint's normaliser unless it was allowed to change how inputs are
  // normalised (data.normalize, data.mean, data.std): then the new setting applies from here on.
  s.normalizer = from && !normaliser_changed(from->config().data, s.config.data)
                     ? from->contents().normalizer
                     : make_normalizer(s.splits.train.images, s.config.data);
}

}  // namespace

void start(Session& s, Job& job) {
  const LaunchEnv& env = job.env();
  std::string backend;
  job.agree("resolving the runtime", [&] {
    s.runtime = resolve_runtime(s.config.runtime, env.local_rank, env.local_world_size);
    if (env.active()) backend = resolve_backend(s.config.runtime.dist_backend, s.runtime.device);
  });
  apply_runtime(s.runtime);
  if (env.active() && s.runtime.cuda_graph && backend != "nccl") {
    // Gloo's collectives on CUDA tensors synchronise with the host: they cannot be captured.
    s.runtime.cuda_graph = false;
    s.runtime.warnings.push_back(
        "runtime.cuda_graph: off with the gloo backend (its all-reduce cannot be "
        "captured); use nccl on GPUs");
  }
  s.comm = job.connect(backend, s.runtime.device, std::chrono::seconds(s.config.runtime.dist_timeout_s));
  // Test hook: every rank appends its collectives to <folder>/rank<N>.txt (tests/test_dist.cpp).
  if (const char* folder = std::getenv("RESNET_RECORD_COLLECTIVES"); folder && *folder)
    s.comm->record_to(std::string(folder) + "/rank" + std::to_string(s.comm->rank()) + ".txt");
  s.agree = std::make_unique<Agreements>(*s.comm, s.runtime.device.is_cuda());
}

void prepare(Session& s, CheckpointReader* from) {
  prepare_data(s, from);
  at::manual_seed(static_cast<uint64_t>(s.config.runtime.seed));                         // weight initialisation
  if (from) check_file_fits(s.config.model, from->model_tensors(), from->path(), true);  // sized before built
  s.model = make_model(s.config.model);
  if (!from) init_from_file(*s.model, s.config.model);  // model.init_from: fine-tuning (interop/weights.h)
  s.model->to(s.runtime.device);
  if (s.runtime.channels_last) to_channels_last(*s.model);
  const auto& t = s.config.train;
  s.sgd = std::make_unique<Sgd>(s.model->parameters(), sgd_options(t));
  if (from) {
    from->load_model(*s.model);
    from->load_optimizer(*s.sgd, *s.model);
    s.state = from->contents().state;
  }
  s.source =
      std::make_unique<BatchSource>(s.splits.train, s.normalizer, t.batch_size, s.config.data.augment,
                                    static_cast<uint64_t>(s.config.runtime.seed), s.runtime.device, s.agree->shard());
  s.total = total_steps(t, s.source->steps_per_epoch());
}

void join_ranks(Session& s) {
  s.agree->start_up(*s.model, *s.sgd);
  s.grads = s.comm->gradient_average(s.model->parameters());
}

nlohmann::json stored_config(const Session& s) {
  nlohmann::json j = to_json(s.config);
  if (!s.changes.empty()) j["resume_changes"] = s.changes;
  return j;
}

std::shared_ptr<spdlog::logger> make_logger(const Session& s, const RunDir* dir, bool tty) {
  if (!dir) {
    auto err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    err->set_pattern(fmt::format("[rank {}] %v", s.comm->rank()));
    auto log = std::make_shared<spdlog::logger>("train", err);
    log->set_level(spdlog::level::warn);
    return log;
  }
  auto file_sink = dir->log_sink();  // train.log, opened in the run folder without following a symlink
  auto console = std::make_shared<ConsoleSink>(tty);
  console->set_pattern("%v");
  file_sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  auto log = s.options.console ? std::make_shared<spdlog::logger>("train", spdlog::sinks_init_list{console, file_sink})
                               : std::make_shared<spdlog::logger>("train", file_sink);
  log->flush_on(spdlog::level::info);
  // A log that cannot be written (disk full) stops the run like any other write error: one line
  // naming the file, exit 1 (spdlog's default prints to stderr and carries on).
  const std::string log_path = dir->log_path();
  log->set_error_handler(
      [log_path](const std::string& msg) { throw std::runtime_error(log_path + ": write failed (" + msg + ")"); });
  if (!dir->lock_warning().empty()) log->warn("{}", dir->lock_warning());
  return log;
}

}  // namespace resnet
