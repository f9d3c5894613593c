// Balancing losses of the gate, each with its value and its gradient with respect to the logits.
// All take the S x N logits (token-major, double) and use the softmax probabilities
// P = softmax(logits) row-wise; p_e = mean_t P(t,e). f is the share of top-k assignments per
// expert (assignment_share() of the top-k counts); it carries no gradient.
//
//   switch_loss:  N * sum_e f_e p_e                       (Switch / GShard; minimum at uniform f)
//   topo_loss:    sum_e f_e p_e / t(e)                    (TA-MoE; drives f toward the target t)
//   z_loss:       mean_t logsumexp(logits_t)^2            (keeps logits small)
// Both balance losses are sum_e w_e p_e with a fixed w (weighted_prob_loss); the gradient is
//   dL/dz(t,j) = P(t,j) * (w_j - sum_e P(t,e) w_e) / S.
#pragma once

#include <Eigen/Core>
#include <vector>

#include "routing/gate.h"

namespace tamoe::route {

struct LossGrad {
  double value = 0;
  MatrixRd grad;  // S x N, d value / d logits
};

// sum_e w_e p_e. w: size N.
LossGrad weighted_prob_loss(const MatrixRd& logits, const Eigen::VectorXd& w);
LossGrad switch_loss(const MatrixRd& logits, const Eigen::VectorXd& f);
// target: size N, every entry > 0 (a distribution over global experts).
LossGrad topo_loss(const MatrixRd& logits, const Eigen::VectorXd& f, const Eigen::VectorXd& target);
LossGrad z_loss(const MatrixRd& logits);

// The w of weighted_prob_loss for each balance loss (what the CUDA loss kernel takes).
Eigen::VectorXd switch_weights(const Eigen::VectorXd& f);
Eigen::VectorXd topo_weights(const Eigen::VectorXd& f, const Eigen::VectorXd& target);

// Rank i's target over global experts from its row of the dispatch matrix X (size P):
// t(e) = X_{i, rank(e)} / E. Throws if the row is not a distribution.
Eigen::VectorXd target_from_plan(const std::vector<double>& plan_row, const ExpertLayout& layout);

// Checks a target distribution (size N, entries > 0, sum 1 within 1e-6); names the entry.
void check_target(const Eigen::VectorXd& target, int experts, const char* where);

}  // namespace tamoe::route
