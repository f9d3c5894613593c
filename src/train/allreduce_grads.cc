#include "train/allreduce_grads.h"

#include <climits>
#include <vector>

#include "runtime/error.h"

namespace tamoe::train {

void allreduce_mean(std::span<float> values, MPI_Comm comm) {
  int size = 1, rank = 0;
  TAMOE_CHECK_MPI(MPI_Comm_size(comm, &size));
  TAMOE_CHECK_MPI(MPI_Comm_rank(comm, &rank));
  // A rank with a different model would otherwise sum unrelated buffers (or hang).
  const auto n = static_cast<long long>(values.size());
  long long lo = 0, hi = 0;
  TAMOE_CHECK_MPI(MPI_Allreduce(&n, &lo, 1, MPI_LONG_LONG, MPI_MIN, comm));
  TAMOE_CHECK_MPI(MPI_Allreduce(&n, &hi, 1, MPI_LONG_LONG, MPI_MAX, comm));
  if (lo != hi)
    fail(Status::mismatch, str("allreduce_mean (rank ", rank, ")"),
         "the same number of gradient values on every rank",
         str(n, " here, between ", lo, " and ", hi, " across ranks"));
  if (n > INT_MAX)
    fail(Status::invalid_argument, "allreduce_mean", str("at most ", INT_MAX, " values"),
         std::to_string(n));
  if (size == 1 || n == 0) return;
  TAMOE_CHECK_MPI(
      MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm));
  const float inv = 1.0f / static_cast<float>(size);
  for (float& v : values) v *= inv;
}

void allreduce_grads(ParamRegistry& params, MPI_Comm comm) {
  std::vector<float> flat = params.flatten_grads();
  allreduce_mean(flat, comm);
  params.unflatten_grads(flat);
}

}  // namespace tamoe::train
