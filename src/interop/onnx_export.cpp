#include "interop/onnx_export.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <limits>

#include "util/errors.h"
#include "util/json_io.h"

#ifdef RESNET_WITH_ONNX
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#endif

namespace resnet {

#ifndef RESNET_WITH_ONNX

bool onnx_available() { return false; }

void export_onnx(const ResNetImpl&, const Normalizer&, nlohmann::json, const std::string& path, const OnnxOptions&) {
  throw InputError(path +
                   ": this build has no ONNX library (install libonnx-dev, see scripts/install_deps.sh, "
                   "and rebuild)");
}

#else

bool onnx_available() { return true; }

namespace {

// The nodes and constants of one graph. Every node has one output, named like the node.
class Graph {
 public:
  explicit Graph(onnx::GraphProto* graph) : g_(graph) {}

  // A float32 or int64 constant (as a contiguous little-endian CPU copy) named `name`.
  std::string constant(const std::string& name, const at::Tensor& t) {
    onnx::TensorProto* p = g_->add_initializer();
    p->set_name(name);
    at::Tensor c = t.detach().to(at::kCPU);
    c = (c.scalar_type() == at::kLong ? c : c.to(at::kFloat)).contiguous();
    p->set_data_type(c.scalar_type() == at::kLong ? onnx::TensorProto_DataType_INT64
                                                  : onnx::TensorProto_DataType_FLOAT);
    for (int64_t d : c.sizes()) p->add_dims(d);
    p->set_raw_data(c.data_ptr(), c.nbytes());
    return name;
  }

  onnx::NodeProto* node(const std::string& op, const std::string& name, const std::vector<std::string>& inputs) {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(name);
    return n;
  }

  std::string op(const std::string& op, const std::string& name, const std::vector<std::string>& inputs) {
    return node(op, name, inputs)->output(0);
  }

 private:
  onnx::GraphProto* g_;
};

void ints(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& values) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto_AttributeType_INTS);
  for (int64_t v : values) a->add_ints(v);
}

void one_int(onnx::NodeProto* n, const char* name, int64_t value) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto_AttributeType_INT);
  a->set_i(value);
}

// y = conv(x; W) + b with a BN folded in (FoldedConv): one Conv node.
std::string conv(Graph& g, const std::string& name, const std::string& x, const FoldedConv& f) {
  std::vector<std::string> inputs = {x, g.constant(name + ".weight", f.weight)};
  if (f.bias.defined()) inputs.push_back(g.constant(name + ".bias", f.bias));
  onnx::NodeProto* n = g.node("Conv", name, inputs);
  const int64_t k = f.weight.size(2);
  ints(n, "kernel_shape", {k, k});
  ints(n, "strides", {f.stride, f.stride});
  ints(n, "pads", {f.padding, f.padding, f.padding, f.padding});
  return n->output(0);
}

// A BN that follows an addition (nothing to fold it into), in inference mode.
std::string batchnorm(Graph& g, const std::string& name, const std::string& x, const torch::nn::BatchNorm2d& bn) {
  onnx::NodeProto* n = g.node(
      "BatchNormalization", name,
      {x, g.constant(name + ".weight", bn->weight), g.constant(name + ".bias", bn->bias),
       g.constant(name + ".running_mean", bn->running_mean), g.constant(name + ".running_var", bn->running_var)});
  onnx::AttributeProto* eps = n->add_attribute();
  eps->set_name("epsilon");
  eps->set_type(onnx::AttributeProto_AttributeType_FLOAT);
  eps->set_f(static_cast<float>(bn->options.eps()));
  return n->output(0);
}

// Option A: x[:, :, ::stride, ::stride], then zero channels up to `out` (after x, or split).
std::string option_a(Graph& g, const std::string& name, const std::string& x, const BlockOptions& o, int64_t out) {
  std::string s = x;
  if (o.stride != 1) {
    const int64_t end = std::numeric_limits<int64_t>::max();
    s = g.op("Slice", name + ".subsample",
             {x, g.constant(name + ".starts", at::tensor({int64_t{0}, int64_t{0}})),
              g.constant(name + ".ends", at::tensor({end, end})),
              g.constant(name + ".axes", at::tensor({int64_t{2}, int64_t{3}})),
              g.constant(name + ".steps", at::tensor({o.stride, o.stride}))});
  }
  const int64_t extra = out - o.in_channels;
  if (extra <= 0) return s;
  const int64_t before = o.pad_split ? extra / 2 : 0;
  // pads: [x1_begin, x2_begin, ..., x1_end, x2_end, ...] over N, C, H, W.
  return g.op("Pad", name + ".pad",
              {s, g.constant(name + ".pads", at::tensor({int64_t{0}, before, int64_t{0}, int64_t{0}, int64_t{0},
                                                         extra - before, int64_t{0}, int64_t{0}}))});
}

std::string shortcut(Graph& g, const BlockImpl& b, const std::string& name, const std::string& x,
                     const std::string& pre) {
  if (b.has_projection()) return conv(g, name + ".shortcut", pre, b.fold_projection());
  if (b.changes_shape()) return option_a(g, name + ".shortcut", x, b.options(), b.out_channels());
  return x;
}

// One block, as BlockImpl::forward computes it with folded BNs (blocks.h has the equations).
std::string block(Graph& g, const BlockImpl& b, const std::string& name, const std::string& x) {
  const std::vector<FoldedConv> layers = b.fold_layers();
  const BlockOptions& o = b.options();
  if (!o.preact) {
    std::string h = x;
    for (size_t i = 0; i < layers.size(); ++i) {
      const std::string k = std::to_string(i + 1);
      h = conv(g, name + ".conv" + k, h, layers[i]);
      if (i + 1 < layers.size()) h = g.op("Relu", name + ".relu" + k, {h});
    }
    if (o.residual) h = g.op("Add", name + ".add", {h, shortcut(g, b, name, x, x)});
    return g.op("Relu", name + ".out", {h});
  }
  const std::string pre = g.op("Relu", name + ".relu1", {batchnorm(g, name + ".bn1", x, b.bns()[0])});
  std::string h = pre;
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string k = std::to_string(i + 1);
    if (i > 0) h = g.op("Relu", name + ".relu" + k, {h});  // its BN is folded into the conv before
    h = conv(g, name + ".conv" + k, h, layers[i]);
  }
  return o.residual ? g.op("Add", name + ".add", {h, shortcut(g, b, name, x, pre)}) : h;
}

void declare(onnx::ValueInfoProto* v, const std::string& name, int elem_type, const std::vector<int64_t>& dims) {
  v->set_name(name);
  auto* tensor = v->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(elem_type);
  auto* shape = tensor->mutable_shape();
  shape->add_dim()->set_dim_param("batch");
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

// "images" -> the normalised float input (the first nodes with the normaliser, else as is).
std::string input(Graph& g, onnx::GraphProto* graph, const Normalizer& n, bool with_normalizer) {
  declare(graph->add_input(), "images",
          with_normalizer ? onnx::TensorProto_DataType_UINT8 : onnx::TensorProto_DataType_FLOAT, {3, 32, 32});
  if (!with_normalizer) return "images";
  onnx::NodeProto* cast = g.node("Cast", "normalizer.cast", {"images"});
  one_int(cast, "to", onnx::TensorProto_DataType_FLOAT);
  const std::string x =
      g.op("Div", "normalizer.scale", {cast->output(0), g.constant("normalizer.255", at::tensor(255.0f))});
  // [1, C, H, W] constants as [C, H, W]: the same broadcast, and OpenCV 4.6's importer refuses
  // Sub/Add with a rank-4 constant of batch 1.
  auto squeeze = [](const at::Tensor& t) { return t.reshape(t.sizes().slice(1)); };
  const std::string c = g.op("Sub", "normalizer.center", {x, g.constant("normalizer.mean", squeeze(n.mean))});
  return g.op("Div", "normalizer.normalized", {c, g.constant("normalizer.std", squeeze(n.std))});
}

// stem -> blocks -> (final BN + ReLU) -> global average pool -> fc, as ResNetImpl::forward.
void build(onnx::GraphProto* graph, const ResNetImpl& model, const Normalizer& n, bool with_normalizer) {
  Graph g(graph);
  std::string x = conv(g, "stem_conv", input(g, graph, n, with_normalizer), model.fold_stem());
  // The stem as the family declares it (models/layout.h): BN folded into the conv, ReLU after it
  // (post-activation), the imagenet stem's max-pool.
  if (!model.layout().preact) x = g.op("Relu", "stem_relu", {x});
  if (model.spec().stem_pool) {
    onnx::NodeProto* pool = g.node("MaxPool", "stem_pool", {x});
    ints(pool, "kernel_shape", {3, 3});
    ints(pool, "strides", {2, 2});
    ints(pool, "pads", {1, 1, 1, 1});
    x = pool->output(0);
  }
  for (size_t i = 0; i < model.blocks().size(); ++i) x = block(g, *model.blocks()[i], "block" + std::to_string(i), x);
  if (model.final_bn()) x = g.op("Relu", "final_relu", {batchnorm(g, "final_bn", x, model.final_bn())});
  onnx::NodeProto* flat = g.node("Flatten", "flatten", {g.op("GlobalAveragePool", "pool", {x})});
  one_int(flat, "axis", 1);
  onnx::NodeProto* fc =
      g.node("Gemm", "logits",
             {flat->output(0), g.constant("fc.weight", model.fc()->weight), g.constant("fc.bias", model.fc()->bias)});
  one_int(fc, "transB", 1);
  declare(graph->add_output(), "logits", onnx::TensorProto_DataType_FLOAT, {model.config().num_classes});
}

// The checker, then strict shape inference (types and every node's shapes must agree with the
// declared input and output).
void check(const onnx::ModelProto& model) {
  try {
    onnx::checker::check_model(model);
    onnx::ModelProto inferred = model;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict_mode=*/1));
  } catch (const std::exception& e) {
    throw std::runtime_error("the ONNX checker refused the exported graph: " + first_line(e.what()));
  }
}

}  // namespace

void export_onnx(const ResNetImpl& model, const Normalizer& normalizer, nlohmann::json metadata,
                 const std::string& path, const OnnxOptions& options) {
  c10::NoGradGuard no_grad;
  onnx::ModelProto m;
  m.set_ir_version(kOnnxIrVersion);
  m.set_producer_name("resnet-train");
  m.set_model_version(1);
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  onnx::GraphProto* graph = m.mutable_graph();
  graph->set_name(model_name(model.config()));
  build(graph, model, normalizer.to(at::kCPU), options.with_normalizer);
  metadata["onnx"] = {
      {"input", options.with_normalizer ? "uint8 [batch, 3, 32, 32], 0-255 (normalised inside)"
                                        : "float [batch, 3, 32, 32], normalised: (x / 255 - mean) / std"},
      {"batchnorm", "folded into the conv before it; kept after additions (pre-activation)"},
      {"opset", kOnnxOpset}};
  auto* prop = m.add_metadata_props();
  prop->set_key("resnet_train");
  prop->set_value(metadata.dump());
  check(m);
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw std::runtime_error(path + ": could not serialise the ONNX model");
  write_file_atomic(path, bytes);
}

#endif

}  // namespace resnet
