// Loss-free balancing: a per-rank bias b(e) over global experts, added to the selection keys only
// (never to the combine weights), moved after each step toward the target distribution:
//   sign:          b(e) += rate * sign(t(e) - f(e))
//   proportional:  b(e) += rate * (t(e) - f(e))
// f is the observed share of top-k assignments (from the step's counts). Softmax selection is
// invariant to a constant shift of b, so by default the mean is removed to keep b bounded.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

namespace tamoe::route {

enum class BiasUpdate { sign, proportional };

struct BiasControllerOptions {
  double rate = 1e-3;  // gamma, in logit units (per unit share for proportional)
  BiasUpdate update = BiasUpdate::sign;
  bool center = true;  // subtract the mean of b after each update
};

class BiasController {
 public:
  // target: size N, a distribution (entries > 0, sum 1). Bias starts at 0.
  BiasController(const Eigen::VectorXd& target, const BiasControllerOptions& options = {});

  // One update from this step's top-k assignment counts (size N). A step with no assignments
  // leaves the bias unchanged.
  void update(const std::vector<int64_t>& expert_count);
  // One update from an observed share (size N, sums to 1).
  void update_share(const Eigen::VectorXd& share);

  // The bias to pass to select_topk / the gate kernel (float, size N).
  const Eigen::VectorXf& bias() const { return bias_f_; }
  const Eigen::VectorXd& target() const { return target_; }
  void set_target(const Eigen::VectorXd& target);  // re-planning keeps the current bias
  // Restores a saved bias (checkpoint resume); size N, finite.
  void set_bias(const Eigen::VectorXd& bias);
  Eigen::VectorXd bias_double() const { return bias_; }
  int64_t steps() const { return steps_; }

 private:
  Eigen::VectorXd target_;
  BiasControllerOptions options_;
  Eigen::VectorXd bias_;
  Eigen::VectorXf bias_f_;
  int64_t steps_ = 0;
};

}  // namespace tamoe::route
