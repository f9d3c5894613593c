#include "routing/losses.h"

#include <cmath>

#include "runtime/error.h"

namespace tamoe::route {

namespace {

void check_logits(const MatrixRd& logits, const char* where) {
  for (Eigen::Index t = 0; t < logits.rows(); ++t)
    for (Eigen::Index e = 0; e < logits.cols(); ++e)
      if (!std::isfinite(logits(t, e)))
        fail(Status::invalid_argument, str(where, ": logits"), "finite values",
             str(logits(t, e), " at token ", t, ", expert ", e));
}

// Row-wise softmax and logsumexp, stable against large logits.
void softmax_rows(const MatrixRd& z, MatrixRd& prob, Eigen::VectorXd& lse) {
  prob.resize(z.rows(), z.cols());
  lse.resize(z.rows());
  for (Eigen::Index t = 0; t < z.rows(); ++t) {
    const double mx = z.row(t).maxCoeff();
    prob.row(t) = (z.row(t).array() - mx).exp();
    const double sum = prob.row(t).sum();
    prob.row(t) /= sum;
    lse[t] = mx + std::log(sum);
  }
}

}  // namespace

LossGrad weighted_prob_loss(const MatrixRd& logits, const Eigen::VectorXd& w) {
  TAMOE_CHECK_ARG(w.size() == logits.cols(), "weighted_prob_loss: w",
                  str("size ", logits.cols(), " (one per expert)"), str("size ", w.size()));
  check_logits(logits, "weighted_prob_loss");
  LossGrad out;
  out.grad = MatrixRd::Zero(logits.rows(), logits.cols());
  const Eigen::Index s = logits.rows();
  if (s == 0) return out;
  MatrixRd prob;
  Eigen::VectorXd lse;
  softmax_rows(logits, prob, lse);
  double total = 0;
  for (Eigen::Index t = 0; t < s; ++t) {
    const double pw = prob.row(t).dot(w.transpose());
    total += pw;
    out.grad.row(t) = prob.row(t).array() * (w.transpose().array() - pw) / static_cast<double>(s);
  }
  out.value = total / static_cast<double>(s);
  return out;
}

Eigen::VectorXd switch_weights(const Eigen::VectorXd& f) {
  return f * static_cast<double>(f.size());
}

Eigen::VectorXd topo_weights(const Eigen::VectorXd& f, const Eigen::VectorXd& target) {
  check_target(target, static_cast<int>(f.size()), "topo_loss");
  return f.array() / target.array();
}

LossGrad switch_loss(const MatrixRd& logits, const Eigen::VectorXd& f) {
  return weighted_prob_loss(logits, switch_weights(f));
}

LossGrad topo_loss(const MatrixRd& logits, const Eigen::VectorXd& f,
                   const Eigen::VectorXd& target) {
  return weighted_prob_loss(logits, topo_weights(f, target));
}

LossGrad z_loss(const MatrixRd& logits) {
  check_logits(logits, "z_loss");
  LossGrad out;
  out.grad = MatrixRd::Zero(logits.rows(), logits.cols());
  const Eigen::Index s = logits.rows();
  if (s == 0) return out;
  MatrixRd prob;
  Eigen::VectorXd lse;
  softmax_rows(logits, prob, lse);
  out.value = lse.squaredNorm() / static_cast<double>(s);
  for (Eigen::Index t = 0; t < s; ++t)
    out.grad.row(t) = prob.row(t) * (2.0 * lse[t] / static_cast<double>(s));
  return out;
}

void check_target(const Eigen::VectorXd& target, int experts, const char* where) {
  TAMOE_CHECK_ARG(target.size() == experts, str(where, ": target"),
                  str("size ", experts, " (one per global expert)"), str("size ", target.size()));
  for (Eigen::Index e = 0; e < target.size(); ++e)
    TAMOE_CHECK_ARG(target[e] > 0 && std::isfinite(target[e]), str(where, ": target[", e, "]"),
                    "a positive share", str(target[e]));
  TAMOE_CHECK_ARG(std::abs(target.sum() - 1.0) <= 1e-6, str(where, ": target"),
                  "shares that sum to 1", str("sum ", target.sum()));
}

Eigen::VectorXd target_from_plan(const std::vector<double>& row, const ExpertLayout& layout) {
  validate(layout);
  TAMOE_CHECK_ARG(static_cast<int>(row.size()) == layout.num_ranks(), "target_from_plan: plan_row",
                  str("size ", layout.num_ranks(), " (one per rank)"), str("size ", row.size()));
  Eigen::VectorXd t(layout.num_experts());
  for (int e = 0; e < layout.num_experts(); ++e)
    t[e] = row[layout.rank_of(e)] / layout.experts_per_rank;
  check_target(t, layout.num_experts(), "target_from_plan");
  return t;
}

}  // namespace tamoe::route
