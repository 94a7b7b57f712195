#pragma once
// Surfaces z(x, y) on a regular grid through gnuplot (as plots.h: a .gp script with the data
// inline, kept beside its PNG): a contour map (filled colours + contour lines, seen from above)
// and a 3-D surface, several side by side on ONE colour scale and z range, so that two nets'
// landscapes compare at a glance (Li et al. 2018, Fig. 5: ResNet-56 with and without skips).
#include <string>
#include <vector>

namespace resnet::plots {

struct SurfacePanel {
  std::string title;
  std::vector<double> x, y;  // axes: z[j * x.size() + i] is the value at (x[i], y[j])
  std::vector<double> z;     // NaN for a missing point
};

struct SurfaceStyle {
  std::string xlabel = "alpha", ylabel = "beta", zlabel = "loss";
  double zmin = 0, zmax = 1;  // the common scale; values above zmax are drawn at zmax
  int levels = 12;            // contour lines between zmin and zmax
  int panel_size = 520;
};

// The common scale of several panels: from the smallest finite value to the largest, capped at
// `cap` when the panels reach above it (Li et al. clip at loss 10 too: a chaotic surface would
// squash a smooth one into one colour).
SurfaceStyle common_scale(const std::vector<SurfacePanel>& panels, double cap);

void contour_plot(const std::string& png, const std::string& title, const std::vector<SurfacePanel>& panels,
                  const SurfaceStyle& style);
void surface_plot(const std::string& png, const std::string& title, const std::vector<SurfacePanel>& panels,
                  const SurfaceStyle& style);

}  // namespace resnet::plots
