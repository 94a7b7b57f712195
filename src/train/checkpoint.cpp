#include "train/checkpoint.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdio>
#include <filesystem>

#include "train/sgd.h"
#include "util/errors.h"
#include "util/json_io.h"
#include "util/pickle_check.h"

namespace resnet {
namespace {

const char* kFormat = "resnet-train-checkpoint";

// Parameters then buffers, in registration order: the same list for the same config.
std::vector<std::pair<std::string, at::Tensor>> state_tensors(ResNetImpl& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : model.named_parameters()) out.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers()) out.emplace_back(item.key(), item.value());
  return out;
}

c10::List<at::Tensor> to_cpu_list(const std::vector<at::Tensor>& tensors) {
  c10::List<at::Tensor> list;
  for (const auto& t : tensors) list.push_back(t.detach().to(at::kCPU).contiguous());
  return list;
}

nlohmann::json state_to_json(const TrainState& s) {
  return {{"step", s.step}, {"train_loss_sum", s.train_loss_sum}, {"train_correct", s.train_correct},
          {"train_seen", s.train_seen}, {"train_seconds", s.train_seconds},
          {"eval_seconds", s.eval_seconds},
          {"elapsed_seconds", s.elapsed_seconds}, {"images_trained", s.images_trained},
          {"best_val_error", s.best_val_error}, {"best_val_step", s.best_val_step}};
}

// LibTorch 1.13 takes a stored tensor's element count from the pickle without checking it
// against the record that holds the bytes: an empty record gives a storage that claims bytes
// but has no memory (a null-pointer read on first use; a short one is read past its end,
// which cannot be seen from here).
bool has_data(const at::Tensor& t) {
  return t.numel() == 0 || (t.has_storage() && t.storage().data() != nullptr);
}

// The normaliser is applied to uint8 [B, 3, 32, 32] images: mean and std must be floating,
// dense and broadcast to one image ([1, 3, 1, 1], [1, 3, 32, 32], [1, 1, 1, 1], ...).
bool fits_an_image(const at::Tensor& t) {
  const int64_t image[] = {1, 3, 32, 32};
  if (!t.defined() || t.layout() != at::kStrided || !at::isFloatingType(t.scalar_type()) || t.dim() > 4 ||
      !has_data(t))
    return false;
  for (int64_t d = 1; d <= t.dim(); ++d)
    if (t.size(-d) != 1 && t.size(-d) != image[4 - d]) return false;
  return true;
}

// A stored tensor can replace `dst` only with the same shape, dtype, a dense layout and data.
bool same_kind(const at::Tensor& src, const at::Tensor& dst) {
  return src.defined() && src.layout() == at::kStrided && src.scalar_type() == dst.scalar_type() &&
         src.sizes() == dst.sizes() && has_data(src);
}

std::string describe(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  return std::string(c10::toString(t.scalar_type())) + " " + c10::str(t.sizes()) + (has_data(t) ? "" : " without data");
}

TrainState state_from_json(const nlohmann::json& j) {
  TrainState s;
  s.step = j.at("step");
  s.train_loss_sum = j.at("train_loss_sum");
  s.train_correct = j.at("train_correct");
  s.train_seen = j.at("train_seen");
  s.train_seconds = j.at("train_seconds");
  s.eval_seconds = j.value("eval_seconds", 0.0);  // absent in checkpoints from before it was kept
  s.elapsed_seconds = j.at("elapsed_seconds");
  s.images_trained = j.at("images_trained");
  s.best_val_error = j.at("best_val_error");
  s.best_val_step = j.at("best_val_step");
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

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointContents& contents, ResNetImpl& model,
                     Sgd* optimizer) {
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kFormat)));
  archive.write("version", c10::IValue(kCheckpointVersion));
  archive.write("config", c10::IValue(contents.config.dump()));
  archive.write("state", c10::IValue(state_to_json(contents.state).dump()));
  archive.write("data_fingerprint", c10::IValue(contents.data_fingerprint));
  archive.write("changes", c10::IValue(contents.changes.dump()));
  c10::List<std::string> names;
  std::vector<at::Tensor> tensors;
  for (auto& [name, t] : state_tensors(model)) names.push_back(name), tensors.push_back(t);
  archive.write("model_names", c10::IValue(names));
  archive.write("model_tensors", c10::IValue(to_cpu_list(tensors)));
  archive.write("momentum", c10::IValue(to_cpu_list(optimizer ? optimizer->momentum_buffers()
                                                              : std::vector<at::Tensor>{})));
  archive.write("norm_mean", contents.normalizer.mean.to(at::kCPU));
  archive.write("norm_std", contents.normalizer.std.to(at::kCPU));

  std::error_code ec;
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  if (!folder.empty() && !std::filesystem::is_directory(folder, ec)) {
    std::filesystem::create_directories(folder, ec);
    if (ec) throw std::runtime_error(folder.string() + ": cannot create (" + ec.message() + ")");
    sync_folder(parent_folder(folder.string()));  // the new folder's entry survives a power cut
  }
  AtomicFile file(path);
  // The writer must not throw into LibTorch: its zip writer finishes the archive from its
  // destructor, and a second failure there would terminate the process. The first error is
  // kept, the rest of the archive is dropped, and the error is raised once LibTorch is done.
  std::string error;
  archive.save_to([&](const void* data, size_t size) {
    if (error.empty()) {
      try {
        file.write(data, size);
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    return size;
  });
  if (!error.empty()) throw std::runtime_error(error);
  file.commit();
}

struct CheckpointReader::Archive {
  torch::serialize::InputArchive in;
};

CheckpointReader::~CheckpointReader() = default;

CheckpointReader::CheckpointReader(const std::string& path)
    : path_(path), archive_(std::make_unique<Archive>()) {
  if (!std::filesystem::is_regular_file(path)) throw InputError(path + ": no such checkpoint file");
  // LibTorch's unpickler is not safe on damaged pickles: ours walk them first.
  std::string pickle_problem;
  try {
    caffe2::serialize::PyTorchStreamReader zip(path);
    for (const char* name : {"data.pkl", "constants.pkl"}) {
      if (!zip.hasRecord(name)) continue;
      auto record = zip.getRecord(name);
      const std::string bytes(static_cast<const char*>(std::get<0>(record).get()), std::get<1>(record));
      const std::string why = check_pickle(bytes, checkpoint_globals());
      if (!why.empty()) {
        pickle_problem = std::string(name) + ", " + why;
        break;
      }
    }
  } catch (const std::exception&) {
    // Not a zip LibTorch can open: load_from below says so.
  }
  if (!pickle_problem.empty()) throw InputError(path + ": corrupt checkpoint (" + pickle_problem + ")");
  try {
    archive_->in.load_from(path);
  } catch (const std::exception& e) {
    // c10::Error for most damage, but LibTorch's zip, pickle and TorchScript readers also throw
    // std::runtime_error, std::out_of_range, std::bad_alloc (a lying size)...: all mean the same.
    throw InputError(path + ": not a readable checkpoint (truncated or not a resnet-train file)");
  }
  // Every value comes from the file: a wrong type is damage, never a bug to assert on.
  auto read = [&](const char* key) {
    c10::IValue v;
    if (!archive_->in.try_read(key, v))
      throw InputError(path + ": not a resnet-train checkpoint (no '" + key + "')");
    return v;
  };
  auto read_string = [&](const char* key) {
    c10::IValue v = read(key);
    if (!v.isString()) throw InputError(path + ": corrupt checkpoint ('" + key + "' is not a string)");
    return v.toStringRef();
  };
  c10::IValue format = read("format");
  if (!format.isString() || format.toStringRef() != kFormat)
    throw InputError(path + ": not a resnet-train checkpoint");
  c10::IValue version = read("version");
  if (!version.isInt()) throw InputError(path + ": corrupt checkpoint ('version' is not an integer)");
  if (version.toInt() != kCheckpointVersion)
    throw InputError(path + ": checkpoint format version " + std::to_string(version.toInt()) +
                     " (this build reads version " + std::to_string(kCheckpointVersion) + ")");
  try {
    contents_.config = nlohmann::json::parse(read_string("config"));
    contents_.state = state_from_json(nlohmann::json::parse(read_string("state")));
    c10::IValue v;
    if (archive_->in.try_read("data_fingerprint", v) && v.isString()) contents_.data_fingerprint = v.toStringRef();
    if (archive_->in.try_read("changes", v) && v.isString()) {
      contents_.changes = nlohmann::json::parse(v.toStringRef());
      if (!valid_changes(contents_.changes)) throw InputError(path + ": corrupt checkpoint metadata (changes)");
    }
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": corrupt checkpoint metadata (" + first_line(e.what()) + ")");
  }
  if (!contents_.config.is_object()) throw InputError(path + ": corrupt checkpoint metadata (config is not an object)");
  if (contents_.state.step < 0) throw InputError(path + ": corrupt checkpoint metadata (negative step)");
  at::Tensor mean, std;
  if (!archive_->in.try_read("norm_mean", mean) || !archive_->in.try_read("norm_std", std))
    throw InputError(path + ": checkpoint has no normalisation statistics");
  if (!fits_an_image(mean) || !fits_an_image(std))
    throw InputError(path + ": corrupt normalisation statistics (mean " + describe(mean) + ", std " +
                     describe(std) + "; expected floating tensors like [1, 3, 1, 1])");
  contents_.normalizer = {mean, std};
}

ExperimentConfig CheckpointReader::config() const {
  try {
    return config_from_json(contents_.config);
  } catch (const InputError& e) {
    throw InputError(path_ + ": stored config: " + e.what());
  }
}

void CheckpointReader::load_model(ResNetImpl& model) {
  c10::IValue names_v, tensors_v;
  if (!archive_->in.try_read("model_names", names_v) || !archive_->in.try_read("model_tensors", tensors_v))
    throw InputError(path_ + ": checkpoint has no model weights");
  if (!names_v.isList() || !tensors_v.isTensorList())
    throw InputError(path_ + ": corrupt checkpoint ('model_names' or 'model_tensors' has the wrong type)");
  auto names = names_v.toList();
  auto tensors = tensors_v.toTensorList();
  auto expected = state_tensors(model);
  if (names.size() != expected.size() || tensors.size() != expected.size())
    throw InputError(path_ + ": checkpoint holds " + std::to_string(names.size()) +
                     " tensors but the model has " + std::to_string(expected.size()) +
                     " (model does not match the config)");
  c10::NoGradGuard no_grad;
  for (size_t i = 0; i < expected.size(); ++i) {
    const c10::IValue name_v = names.get(i);
    if (!name_v.isString()) throw InputError(path_ + ": corrupt checkpoint (tensor name " + std::to_string(i) + ")");
    const std::string name = name_v.toStringRef();
    const at::Tensor src = tensors.get(i);
    auto& [want, dst] = expected[i];
    if (name != want || !same_kind(src, dst))
      throw InputError(path_ + ": tensor '" + name + "' " + describe(src) + " does not match the model's '" +
                       want + "' " + describe(dst) + " (model does not match the config)");
  }
  for (size_t i = 0; i < expected.size(); ++i) expected[i].second.copy_(tensors.get(i));
}

void CheckpointReader::load_optimizer(Sgd& optimizer) {
  c10::IValue v;
  if (!archive_->in.try_read("momentum", v)) throw InputError(path_ + ": checkpoint has no optimizer state");
  if (!v.isTensorList()) throw InputError(path_ + ": corrupt checkpoint ('momentum' has the wrong type)");
  auto bufs = v.toTensorList();
  auto& mine = optimizer.momentum_buffers();
  if (bufs.size() != mine.size())
    throw InputError(path_ + ": optimizer state does not match the model");
  c10::NoGradGuard no_grad;
  for (size_t i = 0; i < mine.size(); ++i)
    if (!same_kind(bufs.get(i), mine[i])) throw InputError(path_ + ": optimizer state does not match the model");
  for (size_t i = 0; i < mine.size(); ++i) mine[i].copy_(bufs.get(i));
}

}  // namespace resnet
