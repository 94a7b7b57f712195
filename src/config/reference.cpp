// The reference of every config key, from its declaration (config/keys.cpp): the text of
// `resnet-train --help-config` and docs/config.md (`--help-config markdown`; a test keeps the
// file equal to this output).
#include <fmt/format.h>

#include "config/keys.h"
#include "models/family.h"

namespace resnet {
namespace {

std::string checks_text(const ConfigKey& k) {
  std::string out;
  for (const auto& c : k.checks) out += (out.empty() ? "" : "; ") + c.text;
  return out;
}

// A markdown table cell: '|' would end the cell.
std::string cell(const std::string& text) {
  std::string out;
  for (char ch : text) out += ch == '|' ? std::string("\\|") : std::string(1, ch);
  return out;
}

std::string markdown() {
  std::string out =
      "# Config keys\n\n"
      "Every key of an experiment config, generated from its declaration in `src/config/keys.cpp` by\n"
      "`resnet-train --help-config markdown > docs/config.md` (a test fails when this file is stale).\n"
      "All keys are optional; the defaults are the paper's ResNet-20 recipe. A key that a resume may\n"
      "change is marked *resume*; the others need `--allow-change KEY`. Unknown keys, wrong types and\n"
      "values that fail a check are errors naming the key (exit 2).\n";
  std::string section = "-";
  for (const auto& k : config_keys()) {
    if (k.section() != section) {
      section = k.section();
      out += "\n## " + (section.empty() ? std::string("top level") : "`" + section + "`") + "\n\n";
      out += "| key | type | default | checks | resume | description |\n|---|---|---|---|---|---|\n";
    }
    out += fmt::format("| `{}` | {} | `{}` | {} | {} | {} |\n", k.name, cell(k.type), cell(k.default_value().dump()),
                       cell(checks_text(k)), k.resumable ? "resume" : "", cell(k.description));
  }
  out += "\n## Families (`model.family`)\n\n";
  for (const Family* f : families()) out += "- `" + f->name() + "`: " + f->summary() + "\n";
  return out;
}

std::string text() {
  std::string out = "Config keys (type = default; [resume]: a resume may change it; checks):\n";
  std::string section = "-";
  for (const auto& k : config_keys()) {
    if (k.section() != section) {
      section = k.section();
      out += "\n" + (section.empty() ? std::string("(top level)") : section) + "\n";
    }
    const std::string checks = checks_text(k);
    out += fmt::format("  {}  {} = {}{}{}\n      {}\n", k.name, k.type, k.default_value().dump(),
                       k.resumable ? "  [resume]" : "", checks.empty() ? "" : "  (" + checks + ")", k.description);
  }
  out += "\nFamilies (model.family):\n";
  for (const Family* f : families()) out += "  " + f->name() + ": " + f->summary() + "\n";
  return out;
}

}  // namespace

std::string config_reference(bool as_markdown) { return as_markdown ? markdown() : text(); }

}  // namespace resnet
