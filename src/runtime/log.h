// Levelled, per-subsystem logging with a host:pid:rank prefix; quiet (warnings only) by default.
//   TAMOE_LOG=info TAMOE_LOG_SUBSYS=topo,plan
//   TAMOE_LOGF(info, "topo") << "found " << n << " GPUs";
#pragma once

#include <sstream>
#include <string>

namespace tamoe::log {

enum class Level : int { none = 0, error = 1, warn = 2, info = 3, debug = 4, trace = 5 };

bool enabled(Level level, const char* subsys);
void set_rank(int rank);  // called once MPI is up; -1 means "not known yet"
// Overrides the parameters (tests, tools with -v).
void set_level(Level level);
void write(Level level, const char* subsys, const std::string& message);

class Line {
 public:
  Line(Level level, const char* subsys) : level_(level), subsys_(subsys) {}
  ~Line() { write(level_, subsys_, os_.str()); }
  template <typename T>
  Line& operator<<(const T& v) {
    os_ << v;
    return *this;
  }

 private:
  Level level_;
  const char* subsys_;
  std::ostringstream os_;
};

}  // namespace tamoe::log

#define TAMOE_LOGF(level, subsys)                                   \
  if (!::tamoe::log::enabled(::tamoe::log::Level::level, subsys)) { \
  } else                                                            \
    ::tamoe::log::Line(::tamoe::log::Level::level, subsys)
