#include "interop/naming.h"

#include <fmt/format.h>

#include <set>
#include <stdexcept>

#include "interop/state_dict.h"
#include "models/family.h"
#include "util/errors.h"

namespace resnet {
namespace {

// `name` with every dotted component found in `parts` replaced.
std::string map_components(const std::string& name, const std::map<std::string, std::string>& parts) {
  std::string mapped;
  size_t start = 0;
  while (true) {
    const size_t dot = name.find('.', start);
    std::string part = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (auto it = parts.find(part); it != parts.end()) part = it->second;
    mapped += (mapped.empty() ? "" : ".") + part;
    if (dot == std::string::npos) return mapped;
    start = dot + 1;
  }
}

// The blocks of a layer-scheme state_dict: layer<s>.<j>.* -> per stage, the block indices seen
// and which of them have a projection / a third conv.
struct LayerKeys {
  std::map<int, std::set<int>> blocks;  // stage -> block indices
  int projections = 0;
  bool conv3 = false;
};

// "<digits>" -> value, or -1 (also for absurd lengths).
int small_number(const std::string& s) {
  if (s.empty() || s.size() > 4 || s.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoi(s);
}

LayerKeys layer_keys(const NamedTensors& tensors, const NamingScheme& scheme) {
  LayerKeys k;
  for (const auto& [name, t] : tensors) {
    if (name.rfind("layer", 0) != 0) continue;
    const size_t dot1 = name.find('.'), dot2 = dot1 == std::string::npos ? dot1 : name.find('.', dot1 + 1);
    if (dot2 == std::string::npos) continue;
    const int stage = small_number(name.substr(5, dot1 - 5));
    const int block = small_number(name.substr(dot1 + 1, dot2 - dot1 - 1));
    if (stage < 1 || block < 0) continue;
    k.blocks[stage].insert(block);
    const std::string rest = name.substr(dot2 + 1);
    if (rest == scheme.projection + ".0.weight") ++k.projections;
    if (rest == "conv3.weight") k.conv3 = true;
  }
  return k;
}

// The family whose stages these are (the first that has such a net): family, depth, block, width.
bool set_family(const StageKeys& stages, ModelConfig& m) {
  for (const Family* f : families())
    if (f->from_stages(stages, m)) return true;
  return false;
}

// The known code whose keys these are (its family lists them), with what the keys cannot say
// (padding, normaliser).
void name_source(const NamingScheme& scheme, Origin& o) {
  for (const KnownCode& code : family_of(o.model).known_codes()) {
    if (code.scheme != scheme.name || !code.matches(o.model, o.plain_or_a)) continue;
    o.source = code.source;
    if (!code.option_a_padding.empty()) o.model.option_a_padding = code.option_a_padding;
    o.mean = code.mean, o.std = code.std;
    return;
  }
}

// Whether "auto" gives `o`'s block for its family and depth (then a suggestion need not say it).
bool block_is_automatic(const ModelConfig& o) {
  ModelConfig probe = o;
  probe.block = "auto";
  try {
    family_of(probe).resolve(probe);
  } catch (const InputError&) {
    return false;
  }
  return probe.block == o.block;
}

std::string numbers(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + fmt::format("{}", v[i]);
  return s + "]";
}

}  // namespace

const std::vector<NamingScheme>& naming_schemes() {
  static const std::vector<NamingScheme> schemes = {
      {"native", "", "fc", "resnet-train, python/cifar_resnet.py"},
      {"torchvision", "downsample", "fc", "torchvision, timm, chenyaofo/pytorch-cifar-models"},
      {"kuangliu", "shortcut", "linear", "kuangliu/pytorch-cifar, akamaster/pytorch_resnet_cifar10"},
      {"shortcut+fc", "shortcut", "fc", "forks of the above"},
      {"downsample+linear", "downsample", "linear", "forks of the above"},
  };
  return schemes;
}

const NamingScheme& naming_scheme(const std::string& name) {
  for (const auto& s : naming_schemes())
    if (s.name == name) return s;
  throw std::out_of_range("no naming scheme " + name);
}

std::map<std::string, std::string> scheme_names(const ResNetImpl& model, const NamingScheme& scheme) {
  std::map<std::string, std::string> parts;
  if (scheme.layered()) {
    // Block i of the whole net -> "layer<stage>.<index within the stage>".
    int previous_stage = 0, within = 0;
    for (size_t i = 0; i < model.blocks().size(); ++i) {
      const int stage = model.stage_of(i);
      within = stage == previous_stage ? within + 1 : 0;
      previous_stage = stage;
      parts["block" + std::to_string(i)] = "layer" + std::to_string(stage) + "." + std::to_string(within);
    }
    parts.insert({{"stem_conv", "conv1"},
                  {"stem_bn", "bn1"},
                  {"final_bn", "bn"},
                  {"fc", scheme.head},
                  {"shortcut_conv", scheme.projection + ".0"},
                  {"shortcut_bn", scheme.projection + ".1"}});
  }
  // The rest (conv1, bn2, weight, running_mean) is the same in every scheme.
  std::map<std::string, std::string> out;
  for (const auto& [name, t] : model_state(model)) out[name] = map_components(name, parts);
  return out;
}

const NamingScheme& detect_scheme(const ResNetImpl& model, const std::vector<std::string>& file_names) {
  const std::set<std::string> present(file_names.begin(), file_names.end());
  const NamingScheme* best = &naming_schemes().front();
  size_t best_hits = 0;
  for (const auto& scheme : naming_schemes()) {
    size_t hits = 0;
    for (const auto& [native, name] : scheme_names(model, scheme)) hits += present.count(name);
    if (hits > best_hits) best = &scheme, best_hits = hits;
  }
  return *best;
}

std::optional<Origin> guess_origin(const NamedTensors& tensors, const NamingScheme& scheme) {
  if (!scheme.layered()) return std::nullopt;
  std::map<std::string, at::Tensor> by_name(tensors.begin(), tensors.end());
  const auto stem = by_name.find("conv1.weight");
  const auto head = by_name.find(scheme.head + ".weight");
  if (stem == by_name.end() || stem->second.dim() != 4 || head == by_name.end() || head->second.dim() != 2)
    return std::nullopt;
  const LayerKeys keys = layer_keys(tensors, scheme);
  StageKeys stages;
  stages.bottleneck = keys.conv3;
  stages.stem_kernel = stem->second.size(2);
  int total = 0;
  for (const auto& [stage, blocks] : keys.blocks) {
    // Stages 1.. and blocks 0.. without gaps, or it is not a network of ours.
    if (stage != static_cast<int>(stages.blocks.size()) + 1 || *blocks.rbegin() + 1 != static_cast<int>(blocks.size()))
      return std::nullopt;
    stages.blocks.push_back(static_cast<int64_t>(blocks.size()));
    const auto conv1 = by_name.find("layer" + std::to_string(stage) + ".0.conv1.weight");
    stages.planes.push_back(conv1 != by_name.end() && conv1->second.dim() == 4 ? conv1->second.size(0) : 0);
    total += static_cast<int>(blocks.size());
  }
  Origin o;
  ModelConfig& m = o.model;
  if (!set_family(stages, m)) return std::nullopt;
  m.preact = by_name.count("bn1.weight") == 0;
  m.num_classes = static_cast<int>(head->second.size(0));
  o.plain_or_a = keys.projections == 0;
  m.shortcut = keys.projections == 0 ? "A" : keys.projections == total ? "C" : "B";
  name_source(scheme, o);
  try {
    validate_model(m);
  } catch (const InputError&) {
    return std::nullopt;
  }
  return o;
}

std::string suggested_sets(const Origin& origin, const ModelConfig& model, const DataConfig* data,
                           bool with_normaliser) {
  const ModelConfig& o = origin.model;
  std::vector<std::string> sets;
  auto set = [&](const std::string& key, const std::string& value) {
    sets.push_back("--set model." + key + "=" + value);
  };
  const bool family = o.family != model.family;
  if (family) set("family", o.family);
  if (family || o.depth != model.depth) set("depth", std::to_string(o.depth));
  // "auto" would pick these from the family and depth; say them whenever those change.
  if (o.block != model.block || (family && !block_is_automatic(o))) set("block", o.block);
  if (family || o.stem != model.stem) set("stem", o.stem);
  if (family || o.shortcut != model.shortcut) set("shortcut", o.shortcut);
  if (o.option_a_padding != model.option_a_padding) set("option_a_padding", o.option_a_padding);
  if (o.preact != model.preact) set("preact", o.preact.value_or(false) ? "true" : "false");
  if (o.width != model.width) set("width", std::to_string(o.width));
  if (o.num_classes != model.num_classes) set("num_classes", std::to_string(o.num_classes));
  const bool same_normaliser = data && data->mean == origin.mean && data->std == origin.std;
  if (with_normaliser && !origin.mean.empty() && !same_normaliser) {
    sets.push_back("--set 'data.mean=" + numbers(origin.mean) + "'");
    sets.push_back("--set 'data.std=" + numbers(origin.std) + "'");
  }
  std::string out;
  for (const auto& s : sets) out += (out.empty() ? "" : " ") + s;
  return out;
}

std::string origin_hint(const Origin& origin, const std::string& sets) {
  if (sets.empty()) return "";
  const ModelConfig& m = origin.model;
  std::string what = "option " + m.shortcut;
  if (origin.plain_or_a) what += " or a plain net";
  if (m.shortcut == "A" && m.option_a_padding == "split") what += ", zeros split around the identity channels";
  if (!origin.mean.empty()) what += ", trained on mean " + numbers(origin.mean) + " std " + numbers(origin.std);
  const std::string who = origin.source.empty() ? "a " : origin.source + "'s ";
  return "these keys look like " + who + model_name(m) + " (" + what + "): try " + sets;
}

}  // namespace resnet
