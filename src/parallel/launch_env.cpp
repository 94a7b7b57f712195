#include "parallel/launch_env.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>

#include "util/errors.h"

namespace resnet {

namespace {

int parse_int(const char* name, const char* value, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(value, &end, 10);
  if (errno || end == value || *end != '\0' || v < lo || v > hi)
    throw InputError(fmt::format("environment variable {}='{}': expected an integer in {}..{}", name, value, lo, hi));
  return static_cast<int>(v);
}

}  // namespace

std::string LaunchEnv::describe() const {
  return fmt::format("rank {} of {} (local {} of {}) via {}, store {}:{}{}", rank, world_size, local_rank,
                     local_world_size, launcher, master_addr, master_port,
                     restart_count > 0 ? fmt::format(", restart {}", restart_count) : std::string());
}

namespace {

// Environment lookups: empty counts as unset.
struct Vars {
  std::function<const char*(const char*)> getenv_fn;
  const char* get(const char* name) const {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v && *v ? v : nullptr;
  }
  const char* need(const char* name, const char* why) const {
    const char* v = get(name);
    if (!v) throw InputError(fmt::format("environment variable {} is not set ({})", name, why));
    return v;
  }
};

// torchrun (or anything that sets its variables).
LaunchEnv torchrun_env(const Vars& v) {
  const char* why = "RANK and WORLD_SIZE are set: a torchrun-style launch needs all of its variables";
  LaunchEnv env;
  env.launcher = "torchrun";
  env.world_size = parse_int("WORLD_SIZE", v.need("WORLD_SIZE", why), 1, 1 << 20);
  env.rank = parse_int("RANK", v.need("RANK", why), 0, env.world_size - 1);
  env.local_rank = v.get("LOCAL_RANK") ? parse_int("LOCAL_RANK", v.get("LOCAL_RANK"), 0, env.world_size - 1) : 0;
  env.local_world_size = v.get("LOCAL_WORLD_SIZE")
                             ? parse_int("LOCAL_WORLD_SIZE", v.get("LOCAL_WORLD_SIZE"), 1, env.world_size)
                             : env.world_size;
  if (env.local_rank >= env.local_world_size)
    throw InputError(fmt::format("environment variable LOCAL_RANK={} is not below LOCAL_WORLD_SIZE={}", env.local_rank,
                                 env.local_world_size));
  env.master_addr = v.need("MASTER_ADDR", why);
  env.master_port = parse_int("MASTER_PORT", v.need("MASTER_PORT", why), 1, 65535);
  if (const char* r = v.get("TORCHELASTIC_RESTART_COUNT"))
    env.restart_count = parse_int("TORCHELASTIC_RESTART_COUNT", r, 0, 1 << 30);
  if (const char* a = v.get("TORCHELASTIC_USE_AGENT_STORE")) {
    const std::string s = a;
    if (s != "True" && s != "False" && s != "true" && s != "false" && s != "1" && s != "0")
      throw InputError("environment variable TORCHELASTIC_USE_AGENT_STORE='" + s + "': expected True or False");
    env.agent_store = s == "True" || s == "true" || s == "1";
  }
  return env;
}

// An srun job step of `tasks` tasks: one task per rank.
LaunchEnv slurm_env(const Vars& v, int tasks) {
  LaunchEnv env;
  env.launcher = "slurm";
  env.world_size = tasks;
  env.rank = parse_int("SLURM_PROCID", v.get("SLURM_PROCID"), 0, env.world_size - 1);
  env.local_rank =
      v.get("SLURM_LOCALID") ? parse_int("SLURM_LOCALID", v.get("SLURM_LOCALID"), 0, env.world_size - 1) : 0;
  const int nodes =
      v.get("SLURM_STEP_NUM_NODES") ? parse_int("SLURM_STEP_NUM_NODES", v.get("SLURM_STEP_NUM_NODES"), 1, 1 << 20) : 1;
  env.local_world_size = nodes > 0 && env.world_size % nodes == 0 ? env.world_size / nodes : 1;
  if (env.local_rank >= env.local_world_size) env.local_world_size = env.local_rank + 1;
  if (const char* addr = v.get("MASTER_ADDR")) {
    env.master_addr = addr;
  } else if (nodes == 1) {
    env.master_addr = "127.0.0.1";
  } else {
    throw InputError(
        "environment variable MASTER_ADDR is not set: a Slurm step over several nodes needs the "
        "first node's address (e.g. export MASTER_ADDR=$(scontrol show hostnames | head -n1))");
  }
  if (const char* port = v.get("MASTER_PORT")) {
    env.master_port = parse_int("MASTER_PORT", port, 1, 65535);
  } else {  // one port per job, so that two jobs on one node do not meet
    const char* job = v.get("SLURM_JOB_ID");
    env.master_port = 20000 + (job ? parse_int("SLURM_JOB_ID", job, 0, 1 << 30) % 20000 : 9500);
  }
  if (const char* r = v.get("SLURM_RESTART_COUNT")) env.restart_count = parse_int("SLURM_RESTART_COUNT", r, 0, 1 << 30);
  return env;
}

}  // namespace

LaunchEnv read_launch_env(const std::function<const char*(const char*)>& getenv_fn) {
  const Vars v{getenv_fn};
  if (v.get("RANK") || v.get("WORLD_SIZE")) return torchrun_env(v);
  // SLURM_STEP_NUM_TASKS is set for job steps (srun), not for the batch script itself, whose
  // SLURM_NTASKS may be > 1 while it runs one process.
  const char* step_tasks = v.get("SLURM_STEP_NUM_TASKS");
  if (step_tasks && v.get("SLURM_PROCID")) {
    const int tasks = parse_int("SLURM_STEP_NUM_TASKS", step_tasks, 1, 1 << 20);
    if (tasks > 1) return slurm_env(v, tasks);
  }
  return LaunchEnv{};
}

}  // namespace resnet
