// A small dense classifier trained on real Fashion-MNIST data: the blocks (loader, sampler,
// layers, loss, Adam) work together and learn. Skips when the data set is not installed.
#include <chrono>
#include <iostream>

#include "catch_compat.h"
#include "train/dataset.h"
#include "train/layers.h"
#include "train/loss.h"
#include "train/optimizer.h"

using namespace tamoe::train;

TEST_CASE("mlp: a dense model on 2,000 Fashion-MNIST images beats chance clearly", "[train][mlp]") {
  if (!fashion_mnist_available()) {
    WARN("Fashion-MNIST not found in " << kFashionMnistDir
                                       << " (Debian package dataset-fashion-mnist): skipped");
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  Dataset train = load_fashion_mnist(Split::train, kFashionMnistDir, 2000);
  Dataset test = load_fashion_mnist(Split::test, kFashionMnistDir, 1000);
  const Normalization norm = fit_normalization(train);
  standardize(train, norm);
  standardize(test, norm);

  // x -> Linear -> GELU -> LayerNorm -> (+ expert FFN) -> Linear -> logits: the dense skeleton of
  // the MoE classifier with a single expert.
  Rng rng(2024);
  const int d = 64;
  Linear<float> in(train.features(), d, rng);
  GELU<float> act;
  LayerNorm<float> ln(d);
  ExpertFFN<float> ffn(d, 2 * d, rng);
  Linear<float> out(d, 10, rng, Init::xavier_uniform);
  ParamRegistry params;
  params.add_layer("in", in);
  params.add_layer("ln", ln);
  params.add_layer("ffn", ffn);
  params.add_layer("out", out);
  Adam adam(params, AdamOptions{2e-3});

  auto forward = [&](const MatrixRf& x) {
    const MatrixRf h = ln.forward(act.forward(in.forward(x)));
    return out.forward(residual_add(h, ffn.forward(h)));
  };

  BatchSampler sampler(train.size(), 32, 7);
  MatrixRf x;
  std::vector<int> y;
  double first_loss = 0, last_loss = 0;
  const int epochs = 3;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    sampler.set_epoch(epoch);
    double sum = 0;
    for (int64_t b = 0; b < sampler.batches(); ++b) {
      gather_batch(train, sampler.batch(b), x, y);
      params.zero_grad();
      const auto ce = softmax_cross_entropy<float>(forward(x), y);
      const MatrixRf dh = out.backward(ce.grad);
      in.backward(act.backward(ln.backward(dh + ffn.backward(dh))));
      adam.step();
      sum += ce.loss;
    }
    (epoch == 0 ? first_loss : last_loss) = sum / static_cast<double>(sampler.batches());
  }
  const auto logits = forward(test.images);
  const double acc = static_cast<double>(count_correct<float>(logits, test.labels)) / test.size();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "mlp: " << epochs << " epochs on " << train.size() << " images, train loss "
            << first_loss << " -> " << last_loss << ", test accuracy " << acc << " on "
            << test.size() << " images, " << secs << " s\n";
  REQUIRE(last_loss < first_loss);
  REQUIRE(acc > 0.70);
}
