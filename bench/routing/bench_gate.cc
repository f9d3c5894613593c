// tamoe-bench-gate: time the CUDA gate (scoring + top-k + bias + per-expert counting) for S tokens
// over N experts and k, and compare the bytes it must move (logits in; ids, scores, lse out) with
// the device-to-device copy bandwidth measured on the same GPU. Buffers rotate over more than the
// L2 cache so every iteration reads from HBM. Before timing, every point is checked against the
// host gate (route::select_topk) on its random logits and on a copy rounded to halves (many exact
// ties): #wrong counts ids that differ, scores off by more than 1e-5 relative and wrong expert
// counts. Exits with status 77 (skipped) without a GPU, 1 when anything was wrong.
//
// --path compares top-k kernels side by side in one run (auto = what gate_topk picks; lanes =
// the fast lane-group kernel, generic = the general kernel); a path that cannot take a point
// prints "n/a". Each point is timed twice: steps launched one by one on a stream, and the same
// steps replayed from one CUDA graph (as a training loop would). For context each expert count
// also prints how long a device copy of the same logits takes, stepped the same way. Each time is
// the median over --reps timed runs of --iters steps (a host hiccup in one run does not count).
//
//   tamoe-bench-gate [--tokens 65536] [--experts 64,128,256] [--k 2,4,8] [--iters 50] [--reps 5]
//                    [--path auto,lanes,generic] [--jsonl FILE]
#include <cuda_runtime_api.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench/common/bench_util.h"
#include "kernels/gate_kernels.h"
#include "routing/gate.h"

namespace K = tamoe::kernels;
namespace R = tamoe::route;

namespace {

constexpr size_t kRotateBytes = size_t(512) << 20;  // well past a 50-60 MB L2

void check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) {
    std::fprintf(stderr, "tamoe-bench-gate: %s failed: %s\n", what, cudaGetErrorString(rc));
    std::exit(1);
  }
}

float time_ms(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0;
  check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
  return ms;
}

// Device-to-device copy bandwidth in GB/s, counting read + write bytes.
// Seconds per step, the median over `reps` timed runs; each run enqueues `iters` steps on `st`.
template <class Run>
double median_step_s(cudaStream_t st, cudaEvent_t a, cudaEvent_t b, int reps, int iters, Run run,
                     const char* what) {
  std::vector<double> per_step;
  for (int r = 0; r < reps; ++r) {
    cudaEventRecord(a, st);
    run();
    cudaEventRecord(b, st);
    check(cudaEventSynchronize(b), what);
    per_step.push_back(time_ms(a, b) / 1e3 / iters);
  }
  return tamoe::bench::percentile(per_step, 0.5);
}

double copy_bw_gbps(int iters) {
  const size_t bytes = kRotateBytes / 2;
  void *src = nullptr, *dst = nullptr;
  check(cudaMalloc(&src, bytes), "cudaMalloc");
  check(cudaMalloc(&dst, bytes), "cudaMalloc");
  check(cudaMemset(src, 1, bytes), "cudaMemset");
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "warm-up copy");
  cudaEventRecord(a);
  for (int i = 0; i < iters; ++i) cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(b);
  check(cudaEventSynchronize(b), "copy");
  const double s = time_ms(a, b) / 1e3 / iters;
  cudaFree(src);
  cudaFree(dst);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return 2.0 * bytes / s / 1e9;
}

// Mismatches of one gate_topk call on `z` (uploaded to dz) against the host gate.
int64_t verify(const K::GateParams& p, const R::MatrixRf& z, const Eigen::VectorXf& hbias,
               float* dz, const float* bias, int32_t* ids, float* scores, float* lse,
               int32_t* count) {
  const int64_t s = p.tokens;
  const int n = p.experts, k = p.k;
  check(cudaMemcpy(dz, z.data(), sizeof(float) * s * n, cudaMemcpyHostToDevice), "upload");
  K::GateParams q = p;
  q.zero_count = true;
  check(K::gate_topk(q, dz, bias, ids, scores, lse, count, nullptr, 0), "gate_topk (verify)");
  std::vector<int32_t> hid(s * k), hcount(n);
  std::vector<float> hsc(s * k);
  check(cudaMemcpy(hid.data(), ids, sizeof(int32_t) * s * k, cudaMemcpyDeviceToHost), "download");
  check(cudaMemcpy(hsc.data(), scores, sizeof(float) * s * k, cudaMemcpyDeviceToHost), "download");
  check(cudaMemcpy(hcount.data(), count, sizeof(int32_t) * n, cudaMemcpyDeviceToHost), "download");
  R::GateOptions o;
  o.k = k;
  const R::TopK host =
      R::select_topk(z, hbias, R::ExpertLayout::regular(p.ranks, p.experts_per_rank, 1), o);
  int64_t wrong = 0;
  for (int64_t i = 0; i < s * k; ++i) {
    const double want = host.score.data()[i];
    wrong += hid[i] != host.expert.data()[i] || std::abs(hsc[i] - want) > 1e-5 * std::abs(want);
  }
  for (int e = 0; e < n; ++e) wrong += hcount[e] != host.expert_count[e];
  return wrong;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tamoe-bench-gate: CUDA gate scoring + top-k + counting vs copy bandwidth"};
  int64_t tokens = 65536;
  std::vector<int> experts{64, 128, 256};
  std::vector<int> ks{2, 4, 8};
  int iters = 50;
  int reps = 5;
  int experts_per_rank = 8;
  std::vector<std::string> paths{"auto"};
  std::string jsonl;
  const std::map<std::string, int> path_ids{
      {"auto", K::kGatePathAuto}, {"lanes", K::kGatePathLanes}, {"generic", K::kGatePathGeneric}};
  app.add_option("--tokens", tokens, "tokens per step (S)")->check(CLI::PositiveNumber);
  app.add_option("--experts", experts, "expert counts (N), at most 1024")->delimiter(',');
  app.add_option("--k", ks, "top-k values")->delimiter(',');
  app.add_option("--iters", iters, "timed iterations per run")->check(CLI::PositiveNumber);
  app.add_option("--reps", reps, "timed runs per point; times are their median")
      ->check(CLI::PositiveNumber);
  app.add_option("--experts-per-rank", experts_per_rank, "E (only changes rank ids)")
      ->check(CLI::PositiveNumber);
  app.add_option("--path", paths, "top-k kernels to compare: auto, lanes, generic")
      ->delimiter(',')
      ->check(CLI::IsMember({"auto", "lanes", "generic"}));
  app.add_option("--jsonl", jsonl, "also write one JSON object per point to FILE");
  CLI11_PARSE(app, argc, argv);
  std::ofstream js;
  if (!jsonl.empty()) {
    js.open(jsonl);
    if (!js) {
      std::fprintf(stderr, "tamoe-bench-gate: --jsonl %s: cannot open for writing\n",
                   jsonl.c_str());
      return 2;
    }
  }

  int devices = 0;
  const cudaError_t rc = cudaGetDeviceCount(&devices);
  if (rc != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "tamoe-bench-gate: no CUDA device (%s); nothing was measured\n",
                 rc != cudaSuccess ? cudaGetErrorString(rc) : "0 devices");
    return 77;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  const double copy_gbps = copy_bw_gbps(20);
  std::printf("# device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize >> 20);
  std::printf("# device copy bandwidth (read+write): %.1f GB/s\n", copy_gbps);
  std::printf("# bytes = logits S*N*4 + bias N*4 + ids/scores S*k*8 + lse S*4\n");
  std::printf(
      "# time_us/%%copy: steps launched one by one on a stream; graph_us/g%%copy: the same\n"
      "# steps replayed from one CUDA graph\n");
  std::printf("%8s %6s %3s %8s %10s %10s %8s %10s %8s %7s\n", "tokens", "N", "k", "path", "time_us",
              "GB/s", "%copy", "graph_us", "g%copy", "#wrong");
  int64_t total_wrong = 0;

  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaStream_t st = nullptr;
  check(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "cudaStreamCreate");
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (int n : experts) {
    if (n < 1 || n > K::kGateMaxExperts || n % experts_per_rank != 0) {
      std::fprintf(stderr, "tamoe-bench-gate: --experts %d: expected 1..%d and a multiple of %d\n",
                   n, K::kGateMaxExperts, experts_per_rank);
      return 2;
    }
    const size_t logit_bytes = size_t(tokens) * n * sizeof(float);
    const int copies = static_cast<int>(std::max<size_t>(2, kRotateBytes / logit_bytes));
    R::MatrixRf host(tokens, n);
    for (int64_t i = 0; i < host.size(); ++i) host.data()[i] = d(rng);
    const R::MatrixRf ties = (host.array() * 2.0f).round() / 2.0f;
    std::vector<float*> logits(copies);
    for (auto& p : logits) {
      check(cudaMalloc(reinterpret_cast<void**>(&p), logit_bytes), "cudaMalloc logits");
      check(cudaMemcpy(p, host.data(), logit_bytes, cudaMemcpyHostToDevice), "upload");
    }
    {
      // Context for small N: a device-to-device copy of the same logits bytes, stepped like the
      // gate (one copy per step over the rotating buffers), runs far below the large-copy rate.
      float* dst = nullptr;
      check(cudaMalloc(reinterpret_cast<void**>(&dst), logit_bytes), "cudaMalloc");
      check(cudaMemcpy(dst, logits[0], logit_bytes, cudaMemcpyDeviceToDevice), "warm-up copy");
      const double cs = median_step_s(
          st, a, b, reps, iters,
          [&] {
            for (int i = 0; i < iters; ++i)
              cudaMemcpyAsync(dst, logits[i % copies], logit_bytes, cudaMemcpyDeviceToDevice, st);
          },
          "same-size copy");
      std::printf(
          "# N %d: a copy of the same logits (%.1f MB read + written) takes %.2f us: %.1f%% "
          "of the copy bandwidth\n",
          n, logit_bytes / 1e6, cs * 1e6, 100.0 * 2.0 * logit_bytes / cs / 1e9 / copy_gbps);
      cudaFree(dst);
    }
    Eigen::VectorXf hbias(n);
    for (int e = 0; e < n; ++e) hbias[e] = 0.1f * d(rng);
    float *bias = nullptr, *scores = nullptr, *lse = nullptr;
    int32_t *ids = nullptr, *count = nullptr;
    const int kmax = *std::max_element(ks.begin(), ks.end());
    check(cudaMalloc(reinterpret_cast<void**>(&bias), n * sizeof(float)), "cudaMalloc");
    check(cudaMemcpy(bias, hbias.data(), n * sizeof(float), cudaMemcpyHostToDevice), "upload");
    check(cudaMalloc(reinterpret_cast<void**>(&scores), tokens * kmax * sizeof(float)), "malloc");
    check(cudaMalloc(reinterpret_cast<void**>(&ids), tokens * kmax * sizeof(int32_t)), "malloc");
    check(cudaMalloc(reinterpret_cast<void**>(&lse), tokens * sizeof(float)), "malloc");
    check(cudaMalloc(reinterpret_cast<void**>(&count), n * sizeof(int32_t)), "malloc");
    for (int k : ks) {
      if (k < 1 || k > n) continue;
      for (const std::string& path : paths) {
        K::GateParams p = K::GateParams::regular(tokens, n, k, experts_per_rank);
        p.zero_count = true;  // the counts are zeroed inside the timed step
        p.path = path_ids.at(path);
        if (K::gate_topk(p, logits[0], bias, ids, scores, lse, count, nullptr, 0) ==
            cudaErrorNotSupported) {
          cudaGetLastError();
          std::printf("%8lld %6d %3d %8s %10s\n", static_cast<long long>(tokens), n, k,
                      path.c_str(), "n/a");
          continue;
        }
        // Rounded logits without bias: many exactly equal keys (and -0 next to +0).
        int64_t wrong =
            verify(p, ties, Eigen::VectorXf(), logits[0], nullptr, ids, scores, lse, count);
        wrong += verify(p, host, hbias, logits[0], bias, ids, scores, lse, count);
        total_wrong += wrong;
        auto step = [&](int i) {
          check(K::gate_topk(p, logits[i % copies], bias, ids, scores, lse, count, nullptr, st),
                "gate_topk");
        };
        for (int i = 0; i < copies; ++i) step(i);  // warm-up
        check(cudaStreamSynchronize(st), "warm-up");
        const double s = median_step_s(
            st, a, b, reps, iters,
            [&] {
              for (int i = 0; i < iters; ++i) step(i);
            },
            "timed run");
        // The same steps captured in one CUDA graph (how a training loop replays them): no host
        // launch cost, the GPU-side gaps remain.
        cudaGraph_t graph = nullptr;
        cudaGraphExec_t exec = nullptr;
        check(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal), "begin capture");
        for (int i = 0; i < iters; ++i) step(i);
        check(cudaStreamEndCapture(st, &graph), "end capture");
        check(cudaGraphInstantiate(&exec, graph, 0), "graph instantiate");
        check(cudaGraphLaunch(exec, st), "graph warm-up");
        check(cudaStreamSynchronize(st), "graph warm-up");
        const double sg = median_step_s(
            st, a, b, reps, iters, [&] { check(cudaGraphLaunch(exec, st), "graph launch"); },
            "graph run");
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
        const double bytes =
            double(logit_bytes) + n * 4.0 + double(tokens) * k * 8.0 + double(tokens) * 4.0;
        const double gbps = bytes / s / 1e9, gbps_graph = bytes / sg / 1e9;
        std::printf("%8lld %6d %3d %8s %10.2f %10.1f %7.1f%% %10.2f %7.1f%% %7lld\n",
                    static_cast<long long>(tokens), n, k, path.c_str(), s * 1e6, gbps,
                    100.0 * gbps / copy_gbps, sg * 1e6, 100.0 * gbps_graph / copy_gbps,
                    static_cast<long long>(wrong));
        if (js)
          js << "{\"tokens\":" << tokens << ",\"experts\":" << n << ",\"k\":" << k << ",\"path\":\""
             << path << "\",\"time_us\":" << s * 1e6 << ",\"gbps\":" << gbps
             << ",\"copy_gbps\":" << copy_gbps << ",\"pct_copy\":" << 100.0 * gbps / copy_gbps
             << ",\"graph_us\":" << sg * 1e6
             << ",\"pct_copy_graph\":" << 100.0 * gbps_graph / copy_gbps << ",\"reps\":" << reps
             << ",\"wrong\":" << wrong << ",\"device\":\"" << prop.name << "\"}\n";
      }
    }
    for (auto* p : logits) cudaFree(p);
    cudaFree(bias);
    cudaFree(scores);
    cudaFree(ids);
    cudaFree(lse);
    cudaFree(count);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaStreamDestroy(st);
  if (total_wrong)
    std::fprintf(stderr, "tamoe-bench-gate: %lld wrong results\n",
                 static_cast<long long>(total_wrong));
  return total_wrong ? 1 : 0;
}
