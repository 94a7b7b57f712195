#pragma once
// Plots through gnuplot (Debian's gnuplot-nox, installed by scripts/install_deps.sh): each plot is
// written as a self-contained .gp script (data inline) beside its PNG, then rendered. The script
// stays, so a user can restyle a figure without re-running the analysis.
#include <string>
#include <vector>

namespace resnet::plots {

struct Series {
  std::string title;
  std::vector<double> x, y;
  std::vector<double> err;  // optional error bars (same length as y)
};

struct Panel {
  Panel(std::string t, std::string x, std::string y)
      : title(std::move(t)), xlabel(std::move(x)), ylabel(std::move(y)) {}
  std::string title, xlabel, ylabel;
  bool logy = false;
  std::vector<Series> series;
  std::vector<std::pair<std::string, double>> hlines;  // dashed reference lines (title, y)
  std::string style = "linespoints";                   // gnuplot "with" style
};

// Renders panels side by side (`columns` per row) into `png`. Throws std::runtime_error when
// gnuplot is missing or fails; the .gp script is kept either way.
void line_plot(const std::string& png, const std::string& title, const std::vector<Panel>& panels, int columns = 2,
               int panel_width = 640, int panel_height = 460);

// A grey-scale image panel: `values` row-major [rows, cols]; an RGB panel: `rgb` [3, rows, cols]
// in 0..1. Used for feature-map grids.
struct ImagePanel {
  std::string title;
  int64_t rows = 0, cols = 0;
  std::vector<float> values;  // grey
  bool rgb = false;
};
void image_grid(const std::string& png, const std::string& title, const std::vector<ImagePanel>& panels, int columns,
                int panel_size = 300);

// Writes `script` beside `png` (same name, .gp) and runs gnuplot on it; the errors of line_plot.
void render(const std::string& png, const std::string& script);

// Quotes a string for gnuplot (titles, file names).
std::string quote(const std::string& s);

}  // namespace resnet::plots
