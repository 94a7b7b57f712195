#include "train/checkpoint.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <filesystem>
#include <optional>

#include "serialize/safetensors.h"
#include "train/checkpoint_v1.h"
#include "train/sgd.h"
#include "util/budgets.h"
#include "util/errors.h"
#include "util/folder.h"
#include "util/json_io.h"

namespace resnet {
namespace {

const char* kFormat = "resnet-train-checkpoint";
const char* kMetadataKey = "resnet_train_checkpoint";

// Parameters then buffers, in registration order: the same list for the same config.
NamedTensors state_tensors(ResNetImpl& model) {
  NamedTensors out;
  for (const auto& item : model.named_parameters()) out.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers()) out.emplace_back(item.key(), item.value());
  return out;
}

nlohmann::json state_to_json(const TrainState& s) {
  return {{"step", s.step},
          {"train_loss_sum", s.train_loss_sum},
          {"train_correct", s.train_correct},
          {"train_seen", s.train_seen},
          {"train_seconds", s.train_seconds},
          {"eval_seconds", s.eval_seconds},
          {"elapsed_seconds", s.elapsed_seconds},
          {"images_trained", s.images_trained},
          {"best_val_error", s.best_val_error},
          {"best_val_step", s.best_val_step}};
}

// `where`: "<path>: corrupt checkpoint metadata: state", named with the key in each error.
TrainState state_from_json(const nlohmann::json& j, const std::string& where) {
  auto integer = [&](const char* key) { return json_int(json_member(j, key, where), where + "." + key); };
  auto number = [&](const char* key) { return json_number(json_member(j, key, where), where + "." + key); };
  TrainState s;
  s.step = integer("step");
  s.train_loss_sum = number("train_loss_sum");
  s.train_correct = integer("train_correct");
  s.train_seen = integer("train_seen");
  s.train_seconds = number("train_seconds");
  // Absent in checkpoints from before it was kept.
  s.eval_seconds = j.contains("eval_seconds") ? number("eval_seconds") : 0.0;
  s.elapsed_seconds = number("elapsed_seconds");
  s.images_trained = integer("images_trained");
  s.best_val_error = number("best_val_error");
  s.best_val_step = integer("best_val_step");
  return s;
}

// Each entry as the trainer logs it: {step, key, from, to[, forced]}.
bool valid_changes(const nlohmann::json& changes) {
  if (!changes.is_array()) return false;
  for (const auto& c : changes) {
    if (!c.is_object() || !c.contains("step") || !c["step"].is_number_integer() || !c.contains("key") ||
        !c["key"].is_string() || !c.contains("from") || !c.contains("to") ||
        (c.contains("forced") && !c["forced"].is_boolean()))
      return false;
  }
  return true;
}

// The normaliser is applied to uint8 [B, 3, 32, 32] images: mean and std must be floating and
// broadcast to one image ([1, 3, 1, 1], [1, 3, 32, 32], [1, 1, 1, 1], ...).
bool fits_an_image(const at::Tensor& t) {
  const int64_t image[] = {1, 3, 32, 32};
  if (!t.defined() || !at::isFloatingType(t.scalar_type()) || t.dim() > 4) return false;
  for (int64_t d = 1; d <= t.dim(); ++d)
    if (t.size(-d) != 1 && t.size(-d) != image[4 - d]) return false;
  return true;
}

std::string describe(const at::Tensor& t) {
  if (!t.defined()) return "none";
  return std::string(c10::toString(t.scalar_type())) + " " + excerpt(c10::str(t.sizes()), 80);
}

// Version 2: the safetensors layout described in checkpoint.h.
StoredCheckpoint read_v2(const std::string& path, ReadableFile opened) {
  safetensors::FileReader file(path, std::move(opened));
  StoredCheckpoint out;
  out.version = 2;
  const auto& meta = file.header().metadata;
  const auto doc = meta.find(kMetadataKey);
  if (doc == meta.end())
    throw InputError(path +
                     ": a safetensors file without resnet-train checkpoint metadata (a weights file? "
                     "evaluate it with resnet-eval --weights FILE --config CFG)");
  out.metadata = parse_json(doc->second, path + ": corrupt checkpoint metadata");
  for (const auto& entry : file.header().entries) {
    const std::string& name = entry.name;
    if (name.rfind("model.", 0) == 0) out.model.emplace_back(name.substr(6), file.read(entry));
    else if (name.rfind("momentum.", 0) == 0) out.momentum.emplace_back(name.substr(9), file.read(entry));
    else if (name == "normalizer.mean") out.mean = file.read(entry);
    else if (name == "normalizer.std") out.std = file.read(entry);
    else throw InputError(path + ": tensor '" + excerpt(name, 80) + "' is not part of a checkpoint");
  }
  return out;
}

bool is_zip(const ReadableFile& file) {
  char magic[4] = {};
  return file.size >= 4 && read_exactly(file.fd.get(), magic, 4, 0) && std::string(magic, 4) == "PK\x03\x04";
}

// Checks the metadata of either version into `contents`.
CheckpointContents contents_of(const StoredCheckpoint& stored, const std::string& path) {
  const nlohmann::json& m = stored.metadata;
  const std::string where = path + ": corrupt checkpoint metadata";
  if (!m.is_object() || !m.contains("format") || m["format"] != kFormat)
    throw InputError(path + ": not a resnet-train checkpoint (metadata format " +
                     (m.is_object() && m.contains("format") ? json_excerpt(m["format"]) : std::string("missing")) +
                     ")");
  if (!m.contains("version") || !m["version"].is_number_integer() || m["version"].get<int64_t>() != stored.version)
    throw InputError(path + ": checkpoint format version " +
                     (m.contains("version") ? json_excerpt(m["version"]) : "none") +
                     " (this build reads versions 1 and " + std::to_string(kCheckpointVersion) + ")");
  CheckpointContents c;
  c.config = json_member(m, "config", where);
  c.state = state_from_json(json_member(m, "state", where), where + ": state");
  if (m.contains("data_fingerprint"))
    c.data_fingerprint = json_string(m["data_fingerprint"], where + ": data_fingerprint");
  if (m.contains("changes")) c.changes = m["changes"];
  if (!valid_changes(c.changes))
    throw InputError(where + " (changes): expected a list of {step, key, from, to}, got " + json_excerpt(c.changes));
  if (!c.config.is_object()) throw InputError(where + " (config is not an object: " + json_excerpt(c.config) + ")");
  if (c.state.step < 0) throw InputError(path + ": corrupt checkpoint metadata (negative step)");
  if (!stored.mean.defined() || !stored.std.defined())
    throw InputError(path + ": checkpoint has no normalisation statistics");
  if (!fits_an_image(stored.mean) || !fits_an_image(stored.std) || stored.mean.is_meta() || stored.std.is_meta())
    throw InputError(path + ": corrupt normalisation statistics (mean " + describe(stored.mean) + ", std " +
                     describe(stored.std) + "; expected floating tensors like [1, 3, 1, 1])");
  c.normalizer = {stored.mean, stored.std};
  return c;
}

// A stored tensor can replace `dst` only with the same shape and dtype.
bool same_kind(const at::Tensor& src, const at::Tensor& dst) {
  return src.defined() && src.scalar_type() == dst.scalar_type() && src.sizes() == dst.sizes();
}

// The folder a checkpoint is written in: `path`'s folder, created if missing, opened relative to
// its own parent without following a symlink (a run's checkpoints/ is never followed out of it).
Folder checkpoint_folder(const std::string& path) {
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  const std::string name = folder.filename().string();
  if (folder.empty() || name.empty() || name == "." || name == "..")
    return Folder::create(folder.empty() ? "." : folder.string());
  const std::string above = folder.parent_path().string();
  return Folder::create(above.empty() ? "." : above).sub(folder.filename().string(), /*create=*/true);
}

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointContents& contents, ResNetImpl& model, Sgd* optimizer) {
  NamedTensors tensors;
  for (auto& [name, t] : state_tensors(model)) tensors.emplace_back("model." + name, t.detach());
  if (optimizer) {
    const auto params = model.named_parameters();
    const auto& buffers = optimizer->momentum_buffers();
    if (buffers.size() != params.size()) throw std::logic_error("save_checkpoint: optimizer is not the model's");
    for (size_t i = 0; i < buffers.size(); ++i) tensors.emplace_back("momentum." + params[i].key(), buffers[i]);
  }
  tensors.emplace_back("normalizer.mean", contents.normalizer.mean);
  tensors.emplace_back("normalizer.std", contents.normalizer.std);
  const nlohmann::json doc = {{"format", kFormat},
                              {"version", kCheckpointVersion},
                              {"config", contents.config},
                              {"state", state_to_json(contents.state)},
                              {"data_fingerprint", contents.data_fingerprint},
                              {"changes", contents.changes}};
  const std::string header = safetensors::header_bytes(tensors, {{"format", "pt"}, {kMetadataKey, doc.dump()}});

  AtomicFile file(checkpoint_folder(path), std::filesystem::path(path).filename().string());
  file.write(header.data(), header.size());
  for (const auto& [name, t] : tensors) {  // one tensor at a time in host memory
    const at::Tensor c = t.to(at::kCPU).contiguous();
    file.write(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
  }
  file.commit();
}

ReadableFile open_checkpoint_file(const std::string& path) {
  const std::filesystem::path p(path);
  if (p.has_parent_path() && p.parent_path().filename() == "checkpoints") {
    const std::string run = p.parent_path().parent_path().string();
    std::error_code ec;
    if (!std::filesystem::is_directory(run.empty() ? "." : run, ec))
      throw InputError(path + ": no such checkpoint file");
    const std::optional<Folder> checkpoints = Folder::open(run.empty() ? "." : run).sub_if_exists("checkpoints");
    std::optional<ReadableFile> file;
    if (checkpoints) file = checkpoints->open_to_read(p.filename().string(), budget::kWeightsFileBytes);
    if (!file) throw InputError(path + ": no such checkpoint file");
    return std::move(*file);
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw InputError(path + ": no such checkpoint file");
  return open_for_reading(path, budget::kWeightsFileBytes, "a checkpoint");
}

CheckpointReader::CheckpointReader(const std::string& path) : path_(path) {
  ReadableFile file = open_checkpoint_file(path);
  stored_ = is_zip(file) ? read_checkpoint_v1(read_whole(file, path), path) : read_v2(path, std::move(file));
  contents_ = contents_of(stored_, path);
}

ExperimentConfig CheckpointReader::config() const {
  try {
    return config_from_json(contents_.config);
  } catch (const InputError& e) {
    throw InputError(path_ + ": stored config: " + e.what());
  }
}

namespace {

// Each of `expected` in `stored`, by name ("" names: by position); any other entry is an error.
// Tensors still to be read (meta, version 1) are read now, and only those matched: `ids` are
// their ids in `source`.
std::vector<at::Tensor> match(const NamedTensors& stored, const NamedTensors& expected, const std::string& path,
                              const std::string& what, TensorSource* source, const std::vector<size_t>& ids) {
  if (stored.size() != expected.size())
    throw InputError(path + ": the checkpoint holds " + std::to_string(stored.size()) + " " + what +
                     ", the model has " + std::to_string(expected.size()) + " (the model does not match the config)");
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < stored.size(); ++i)
    if (!stored[i].first.empty() && !by_name.emplace(stored[i].first, i).second)
      throw InputError(path + ": " + what + " '" + excerpt(stored[i].first, 80) + "' appears twice");
  std::vector<at::Tensor> out;
  std::vector<size_t> positions;
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& [want, dst] = expected[i];
    const auto it = by_name.find(want);
    const size_t k = stored[i].first.empty() ? i : it == by_name.end() ? stored.size() : it->second;
    if (k == stored.size())
      throw InputError(path + ": the checkpoint has no " + what + " '" + want +
                       "' (the model does not match the config)");
    const at::Tensor& src = stored[k].second;
    if (!same_kind(src, dst))
      throw InputError(path + ": " + what + " '" + want + "' is " + describe(src) + " in the checkpoint, " +
                       describe(dst) + " in the model (the model does not match the config)");
    out.push_back(src);
    positions.push_back(k);
  }
  std::vector<size_t> unread, at;
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i].is_meta()) unread.push_back(ids.at(positions[i])), at.push_back(i);
  if (unread.empty()) return out;
  try {
    const std::vector<at::Tensor> read = source->load(unread);
    for (size_t j = 0; j < at.size(); ++j) out[at[j]] = read[j];
  } catch (const InputError& e) {
    throw InputError(path + ": " + e.what());
  }
  return out;
}

}  // namespace

void CheckpointReader::load_model(ResNetImpl& model) {
  const NamedTensors expected = state_tensors(model);
  const std::vector<at::Tensor> src =
      match(stored_.model, expected, path_, "tensors", stored_.source.get(), stored_.model_ids);
  c10::NoGradGuard no_grad;
  for (size_t i = 0; i < expected.size(); ++i) expected[i].second.copy_(src[i]);
}

void CheckpointReader::load_optimizer(Sgd& optimizer, ResNetImpl& model) {
  const auto params = model.named_parameters();
  auto& mine = optimizer.momentum_buffers();
  if (mine.size() != params.size()) throw std::logic_error("load_optimizer: optimizer is not the model's");
  NamedTensors expected;
  for (size_t i = 0; i < mine.size(); ++i) expected.emplace_back(params[i].key(), mine[i]);
  const std::vector<at::Tensor> src =
      match(stored_.momentum, expected, path_, "momentum buffers", stored_.source.get(), stored_.momentum_ids);
  c10::NoGradGuard no_grad;
  for (size_t i = 0; i < mine.size(); ++i) mine[i].copy_(src[i]);
}

}  // namespace resnet
