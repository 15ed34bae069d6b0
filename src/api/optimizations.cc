// Reading and setting the switches of damoyolo/optimizations.h on the options
// the API takes (the table itself is constexpr, in the header).
#include "damoyolo/optimizations.h"

#include "damoyolo/detector.h"
#include "damoyolo/session.h"

namespace damoyolo {

bool optimization_enabled(const DetectorOptions& o, const OptimizationSwitch& s) {
  return s.session_flag ? o.session.opt.*(s.session_flag) : o.*(s.detector_flag);
}

void set_optimization(DetectorOptions& o, const OptimizationSwitch& s, bool on) {
  if (s.session_flag) o.session.opt.*(s.session_flag) = on;
  else o.*(s.detector_flag) = on;
}

bool set_optimization(DetectorOptions& o, std::string_view name, bool on) {
  const OptimizationSwitch* s = find_optimization(name);
  if (!s) return false;
  set_optimization(o, *s, on);
  return true;
}

bool set_optimization(SessionOptions& o, const OptimizationSwitch& s, bool on) {
  if (!s.session_flag) return false;
  o.opt.*(s.session_flag) = on;
  return true;
}

bool set_optimization(SessionOptions& o, std::string_view name, bool on) {
  const OptimizationSwitch* s = find_optimization(name);
  return s && set_optimization(o, *s, on);
}

void set_all_optimizations(DetectorOptions& o, bool on) {
  for (const auto& s : optimization_switches()) set_optimization(o, s, on);
}

void set_all_optimizations(SessionOptions& o, bool on) {
  for (const auto& s : optimization_switches(OptimizationScope::kSession)) (void)set_optimization(o, s, on);
}

}  // namespace damoyolo
