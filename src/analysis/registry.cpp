#include "analysis/registry.h"

namespace resnet {

// Each analysis's file in src/analysis/ defines make_<name>_analysis(). Adding one is its file and
// its name in this list (and its source in CMakeLists.txt); the order is --help's.
#define RESNET_ANALYSES(X) \
  X(responses) X(gradients) X(residuals) X(activations) X(lesion) X(landscape) X(hessian) X(paths)

#define RESNET_DECLARE_ANALYSIS(name) std::unique_ptr<Analysis> make_##name##_analysis();
RESNET_ANALYSES(RESNET_DECLARE_ANALYSIS)
#undef RESNET_DECLARE_ANALYSIS

std::vector<std::unique_ptr<Analysis>> make_analyses() {
  std::vector<std::unique_ptr<Analysis>> all;
#define RESNET_MAKE_ANALYSIS(name) all.push_back(make_##name##_analysis());
  RESNET_ANALYSES(RESNET_MAKE_ANALYSIS)
#undef RESNET_MAKE_ANALYSIS
  return all;
}

std::unique_ptr<Analysis> make_analysis(const std::string& name) {
  for (auto& a : make_analyses())
    if (a->name() == name) return std::move(a);
  return nullptr;
}

}  // namespace resnet
