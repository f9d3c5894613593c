#include "collectives/types.h"

#include "runtime/error.h"

namespace tamoe::coll {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "f32";
    case DType::f64:
      return "f64";
    case DType::bf16:
      return "bf16";
  }
  return "?";
}

DType parse_dtype(const std::string& s, const std::string& where) {
  if (s == "f32") return DType::f32;
  if (s == "f64") return DType::f64;
  if (s == "bf16") return DType::bf16;
  fail(Status::invalid_argument, where, "a dtype among f32, f64, bf16", str("\"", s, "\""));
}

}  // namespace tamoe::coll
