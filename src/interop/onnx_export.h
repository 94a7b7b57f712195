#pragma once
// ONNX out: a network as an ONNX model (opset 13, IR version 7) for ONNX runtimes without Python
// (tested: ONNX Runtime and OpenCV's DNN module). Built with the ONNX library's own protobuf
// classes (Debian's libonnx-dev), checked with its checker and its strict shape inference before
// anything is written, written atomically. The protobuf/ONNX headers stay inside the .cpp.
//
// The graph is the inference graph resnet-eval runs:
//   input   "images": float [batch, 3, 32, 32], already normalised ((x / 255 - mean) / std), or with
//           `with_normalizer` uint8 [batch, 3, 32, 32] 0-255 that the first nodes normalise
//           (Cast, Div 255, Sub mean, Div std: the operations of our Normalizer, in its order;
//           the constants [C, H, W]-shaped, which OpenCV 4.6 needs).
//           "batch" is a dynamic axis.
//   BN      folded into the conv before it (Conv with a bias) wherever one is; the BNs that follow
//           an addition (pre-activation: each block's first BN and the final BN) stay
//           BatchNormalization nodes.
//   option A  Slice (stride 2 on H and W) + Pad (zero channels after, or split around, x).
//   output  "logits": float [batch, num_classes].
// The normaliser is also in the metadata (metadata_props["resnet_train"]: the JSON of
// weights_metadata plus an "onnx" object saying what the input is), whichever the input.
#include <nlohmann/json.hpp>
#include <string>

#include "data/batches.h"
#include "models/resnet.h"

namespace resnet {

constexpr int kOnnxOpset = 13;     // Slice/Pad with tensor inputs; widely supported (OpenCV 4.6 runs it)
constexpr int kOnnxIrVersion = 7;  // the IR of ONNX 1.8, the first with opset 13

struct OnnxOptions {
  bool with_normalizer = false;  // input uint8 0-255, normalised inside the graph
};

// Whether this build has the ONNX library (CMake found libonnx-dev).
bool onnx_available();

// Writes `model` (its current weights and BN statistics) to `path`. `normalizer` is the one the
// weights were trained with; `metadata` (weights_metadata) goes into metadata_props. Throws
// InputError if the build has no ONNX, std::runtime_error if the checker refuses the graph (a
// bug here) or the file cannot be written.
void export_onnx(const ResNetImpl& model, const Normalizer& normalizer, nlohmann::json metadata,
                 const std::string& path, const OnnxOptions& options = {});

}  // namespace resnet
