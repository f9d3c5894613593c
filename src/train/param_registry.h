// Named parameters of a model, in registration order: what the optimizer updates, what a
// checkpoint stores and what the data-parallel allreduce averages (flattened into one buffer).
// The registry does not own the parameters (the layers do); copies are views of the same
// parameters, and subset() makes a view of some of them (e.g. the replicated dense parameters
// of an expert-parallel model, without the experts).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "train/tensor.h"

namespace tamoe::train {

class ParamRegistry {
 public:
  struct Entry {
    std::string name;
    Param<float>* param = nullptr;
  };

  // Throws on an empty or duplicate name, or a grad whose shape differs from the value.
  void add(const std::string& name, Param<float>& param);
  // Adds every parameter of a layer as "<prefix>.<its name>".
  void add(const std::string& prefix, const std::vector<NamedParam<float>>& params);
  template <typename Layer>
  void add_layer(const std::string& prefix, Layer& layer) {
    add(prefix, layer.params());
  }

  const std::vector<Entry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  // Total number of scalars over all parameters.
  int64_t numel() const;
  // nullptr when absent.
  Param<float>* find(const std::string& name) const;
  ParamRegistry subset(const std::function<bool(const std::string&)>& keep) const;

  void zero_grad();
  // Concatenation in registration order, each parameter row-major; out.size() must be numel().
  void flatten_values(std::span<float> out) const;
  void unflatten_values(std::span<const float> in);
  void flatten_grads(std::span<float> out) const;
  void unflatten_grads(std::span<const float> in);
  std::vector<float> flatten_values() const;
  std::vector<float> flatten_grads() const;

 private:
  std::vector<Entry> entries_;
};

}  // namespace tamoe::train
