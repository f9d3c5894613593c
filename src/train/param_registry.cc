#include "train/param_registry.h"

#include <algorithm>
#include <cstring>

#include "runtime/error.h"

namespace tamoe::train {
namespace {

void check_size(size_t got, int64_t want, const char* where) {
  if (static_cast<int64_t>(got) != want)
    fail(Status::invalid_argument, where, str(want, " floats (the registry's numel)"),
         std::to_string(got));
}

template <typename Span, typename Fn>
void walk(const std::vector<ParamRegistry::Entry>& entries, Span buf, Fn fn) {
  size_t off = 0;
  for (const auto& e : entries) {
    const auto n = static_cast<size_t>(e.param->value.size());
    // An empty parameter has a null data pointer, which memcpy must not see.
    if (n > 0) fn(*e.param, buf.subspan(off, n));
    off += n;
  }
}

}  // namespace

void ParamRegistry::add(const std::string& name, Param<float>& param) {
  TAMOE_CHECK_ARG(!name.empty(), "ParamRegistry::add", "a non-empty name", "\"\"");
  if (find(name) != nullptr)
    fail(Status::invalid_argument, "ParamRegistry::add", "a new name", str("'", name, "' again"));
  if (param.grad.rows() != param.value.rows() || param.grad.cols() != param.value.cols())
    fail(Status::invalid_argument, str("ParamRegistry::add ", name),
         str("grad of ", param.value.rows(), " x ", param.value.cols()),
         str(param.grad.rows(), " x ", param.grad.cols()));
  entries_.push_back({name, &param});
}

void ParamRegistry::add(const std::string& prefix, const std::vector<NamedParam<float>>& params) {
  for (const auto& p : params) add(prefix.empty() ? p.name : prefix + "." + p.name, *p.param);
}

int64_t ParamRegistry::numel() const {
  int64_t n = 0;
  for (const auto& e : entries_) n += e.param->value.size();
  return n;
}

Param<float>* ParamRegistry::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return e.param;
  return nullptr;
}

ParamRegistry ParamRegistry::subset(const std::function<bool(const std::string&)>& keep) const {
  ParamRegistry out;
  for (const auto& e : entries_)
    if (keep(e.name)) out.entries_.push_back(e);
  return out;
}

void ParamRegistry::zero_grad() {
  for (auto& e : entries_) e.param->grad.setZero();
}

void ParamRegistry::flatten_values(std::span<float> out) const {
  check_size(out.size(), numel(), "ParamRegistry::flatten_values");
  walk(entries_, out, [](const Param<float>& p, std::span<float> s) {
    std::memcpy(s.data(), p.value.data(), s.size_bytes());
  });
}

void ParamRegistry::unflatten_values(std::span<const float> in) {
  check_size(in.size(), numel(), "ParamRegistry::unflatten_values");
  walk(entries_, in, [](Param<float>& p, std::span<const float> s) {
    std::memcpy(p.value.data(), s.data(), s.size_bytes());
  });
}

void ParamRegistry::flatten_grads(std::span<float> out) const {
  check_size(out.size(), numel(), "ParamRegistry::flatten_grads");
  walk(entries_, out, [](const Param<float>& p, std::span<float> s) {
    std::memcpy(s.data(), p.grad.data(), s.size_bytes());
  });
}

void ParamRegistry::unflatten_grads(std::span<const float> in) {
  check_size(in.size(), numel(), "ParamRegistry::unflatten_grads");
  walk(entries_, in, [](Param<float>& p, std::span<const float> s) {
    std::memcpy(p.grad.data(), s.data(), s.size_bytes());
  });
}

std::vector<float> ParamRegistry::flatten_values() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  flatten_values(out);
  return out;
}

std::vector<float> ParamRegistry::flatten_grads() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  flatten_grads(out);
  return out;
}

}  // namespace tamoe::train
