// Checks for CUDA runtime and NCCL calls that print the call, the place and the library's message.
// Include only from files compiled with CUDA (TAMOE_HAVE_CUDA).
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include "runtime/error.h"

#define TAMOE_CHECK_CUDA(call)                                                                 \
  do {                                                                                         \
    cudaError_t e_ = (call);                                                                   \
    if (e_ != cudaSuccess)                                                                     \
      ::tamoe::fail(::tamoe::Status::system, ::tamoe::str(__FILE__, ":", __LINE__),            \
                    ::tamoe::str(#call, " to succeed"), ::tamoe::str(cudaGetErrorString(e_))); \
  } while (0)
#define TAMOE_CHECK_NCCL(call)                                                                 \
  do {                                                                                         \
    ncclResult_t r_ = (call);                                                                  \
    if (r_ != ncclSuccess)                                                                     \
      ::tamoe::fail(::tamoe::Status::system, ::tamoe::str(__FILE__, ":", __LINE__),            \
                    ::tamoe::str(#call, " to succeed"), ::tamoe::str(ncclGetErrorString(r_))); \
  } while (0)
