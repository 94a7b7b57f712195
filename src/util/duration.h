#pragma once
#include <chrono>
#include <string>

namespace resnet {

// Seconds of the steady clock since `start`: step times, evaluation times, an analysis's time.
double seconds_since(std::chrono::steady_clock::time_point start);

// "41s", "3m05s", "1h02m" (rounded to the second); "?" for a negative, NaN or absurd value.
// The ETA of training's progress line and of the analyses'.
std::string format_duration(double seconds);

}  // namespace resnet
