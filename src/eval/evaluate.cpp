#include "eval/evaluate.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include "compat/torch_compat.h"

namespace resnet {

EvalResult evaluate(ResNetImpl& model, const ImageSet& set, const Normalizer& normalizer, const EvalOptions& options) {
  const auto device = model.parameters().front().device();
  const int64_t classes = model.config().num_classes;
  // One double accumulator on the device: [C*C] confusion counts (exact up to 2^53), then the
  // summed loss. Read back once, at the end. Made outside inference mode: the ranks' sum
  // (sum_over_ranks) may update it in place on another thread.
  at::Tensor totals = at::zeros({classes * classes + 1}, at::TensorOptions().dtype(at::kDouble).device(device));
  at::Tensor confusion = totals.narrow(0, 0, classes * classes);
  at::Tensor loss_sum = totals.narrow(0, classes * classes, 1);
  const int64_t n_all = set.size();
  const int64_t first = n_all * options.shard.rank / options.shard.count;
  const int64_t last = n_all * (options.shard.rank + 1) / options.shard.count;
  {
    // Inference mode skips autograd's version counters and views bookkeeping (cheaper than no_grad).
    c10::InferenceMode inference;
    // BN in eval mode, folded into the convs (ResNet-20 on the 2-core CPU: 6-17% faster).
    FoldedEval folded(model);
    const Normalizer norm = normalizer.to(device);
    at::Tensor images_all = set.images.to(device).narrow(0, first, last - first);
    at::Tensor labels_all = set.labels.to(device).narrow(0, first, last - first);
    compat::Autocast autocast(device, options.bf16);
    for (int64_t start = 0; start < last - first; start += options.batch_size) {
      const int64_t n = std::min(options.batch_size, last - first - start);
      at::Tensor x = norm(images_all.narrow(0, start, n));  // float [n, 3, 32, 32]
      if (options.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
      at::Tensor labels = labels_all.narrow(0, start, n);
      at::Tensor logits = model.forward(x).to(at::kFloat);  // [n, C]
      // Each image's loss is summed in double: a float sum per batch would make the total depend
      // (in its 8th digit) on how the set was cut into batches, i.e. on the number of ranks.
      loss_sum.add_(at::cross_entropy_loss(logits, labels, {}, at::Reduction::None).to(at::kDouble).sum());
      // scatter_add_ keeps the counting on the device (bincount on CUDA reads its input's maximum
      // back to size the output: a host sync per batch).
      at::Tensor cells = labels * classes + logits.argmax(1);
      confusion.scatter_add_(0, cells, at::ones_like(cells, at::kDouble));
    }
  }
  if (options.sum_over_ranks) options.sum_over_ranks(totals);
  const at::Tensor host = totals.cpu();  // the one host sync
  EvalResult r;
  r.count = set.size();
  r.confusion = host.narrow(0, 0, classes * classes).to(at::kLong).view({classes, classes});
  const int64_t correct = r.confusion.diagonal().sum().item<int64_t>();
  r.loss = r.count ? host[classes * classes].item<double>() / static_cast<double>(r.count) : 0.0;
  r.error = r.count ? 1.0 - static_cast<double>(correct) / static_cast<double>(r.count) : 0.0;
  auto rows = r.confusion.sum(1);
  for (int64_t c = 0; c < classes; ++c) {
    const int64_t total = rows[c].item<int64_t>();
    r.per_class_accuracy.push_back(total ? r.confusion[c][c].item<double>() / total : 0.0);
  }
  return r;
}

nlohmann::json EvalResult::to_json(const std::vector<std::string>& names) const {
  nlohmann::json confusion_rows = nlohmann::json::array();
  for (int64_t i = 0; i < this->confusion.size(0); ++i) {
    std::vector<int64_t> row;
    for (int64_t j = 0; j < this->confusion.size(1); ++j) row.push_back(this->confusion[i][j].item<int64_t>());
    confusion_rows.push_back(row);
  }
  return {{"error", error},
          {"loss", loss},
          {"count", count},
          {"classes", names},
          {"per_class_accuracy", per_class_accuracy},
          {"confusion", confusion_rows}};
}

std::string format_report(const EvalResult& r, const std::vector<std::string>& names) {
  std::string out = fmt::format("top-1 error: {:.2f}% ({} images, loss {:.4f})\n\nper-class accuracy:\n",
                                100.0 * r.error, r.count, r.loss);
  auto name = [&](size_t i) { return i < names.size() ? names[i] : std::to_string(i); };
  for (size_t c = 0; c < r.per_class_accuracy.size(); ++c)
    out += fmt::format("  {:<12} {:6.2f}%\n", name(c), 100.0 * r.per_class_accuracy[c]);
  out += "\nconfusion matrix (rows: true class, columns: predicted):\n             ";
  for (size_t j = 0; j < r.per_class_accuracy.size(); ++j) out += fmt::format("{:>6.5}", name(j));
  out += "\n";
  for (int64_t i = 0; i < r.confusion.size(0); ++i) {
    out += fmt::format("  {:<11}", name(static_cast<size_t>(i)).substr(0, 11));
    for (int64_t j = 0; j < r.confusion.size(1); ++j) out += fmt::format("{:6d}", r.confusion[i][j].item<int64_t>());
    out += "\n";
  }
  return out;
}

}  // namespace resnet
