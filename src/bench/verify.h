#pragma once
// resnet-bench --mode verify: proof, on the machine at hand, that the fast training step computes
// what the plain one does. On the same batches (fp32, cuDNN benchmark off, deterministic cuDNN):
//   graph_matches_eager   N steps replayed from the CUDA graph vs N eager steps: loss per step
//                         and final weights agree to rounding
//   lr_zero_freezes       lr set to 0 after the capture: replays leave every parameter unchanged
//   milestone_follows     an lr schedule crossing a milestone during the replays matches an eager
//                         LibTorch torch::optim::SGD reference, far closer than a run that kept
//                         the first lr would (what a graph with the lr baked in would do)
//   summary_says_graph    a real (tiny) training run's summary.json reports cuda_graph as it ran
//   fallback_after_throw, fallback_after_sync
//                         a capture made to fail (an exception inside it; a host sync, which CUDA
//                         refuses under capture) falls back to eager steps that match plain eager
// On the CPU the graph does not exist: the same checks run their eager parts (eager vs eager,
// lr 0 on eager steps, the milestone vs torch::optim::SGD, the summary saying false) and the
// fault checks are reported as skipped: {"name", "skipped": "needs CUDA"}, with no "passed".
#include <nlohmann/json.hpp>

#include "config/config.h"

namespace resnet {

// One JSON object: {"mode": "verify", ..., "checks": [{"name", "passed", ...figures} or
// {"name", "skipped": why}], "ran": N, "skipped": M, "passed"}; "passed" is over the N checks
// that ran (and false if none did).
nlohmann::json run_verify(const ExperimentConfig& config, int64_t steps);

// {"ran", "skipped", "passed"} over `checks`: a check that says "skipped" did not run and counts
// for nothing in "passed", which is true only when at least one check ran and every one passed.
nlohmann::json tally_checks(const nlohmann::json& checks);

}  // namespace resnet
