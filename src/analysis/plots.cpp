#include "analysis/plots.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "util/folder.h"
#include "util/json_io.h"

namespace resnet::plots {

void render(const std::string& png, const std::string& script) {
  const std::string gp = png.substr(0, png.size() - 4) + ".gp";
  // gnuplot opens the picture and its log by name: whatever is there (a planted symlink) goes
  // first, so that they are created new in the --out folder (util/folder.h); the script is
  // written as every file is.
  const Folder out = Folder::open(parent_folder(png));
  for (const std::string& f : {png, gp + ".log"}) out.remove(std::filesystem::path(f).filename().string());
  write_file_atomic(gp, script);
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    throw std::runtime_error("gnuplot not found (install it with scripts/install_deps.sh); the plot script is " + gp);
  const std::string cmd = "gnuplot " + quote(gp) + " 2>" + quote(gp + ".log");
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("gnuplot failed on " + gp + " (see " + gp + ".log)");
  std::remove((gp + ".log").c_str());
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
  return q + "'";
}

void line_plot(const std::string& png, const std::string& title, const std::vector<Panel>& panels, int columns,
               int panel_width, int panel_height) {
  const int n = static_cast<int>(panels.size());
  const int cols = std::min(columns, n);
  const int rows = (n + cols - 1) / cols;
  std::ostringstream gp;
  gp << fmt::format("set terminal pngcairo size {},{} noenhanced font 'Sans,10'\n", cols * panel_width,
                    rows * panel_height + 40);
  gp << "set output " << quote(png) << "\n";
  // Inline data: one block per series.
  for (int p = 0; p < n; ++p)
    for (size_t s = 0; s < panels[p].series.size(); ++s) {
      const Series& se = panels[p].series[s];
      gp << fmt::format("$d{}_{} << EOD\n", p, s);
      for (size_t i = 0; i < se.x.size(); ++i) {
        gp << se.x[i] << " " << se.y[i];
        if (!se.err.empty()) gp << " " << se.err[i];
        gp << "\n";
      }
      gp << "EOD\n";
    }
  gp << fmt::format("set multiplot layout {},{} title {} font 'Sans,13'\n", rows, cols, quote(title));
  gp << "set grid\nset key top right box opaque\n";
  for (int p = 0; p < n; ++p) {
    const Panel& pa = panels[p];
    gp << "set title " << quote(pa.title) << "\nset xlabel " << quote(pa.xlabel) << "\nset ylabel " << quote(pa.ylabel)
       << "\n";
    gp << (pa.logy ? "set logscale y\n" : "unset logscale y\n");
    std::vector<std::string> items;
    for (size_t s = 0; s < pa.series.size(); ++s) {
      const Series& se = pa.series[s];
      const std::string style = se.err.empty() ? pa.style : "yerrorlines";
      items.push_back(fmt::format("$d{}_{} using 1:2{} with {} lw 2 title {}", p, s, se.err.empty() ? "" : ":3", style,
                                  quote(se.title)));
    }
    for (const auto& [label, y] : pa.hlines)
      items.push_back(fmt::format("{} with lines dt 2 lw 1.5 title {}", y, quote(label)));
    if (items.empty()) items.push_back("NaN notitle");
    gp << "plot ";
    for (size_t i = 0; i < items.size(); ++i) gp << (i ? ", \\\n     " : "") << items[i];
    gp << "\n";
  }
  gp << "unset multiplot\n";
  render(png, gp.str());
}

void image_grid(const std::string& png, const std::string& title, const std::vector<ImagePanel>& panels, int columns,
                int panel_size) {
  const int n = static_cast<int>(panels.size());
  const int cols = std::min(columns, n);
  const int rows = (n + cols - 1) / cols;
  std::ostringstream gp;
  gp << fmt::format("set terminal pngcairo size {},{} noenhanced font 'Sans,10'\n", cols * panel_size,
                    rows * panel_size + 40);
  gp << "set output " << quote(png) << "\n";
  for (int p = 0; p < n; ++p) {
    const ImagePanel& im = panels[p];
    gp << fmt::format("$img{} << EOD\n", p);
    const int64_t plane = im.rows * im.cols;
    for (int64_t r = 0; r < im.rows; ++r) {
      for (int64_t c = 0; c < im.cols; ++c) {
        // Row 0 at the top: gnuplot's y grows upwards.
        gp << c << " " << (im.rows - 1 - r);
        if (im.rgb) {
          for (int ch = 0; ch < 3; ++ch) gp << " " << static_cast<int>(255 * im.values[ch * plane + r * im.cols + c]);
        } else {
          gp << " " << im.values[r * im.cols + c];
        }
        gp << "\n";
      }
      gp << "\n";
    }
    gp << "EOD\n";
  }
  gp << fmt::format("set multiplot layout {},{} title {} font 'Sans,13'\n", rows, cols, quote(title));
  gp << "unset xtics\nunset ytics\nunset colorbox\nset size ratio -1\nset palette grey\n";
  gp << "set margins 1,1,1,3\n";
  for (int p = 0; p < n; ++p) {
    const ImagePanel& im = panels[p];
    gp << "set title " << quote(im.title) << "\n";
    gp << fmt::format("set xrange [-0.5:{}]\nset yrange [-0.5:{}]\n", im.cols - 0.5, im.rows - 0.5);
    gp << fmt::format("plot $img{} using 1:2:3{} with {} notitle\n", p, im.rgb ? ":4:5" : "",
                      im.rgb ? "rgbimage" : "image");
  }
  gp << "unset multiplot\n";
  render(png, gp.str());
}

}  // namespace resnet::plots
