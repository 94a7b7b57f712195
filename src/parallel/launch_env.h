#pragma once
// Where this process sits in a multi-process job, as its launcher (torchrun or srun) says.
// Nothing here talks to other processes: parallel/job.h does.
#include <functional>
#include <string>

namespace resnet {

struct LaunchEnv {
  std::string launcher;  // "torchrun", "slurm" or "" (a plain single process)
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  int restart_count = 0;     // TORCHELASTIC_RESTART_COUNT: > 0 after torchrun restarted the job
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE: torchrun's agent hosts the store

  bool active() const { return !launcher.empty(); }
  std::string describe() const;  // "rank 1 of 2 (local 1 of 2) via torchrun, store host:port"
};

// Reads torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT, TORCHELASTIC_RESTART_COUNT, TORCHELASTIC_USE_AGENT_STORE) or, when they are
// absent, those of a Slurm job step launched by srun with more than one task (SLURM_PROCID,
// SLURM_STEP_NUM_TASKS, SLURM_LOCALID; MASTER_ADDR/MASTER_PORT or, on one node, localhost and a
// port derived from the job id). Neither: an inactive LaunchEnv. Bad values: InputError naming
// the variable. `getenv` is injectable for tests.
LaunchEnv read_launch_env(const std::function<const char*(const char*)>& getenv = nullptr);

}  // namespace resnet
