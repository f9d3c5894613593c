// Element types and the raw-buffer description shared by the host (MPI) and device (NCCL) paths.
// No framework types: a C ABI can wrap every call that takes these.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace tamoe::coll {

enum class DType : int { f32 = 0, f64 = 1, bf16 = 2 };

inline int64_t dtype_bytes(DType t) {
  switch (t) {
    case DType::f32:
      return 4;
    case DType::f64:
      return 8;
    case DType::bf16:
      return 2;
  }
  return 0;
}
const char* dtype_name(DType t);
// "f32", "f64", "bf16"; throws tamoe::Error naming `where` otherwise.
DType parse_dtype(const std::string& s, const std::string& where);

// bfloat16 <-> float on the host (round to nearest even; NaN stays NaN).
inline float bf16_to_float(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace tamoe::coll
