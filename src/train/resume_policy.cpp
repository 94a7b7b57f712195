#include "train/resume_policy.h"

#include <filesystem>
#include <map>

#include "config/keys.h"
#include "parallel/launch_env.h"
#include "train/checkpoint.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace resnet {
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
                       "--allow-change " +
                       key);
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

// config.json of a run stopped before its first checkpoint, with its change history checked.
nlohmann::json read_stored_config(const std::string& run_dir, nlohmann::json* history) {
  const std::string config_path = (std::filesystem::path(run_dir) / "config.json").string();
  if (!std::filesystem::exists(config_path))
    throw InputError(run_dir + ": not a run folder (no checkpoints/last.ckpt, no config.json)");
  nlohmann::json base = read_json_in(run_dir, "config.json");
  if (base.is_object() && base.contains("resume_changes")) {
    *history = base["resume_changes"];
    bool ok = history->is_array();
    for (const auto& c : *history) ok = ok && c.is_object() && c.contains("key") && c["key"].is_string();
    if (!ok) throw InputError(config_path + ": resume_changes: expected a list of {step, key, from, to}");
  }
  return base;
}

}  // namespace

const std::vector<std::string>& resumable_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> names;
    for (const auto& k : config_keys())
      if (k.resumable) names.push_back(k.name);
    return names;
  }();
  return keys;
}

bool allowed_by(const std::vector<std::string>& allow, const std::string& key) {
  for (const auto& a : allow)
    if (key == a || key.rfind(a + ".", 0) == 0) return true;
  return false;
}

ResumePlan plan_resume(const std::string& run_dir, const CheckpointReader* reader, const std::vector<std::string>& sets,
                       const std::vector<std::string>& allow) {
  ResumePlan plan;
  nlohmann::json base;
  nlohmann::json history = nlohmann::json::array();
  if (reader) {
    base = reader->contents().config;
    history = reader->contents().changes;
    plan.origin = (std::filesystem::path(run_dir) / "checkpoints" / "last.ckpt").string();
    plan.step = reader->contents().state.step;
  } else {  // stopped before its first checkpoint: start again from the run's own config
    base = read_stored_config(run_dir, &history);
    plan.origin = (std::filesystem::path(run_dir) / "config.json").string();
  }
  const ExperimentConfig stored = parse_stored(base, plan.origin);
  nlohmann::json user = base;
  if (user.is_object()) user.erase("resume_changes");
  for (const auto& assignment : sets) apply_override(user, assignment);
  try {
    plan.config = config_from_json(user);
  } catch (const InputError& e) {
    throw InputError(plan.origin + ": " + e.what());
  }
  plan.changes = history;
  for (auto& c : check_changes(stored, plan.config, allow, plan.step)) plan.changes.push_back(std::move(c));
  return plan;
}

void check_data_change(const CheckpointReader& reader, const std::string& data_dir, const std::string& data_path,
                       const std::string& fingerprint, const std::vector<std::string>& allow, nlohmann::json& changes) {
  const nlohmann::json& stored = reader.contents().config;
  const int64_t step = reader.contents().state.step;
  const std::string before =
      stored.contains("data") && stored["data"].contains("dir") && stored["data"]["dir"].is_string()
          ? stored["data"]["dir"].get<std::string>()
          : std::string();
  bool recorded = false;  // a --set data.dir is in the changes already: it records where it went
  for (auto& c : changes)
    if (c.value("key", "") == "data.dir" && c.value("step", int64_t{-1}) == step) c["to"] = data_path, recorded = true;
  if (!recorded && before != data_path)
    changes.push_back({{"step", step}, {"key", "data.dir"}, {"from", before}, {"to", data_path}, {"forced", false}});
  const std::string& trained_on = reader.contents().data_fingerprint;
  if (trained_on.empty() || trained_on == fingerprint) return;
  if (!allowed_by(allow, "data.dir"))
    throw InputError("data.dir: the CIFAR-10 files in " + data_dir +
                     " are not the ones this run trained on "
                     "(fingerprint " +
                     fingerprint + ", the run's " + trained_on +
                     "); resume with the run's data, or pass --allow-change data.dir");
  changes.push_back(
      {{"step", step}, {"key", "data.fingerprint"}, {"from", trained_on}, {"to", fingerprint}, {"forced", true}});
}

bool restarted_run(const std::string& out_dir, const ExperimentConfig& config) {
  const LaunchEnv env = read_launch_env();
  const std::filesystem::path stored_path = std::filesystem::path(out_dir) / "config.json";
  if (!env.active() || env.restart_count == 0 || !std::filesystem::exists(stored_path)) return false;
  try {
    nlohmann::json stored = read_json_in(out_dir, "config.json");
    if (stored.is_object()) stored.erase("resume_changes");
    nlohmann::json mine = to_json(config);
    nlohmann::json theirs = to_json(config_from_json(stored));
    mine["data"]["dir"] = "";
    theirs["data"]["dir"] = "";
    return mine == theirs;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace resnet
