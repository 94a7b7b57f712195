#include "train/trainer.h"

#include <cstdio>
#include <filesystem>
#include <optional>

#include "train/loop.h"
#include "train/resume_policy.h"
#include "train/run_dir.h"
#include "train/session.h"
#include "util/errors.h"

#if defined(RESNET_WITH_TENSORBOARD)
#include "tensorboard/event_writer.h"
#endif

namespace resnet {

void check_run_name(const std::string& name) {
  const std::string why = "the default run folder is runs/<name>: use a plain folder name or give --out";
  if (name.empty() || name == "." || name == "..")
    throw InputError("name: '" + name + "' is not a folder name (" + why + ")");
  for (const char ch : name)
    if (ch == '/' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
      throw InputError("name: " + nlohmann::json(name).dump() + " is not a plain folder name (" + why + ")");
}

int train(const ExperimentConfig& config, const TrainOptions& options) {
  if (!options.allow_changes.empty()) throw InputError("--allow-change: only with --resume");
  if (options.out_dir.empty()) check_run_name(config.name);  // before any work
  const std::string out = options.out_dir.empty() ? "runs/" + config.name : options.out_dir;
  Session s;
  s.config = config;
  s.options = options;
  s.env = read_launch_env();
  Job job(s.env, std::chrono::seconds(config.runtime.dist_timeout_s));
  start(s, job);
  // Every input is checked before the run folder is touched.
  s.agree->write("checking the inputs", [&] { prepare(s, nullptr); });
  join_ranks(s);
  std::optional<RunDir> dir;
  s.agree->write("creating the run folder", [&] {
    if (!s.agree->writer()) return;
    dir.emplace(RunDir::create(out, options.force));
    dir->write_json("config.json", stored_config(s));
  });
  return run_session(s, dir ? &*dir : nullptr, false);
}

int resume(const std::string& run_dir, const std::vector<std::string>& sets, const TrainOptions& options) {
  Session s;
  s.options = options;
  s.env = read_launch_env();
  Job job(s.env);
  // Rank 0 locks the folder before any rank reads its checkpoint: no other process writes it meanwhile.
  std::optional<RunDir> dir;
  job.agree("opening the run folder", [&] {
    if (job.writer()) dir.emplace(RunDir::open(run_dir));
  });
  std::unique_ptr<CheckpointReader> reader;
  job.agree("reading the checkpoint", [&] {
    const std::string ckpt = (std::filesystem::path(run_dir) / "checkpoints" / "last.ckpt").string();
    if (std::filesystem::exists(ckpt)) reader = std::make_unique<CheckpointReader>(ckpt);
    ResumePlan plan = plan_resume(run_dir, reader.get(), sets, options.allow_changes);
    s.config = plan.config;
    s.changes = plan.changes;
  });
  start(s, job);
  s.agree->write("checking the inputs", [&] { prepare(s, reader.get()); });
  join_ranks(s);
  // Complete only with its summary: a run stopped between its last checkpoint and summary.json
  // goes on to its final evaluation and summary (the training loop has nothing left to do).
  if (s.state.step >= s.total && std::filesystem::exists(std::filesystem::path(run_dir) / "summary.json")) {
    if (s.agree->writer())
      std::printf("%s: already complete (%lld of %lld steps); raise train.iterations with --set to go on\n",
                  run_dir.c_str(), static_cast<long long>(s.state.step), static_cast<long long>(s.total));
    return kExitOk;
  }
  s.agree->write("preparing the run folder", [&] {
    if (!dir) return;
    dir->trim_to(s.state.step);
#if defined(RESNET_WITH_TENSORBOARD)
    tensorboard::trim_events(dir->path(), s.state.step);
#endif
    dir->write_json("config.json", stored_config(s));
  });
  return run_session(s, dir ? &*dir : nullptr, true);
}

}  // namespace resnet
