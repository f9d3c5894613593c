#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <vector>

#include "catch_compat.h"
#include "runtime/error.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/layers.h"
#include "train/loss.h"

using namespace tamoe::train;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("tamoe_train_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A tiny classifier on a synthetic 3-class problem, with input noise drawn from its own Rng so the
// RNG state is part of what a resume must restore.
struct TinyRun {
  Dataset data;
  Rng init_rng;
  Linear<float> fc1;
  GELU<float> act;
  Linear<float> fc2;
  ParamRegistry params;
  std::unique_ptr<Optimizer> opt;
  Rng noise{123};
  BatchSampler sampler;
  TrainState state;

  TinyRun(uint64_t init_seed, int hidden, bool sgd = false)
      : init_rng(init_seed),
        fc1(8, hidden, init_rng),
        fc2(hidden, 3, init_rng, Init::xavier_uniform),
        sampler(40, 8, 77) {
    Rng d(99);
    data.images.resize(40, 8);
    data.labels.resize(40);
    data.classes = 3;
    for (int i = 0; i < 40; ++i) {
      data.labels[i] = i % 3;
      for (int j = 0; j < 8; ++j)
        data.images(i, j) = static_cast<float>(d.normal() + (j % 3 == i % 3 ? 1.5 : 0.0));
    }
    params.add_layer("fc1", fc1);
    params.add_layer("fc2", fc2);
    if (sgd)
      opt = std::make_unique<Sgd>(params, SgdOptions{0.05, 0.9});
    else
      opt = std::make_unique<Adam>(params, AdamOptions{0.01});
  }

  // Trains until state.step == steps (5 batches per epoch).
  void train_to(int64_t steps) {
    MatrixRf x;
    std::vector<int> y;
    while (state.step < steps) {
      sampler.set_epoch(state.epoch);
      gather_batch(data, sampler.batch(state.batch), x, y);
      for (Eigen::Index i = 0; i < x.size(); ++i)
        x.data()[i] += static_cast<float>(0.1 * noise.normal());
      params.zero_grad();
      const auto ce = softmax_cross_entropy<float>(fc2.forward(act.forward(fc1.forward(x))), y);
      fc1.backward(act.backward(fc2.backward(ce.grad)));
      opt->step();
      ++state.step;
      if (++state.batch == sampler.batches()) {
        state.batch = 0;
        ++state.epoch;
      }
    }
  }

  void save(const std::string& path) {
    state.rng["noise"] = noise.state();
    state.extra = {{"hidden", fc1.out_features()}};
    save_checkpoint(path, params, opt.get(), state);
  }
  void load(const std::string& path) {
    state = load_checkpoint(path, params, opt.get());
    noise.set_state(state.rng.at("noise"));
  }

  std::vector<float> everything() {
    std::vector<float> out = params.flatten_values();
    for (const auto& t : opt->state())
      out.insert(out.end(), t.tensor->data(), t.tensor->data() + t.tensor->size());
    return out;
  }
};

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const tamoe::Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("checkpoint: save -> load -> continue reproduces the uninterrupted run bit for bit",
          "[train][checkpoint]") {
  const fs::path d = temp_dir("ckpt_resume");
  const std::string path = (d / "ck.bin").string();
  for (bool sgd : {false, true}) {
    TinyRun straight(1, 16, sgd);
    straight.train_to(13);  // crosses two epoch boundaries

    TinyRun first(1, 16, sgd);
    first.train_to(7);
    first.save(path);
    REQUIRE(fs::exists(path));
    REQUIRE(std::distance(fs::directory_iterator(d), fs::directory_iterator()) ==
            1);  // no temp left

    TinyRun resumed(999, 16, sgd);  // different init: everything must come from the file
    resumed.load(path);
    REQUIRE(resumed.state.step == 7);
    REQUIRE(resumed.state.epoch == 1);
    REQUIRE(resumed.state.batch == 2);
    REQUIRE(resumed.state.extra.at("hidden") == 16);
    REQUIRE(resumed.opt->steps() == 7);
    REQUIRE(bitwise_equal(resumed.everything(), first.everything()));
    resumed.train_to(13);
    INFO("optimizer " << (sgd ? "sgd" : "adam"));
    REQUIRE(bitwise_equal(resumed.everything(), straight.everything()));
    REQUIRE(resumed.noise == straight.noise);
    // Overwriting an existing checkpoint is fine.
    resumed.save(path);
  }
  fs::remove_all(d);
}

TEST_CASE("checkpoint: bad or mismatched files are rejected and leave the model untouched",
          "[train][checkpoint]") {
  const fs::path d = temp_dir("ckpt_bad");
  const std::string path = (d / "ck.bin").string();
  TinyRun run(1, 16);
  run.train_to(3);
  run.save(path);
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> good((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
  auto write = [&](const std::string& p, const std::vector<char>& bytes) {
    std::ofstream out(p, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  };

  TinyRun other(5, 16);
  const std::vector<float> before = other.everything();

  SECTION("missing file") {
    const std::string e = error_of([&] { other.load((d / "none").string()); });
    REQUIRE(contains(e, "none"));
  }
  SECTION("not a checkpoint") {
    write((d / "x").string(), std::vector<char>{'h', 'e', 'l', 'l', 'o'});
    const std::string e = error_of([&] { other.load((d / "x").string()); });
    REQUIRE(contains(e, "tamoe.checkpoint 1"));
    REQUIRE(contains(e, "'hello'"));
  }
  SECTION("truncated payload") {
    auto cut = good;
    cut.resize(cut.size() - 10);
    write((d / "cut").string(), cut);
    const std::string e = error_of([&] { other.load((d / "cut").string()); });
    REQUIRE(contains(e, "payload"));
    REQUIRE(contains(e, "truncated"));
  }
  SECTION("truncated header") {
    auto cut = good;
    cut.resize(40);
    write((d / "cut").string(), cut);
    const std::string e = error_of([&] { other.load((d / "cut").string()); });
    REQUIRE(contains(e, "header length"));
  }
  SECTION("flipped payload byte") {
    auto bad = good;
    bad[bad.size() - 5] ^= 0x40;
    write((d / "flip").string(), bad);
    const std::string e = error_of([&] { other.load((d / "flip").string()); });
    REQUIRE(contains(e, "CRC-32"));
  }
  SECTION("different shape") {
    TinyRun wide(1, 20);
    const std::string e = error_of([&] { wide.load(path); });
    REQUIRE(contains(e, "tensor param/fc1.weight"));
    REQUIRE(contains(e, "[8, 20]"));
    REQUIRE(contains(e, "[8,16]"));
  }
  SECTION("model has a tensor the file lacks, and the other way round") {
    Param<float> extra(2, 2);
    ParamRegistry more = other.params;
    more.add("extra", extra);
    std::string e = error_of([&] { load_checkpoint(path, more, nullptr); });
    REQUIRE(contains(e, "tensor param/extra"));
    REQUIRE(contains(e, "absent"));
    const ParamRegistry only_fc1 =
        other.params.subset([](const std::string& n) { return n.rfind("fc1", 0) == 0; });
    ParamRegistry sub = only_fc1;
    e = error_of([&] { load_checkpoint(path, sub, nullptr); });
    REQUIRE(contains(e, "tensor param/fc2.bias"));
    REQUIRE(contains(e, "lacks"));
  }
  SECTION("optimizer kind") {
    TinyRun sgd(1, 16, true);
    const std::string e = error_of([&] { sgd.load(path); });
    REQUIRE(contains(e, "optimizer.kind"));
    REQUIRE(contains(e, "expected sgd, found adam"));
    // Parameters alone load into any optimizer's model.
    load_checkpoint(path, sgd.params, nullptr);
    REQUIRE(bitwise_equal(sgd.params.flatten_values(), run.params.flatten_values()));
  }
  REQUIRE(bitwise_equal(other.everything(), before));
  fs::remove_all(d);
}

TEST_CASE("checkpoint: write failures are reported with the path", "[train][checkpoint]") {
  TinyRun run(1, 4);
  const std::string e = error_of([&] { run.save("/nonexistent-dir-tamoe/ck.bin"); });
  REQUIRE(contains(e, "/nonexistent-dir-tamoe/ck.bin.tmp."));
  REQUIRE(contains(e, "No such file"));
}
