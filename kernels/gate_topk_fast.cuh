// Fast path of gate_topk for the common case (no node limit, k <= 8, N a multiple of 4, N <= 1024,
// 16-byte aligned logits and bias): float4 loads, a threshold from the lanes' largest keys that
// leaves ~k candidates per token, ranking of those candidates in shared memory, counting in shared
// memory. The zeroing kernel and the top-k kernel are launched programmatically (each may be
// launched before the kernel ahead of it ends, and waits for it before touching memory).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/gate_kernels.h"

namespace tamoe::kernels::detail {

// Whether topk_fast handles these parameters and pointers.
bool topk_fast_supported(const GateParams& p, const float* logits, const float* bias);

// Same contract as gate_topk (which has checked p); zeroes expert_count when p.zero_count and
// initialises first_nonfinite itself.
cudaError_t topk_fast(const GateParams& p, const float* logits, const float* bias,
                      int32_t* expert_ids, float* scores, float* lse, int32_t* expert_count,
                      unsigned long long* first_nonfinite, cudaStream_t stream);

// The zeroing kernel the fast path starts with: expert_count[0..experts) = 0 and
// *first_nonfinite = UINT64_MAX (either may be null). Launched programmatically: it waits for the
// kernel ahead of it before writing, and lets the top-k kernel launch at once.
cudaError_t launch_prep(int32_t* zero_count, int experts, unsigned long long* first_nonfinite,
                        cudaStream_t stream);

}  // namespace tamoe::kernels::detail
