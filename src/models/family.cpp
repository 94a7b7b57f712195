#include "models/family.h"

#include "util/errors.h"

namespace resnet {

// Each family's file in src/models/families/ defines <name>_family(). Adding a family is its
// file and its name in this list (and its source in CMakeLists.txt).
#define RESNET_FAMILIES(X) X(cifar) X(imagenet) X(wide)

#define RESNET_DECLARE_FAMILY(name) const Family& name##_family();
RESNET_FAMILIES(RESNET_DECLARE_FAMILY)
#undef RESNET_DECLARE_FAMILY

const std::vector<const Family*>& families() {
#define RESNET_LIST_FAMILY(name) &name##_family(),
  static const std::vector<const Family*> all = {RESNET_FAMILIES(RESNET_LIST_FAMILY)};
#undef RESNET_LIST_FAMILY
  return all;
}

std::string family_names() {
  std::string names;
  for (const Family* f : families()) names += (names.empty() ? "" : "|") + f->name();
  return names;
}

const Family& family_of(const std::string& name) {
  for (const Family* f : families())
    if (f->name() == name) return *f;
  throw InputError("model.family: '" + excerpt(name) + "' is not one of " + family_names());
}

}  // namespace resnet
