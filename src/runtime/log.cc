#include "runtime/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <set>

#include "runtime/params.h"

namespace tamoe::log {

namespace {
struct State {
  std::once_flag once;
  std::atomic<int> level{static_cast<int>(Level::warn)};
  bool all_subsys = true;
  std::set<std::string> subsys;
  std::atomic<int> rank{-1};
  std::string host;
  FILE* out = stderr;
  std::mutex mu;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
};
State& state() {
  static State s;
  return s;
}

void init(State& s) {
  std::call_once(s.once, [&s] {
    char h[256] = {0};
    gethostname(h, sizeof(h) - 1);
    s.host = h;
    try {
      const Params& p = Params::global();
      static const char* names[] = {"none", "error", "warn", "info", "debug", "trace"};
      std::string lv = p.get_string("TAMOE_LOG");
      for (int i = 0; i < 6; ++i)
        if (lv == names[i]) s.level = i;
      std::string sub = p.get_string("TAMOE_LOG_SUBSYS");
      s.all_subsys = sub.empty() || sub == "all";
      size_t b = 0;
      while (!s.all_subsys && b <= sub.size()) {
        size_t e = sub.find(',', b);
        if (e == std::string::npos) e = sub.size();
        if (e > b) s.subsys.insert(sub.substr(b, e - b));
        b = e + 1;
      }
      std::string file = p.get_string("TAMOE_LOG_FILE");
      if (!file.empty()) {
        size_t pos = file.find("%r");
        if (pos != std::string::npos) file.replace(pos, 2, std::to_string(getpid()));
        if (FILE* f = std::fopen(file.c_str(), "a")) s.out = f;
      }
    } catch (...) {
      // A bad TAMOE_* value is reported by whoever reads the registry; logging stays at warn.
    }
  });
}
}  // namespace

bool enabled(Level level, const char* subsys) {
  State& s = state();
  init(s);
  if (static_cast<int>(level) > s.level.load(std::memory_order_relaxed)) return false;
  return s.all_subsys || s.subsys.count(subsys) != 0 || level <= Level::warn;
}

void set_rank(int rank) {
  state().rank = rank;
}

void set_level(Level level) {
  State& s = state();
  init(s);
  s.level = static_cast<int>(level);
}

void write(Level level, const char* subsys, const std::string& message) {
  static const char* tag[] = {"", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
  State& s = state();
  init(s);
  double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.t0).count();
  int rank = s.rank.load();
  std::lock_guard<std::mutex> lock(s.mu);
  std::fprintf(s.out, "%s:%d:%s [%9.3f] tamoe %s %s: %s\n", s.host.c_str(),
               static_cast<int>(getpid()), rank < 0 ? "?" : std::to_string(rank).c_str(), t,
               tag[static_cast<int>(level)], subsys, message.c_str());
  std::fflush(s.out);
}

}  // namespace tamoe::log
