// Readers of user input fail only with one-line InputErrors naming the file or key (exit 2),
// never with LibTorch's or nlohmann's exceptions (exit 1 and a backtrace). Each test here is an
// input that the fuzz targets in tests/fuzz/ found to escape in some other way.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "util/errors.h"

using namespace resnet;
using nlohmann::json;

namespace {

// Expects `body` to throw an InputError of one line that starts with `prefix`.
template <typename F>
void expect_input_error(F&& body, const std::string& prefix) {
  try {
    body();
    FAIL() << "accepted";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(prefix, 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace

// Keys and bare words are taken as they are, without the JSON parser, which is what checks
// UTF-8; nlohmann's dump() then threw type_error 316 from error messages and config.json.
TEST(UntrustedConfig, OverrideThatIsNotUtf8IsAnInputError) {
  json user = json::object();
  expect_input_error([&] { apply_override(user, "train.lr=\xff\xfe"); }, "--set \"train.lr=");
  expect_input_error([&] { apply_override(user, "name=caf\xe9"); }, "--set \"name=");
  expect_input_error([&] { apply_override(user, "train.lr.mil\xd7=[1]"); }, "--set \"train.lr.mil");
  EXPECT_EQ(user, json::object());
  apply_override(user, "name=caf\xc3\xa9");  // UTF-8 is fine
  EXPECT_EQ(config_from_json(user).name, "caf\xc3\xa9");
}
