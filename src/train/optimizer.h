// Optimizers over a ParamRegistry: Adam (with bias correction and optional decoupled weight
// decay, i.e. AdamW) and SGD (optional momentum and L2 weight decay). step() applies one update
// from the gradients currently in the parameters; it does not zero them.
//
// The optimizer keeps a copy of the registry (a view), so parameters added to the registry later
// are not updated. Its state tensors are named after the parameters ("m/<param>") so a
// checkpoint can store and validate them.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/param_registry.h"

namespace tamoe::train {

struct NamedTensor {
  std::string name;
  MatrixRf* tensor = nullptr;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual const char* kind() const = 0;  // "adam", "sgd": the checkpoint's optimizer kind
  virtual void step() = 0;
  // State tensors, e.g. "m/fc1.weight", "v/fc1.weight" (empty for plain SGD).
  virtual std::vector<NamedTensor> state() = 0;
  // Hyperparameters, stored in checkpoints for the record (not restored: a resumed job may change
  // them).
  virtual nlohmann::json options_json() const = 0;

  int64_t steps() const { return steps_; }
  // For checkpoint restore: Adam's bias correction depends on the step count.
  void set_steps(int64_t steps);
  double lr() const { return lr_; }
  void set_lr(double lr);
  const ParamRegistry& params() const { return params_; }

 protected:
  Optimizer(const ParamRegistry& params, double lr);
  ParamRegistry params_;
  double lr_;
  int64_t steps_ = 0;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;  // decoupled: p -= lr * weight_decay * p before the Adam update
};

// t = steps + 1; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
class Adam : public Optimizer {
 public:
  Adam(const ParamRegistry& params, const AdamOptions& options = {});
  const char* kind() const override { return "adam"; }
  void step() override;
  std::vector<NamedTensor> state() override;
  nlohmann::json options_json() const override;
  const AdamOptions& options() const { return options_; }

 private:
  AdamOptions options_;
  std::vector<MatrixRf> m_;
  std::vector<MatrixRf> v_;
};

struct SgdOptions {
  double lr = 1e-2;
  double momentum = 0;      // 0: plain SGD, no state
  double weight_decay = 0;  // L2: g += weight_decay * p
};

// g' = g + wd p; buf = momentum * buf + g' (buf = g' on the first step); p -= lr * buf.
class Sgd : public Optimizer {
 public:
  Sgd(const ParamRegistry& params, const SgdOptions& options = {});
  const char* kind() const override { return "sgd"; }
  void step() override;
  std::vector<NamedTensor> state() override;
  nlohmann::json options_json() const override;

 private:
  SgdOptions options_;
  std::vector<MatrixRf> buf_;
};

}  // namespace tamoe::train
