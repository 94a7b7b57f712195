#include "analysis/surface_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "analysis/plots.h"

namespace resnet::plots {
namespace {

// The terminal, the output and each panel's data block ($s0, $s1...): rows of "x y z", a blank
// line after each y (gnuplot's grid format). Values above zmax are drawn at zmax.
std::string header(const std::string& png, const std::vector<SurfacePanel>& panels, const SurfaceStyle& st,
                   int height) {
  std::ostringstream gp;
  gp << fmt::format("set terminal pngcairo size {},{} noenhanced font 'Sans,10'\n",
                    static_cast<int>(panels.size()) * st.panel_size, height);
  gp << "set output " << quote(png) << "\n";
  for (size_t p = 0; p < panels.size(); ++p) {
    const SurfacePanel& s = panels[p];
    gp << fmt::format("$s{} << EOD\n", p);
    for (size_t j = 0; j < s.y.size(); ++j) {
      for (size_t i = 0; i < s.x.size(); ++i) {
        const double z = s.z[j * s.x.size() + i];
        gp << s.x[i] << " " << s.y[j] << " ";
        if (std::isfinite(z)) gp << std::min(z, st.zmax) << "\n";
        else gp << "NaN\n";
      }
      gp << "\n";
    }
    gp << "EOD\n";
  }
  return gp.str();
}

std::string common_settings(const SurfaceStyle& st) {
  return fmt::format(
      "set xlabel {}\nset ylabel {}\nset cblabel {}\nset cbrange [{}:{}]\n"
      "set palette defined (0 '#313695', 1 '#4575b4', 2 '#74add1', 3 '#abd9e9', 4 '#fee090', 5 '#fdae61', "
      "6 '#f46d43', 7 '#d73027', 8 '#a50026')\n",
      quote(st.xlabel), quote(st.ylabel), quote(st.zlabel), st.zmin, st.zmax);
}

}  // namespace

SurfaceStyle common_scale(const std::vector<SurfacePanel>& panels, double cap) {
  SurfaceStyle st;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& p : panels)
    for (double z : p.z)
      if (std::isfinite(z)) lo = std::min(lo, z), hi = std::max(hi, z);
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi > cap && lo < cap) hi = cap;
  if (hi - lo < 1e-9) hi = lo + 1e-3;  // a flat surface still gets a scale
  st.zmin = lo;
  st.zmax = hi;
  return st;
}

void contour_plot(const std::string& png, const std::string& title, const std::vector<SurfacePanel>& panels,
                  const SurfaceStyle& st) {
  std::ostringstream gp;
  gp << header(png, panels, st, st.panel_size);
  gp << fmt::format("set multiplot layout 1,{} title {} font 'Sans,13'\n", panels.size(), quote(title));
  gp << common_settings(st);
  // Filled colours from pm3d, contour lines from the same data drawn as lines (no surface).
  gp << "set view map\nset size square\nset pm3d at b interpolate 4,4\nset contour base\nunset clabel\nunset surface\n"
        "set key off\n";
  gp << fmt::format("set cntrparam levels incremental {},{},{}\n", st.zmin, (st.zmax - st.zmin) / st.levels, st.zmax);
  for (size_t p = 0; p < panels.size(); ++p) {
    const SurfacePanel& s = panels[p];
    gp << "set title " << quote(s.title) << "\n";
    gp << fmt::format("set xrange [{}:{}]\nset yrange [{}:{}]\n", s.x.front(), s.x.back(), s.y.front(), s.y.back());
    gp << fmt::format("splot $s{} using 1:2:3 with pm3d notitle, $s{} using 1:2:3 with lines lc rgb 'black' notitle\n",
                      p, p);
  }
  gp << "unset multiplot\n";
  render(png, gp.str());
}

void surface_plot(const std::string& png, const std::string& title, const std::vector<SurfacePanel>& panels,
                  const SurfaceStyle& st) {
  std::ostringstream gp;
  gp << header(png, panels, st, st.panel_size * 4 / 5);
  gp << fmt::format("set multiplot layout 1,{} title {} font 'Sans,13'\n", panels.size(), quote(title));
  gp << common_settings(st);
  gp << fmt::format("set zlabel {} rotate parallel\nset zrange [{}:{}]\n", quote(st.zlabel), st.zmin, st.zmax);
  gp << "set view 55,35\nset pm3d depthorder border lc rgb '#404040' lw 0.3\nset key off\n"
        "unset colorbox\nset xyplane relative 0\n";
  for (size_t p = 0; p < panels.size(); ++p) {
    const SurfacePanel& s = panels[p];
    gp << "set title " << quote(s.title) << "\n";
    gp << fmt::format("set xrange [{}:{}]\nset yrange [{}:{}]\n", s.x.front(), s.x.back(), s.y.front(), s.y.back());
    gp << fmt::format("splot $s{} using 1:2:3 with pm3d notitle\n", p);
  }
  gp << "unset multiplot\n";
  render(png, gp.str());
}

}  // namespace resnet::plots
