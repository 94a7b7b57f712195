#pragma once
// resnet-analyze landscape | hessian | paths: the geometry behind trainability (loss surfaces,
// curvature, the paths gradients take). Their flags, and running them as batch jobs over a
// Communicator (parallel/communicator.h: one process, or the ranks of torchrun/srun over c10d):
// the ranks split the work items, the writer (rank 0) writes the files.
#include <cstdint>
#include <string>
#include <vector>

#include "analysis/analysis.h"
#include "config/config.h"
#include "parallel/communicator.h"
#include "train/runtime.h"

namespace CLI {
class App;
}

namespace resnet::cli {

struct GeometryFlags {
  std::string split = "train";   // which images: the first --images of this split
  uint64_t seed = 0;             // directions, power-iteration starts, probes, path samples
  // landscape
  std::string kind = "surface";  // surface | line | interpolate
  int64_t grid = 0;              // 0: 21 (surface), 41 (line, interpolate)
  double range = -1;             // < 0: 1 (surface, line), 0.5 (interpolate)
  bool include_bn = false;
  // hessian
  int64_t top_k = 1, max_iterations = 100, probes = 32, slq_runs = 1, lanczos_steps = 40;
  double tolerance = 1e-3;
  // paths
  int64_t samples = 10;
  double mass = 0.9;
};

bool is_geometry_analysis(const std::string& analysis);
// Registers the flags above on resnet-analyze's command line.
void add_geometry_flags(CLI::App& app, GeometryFlags& flags);
// Whether the analysis reads the training split (resnet-analyze loads it only then).
bool geometry_needs_train(const std::string& analysis, const GeometryFlags& flags);

// The runtime.* keys of resnet-analyze's --set list over the defaults (precision, threads,
// channels_last, dist_backend, dist_timeout_s); the other keys are the configs'.
RuntimeConfig runtime_settings(const std::vector<std::string>& sets);

// Runs `analysis` on `subjects`, its items split over `comm`'s ranks; the writer writes
// <analysis>.json and its PNGs into `out_dir` and prints their paths (every rank learns whether
// that worked). `images` and `batch` are resnet-analyze's --images/--batch, 0 where not given
// (each analysis has its own default); `rt` the runtime resnet-analyze resolved for this rank
// (precision, channels_last apply).
int run_geometry(const std::string& analysis, const GeometryFlags& flags, std::vector<Subject>& subjects,
                 const Cifar10& data, int64_t images, int64_t batch, const Runtime& rt, const std::string& out_dir,
                 Communicator& comm);

}  // namespace resnet::cli
