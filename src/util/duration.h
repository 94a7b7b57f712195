#pragma once
#include <string>

namespace resnet {

// "41s", "3m05s", "1h02m" (rounded to the second); "?" for a negative, NaN or absurd value.
// The ETA of training's progress line and of the analyses'.
std::string format_duration(double seconds);

}  // namespace resnet
