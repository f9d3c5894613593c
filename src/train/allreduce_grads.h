// Data-parallel gradient averaging: every rank of comm ends with the mean over ranks of the
// gradients in params. Collective over comm; all ranks must pass registries with the same
// parameter sizes in the same order (checked: the element counts are compared first).
#pragma once

#include <mpi.h>

#include <span>

#include "train/param_registry.h"

namespace tamoe::train {

// One MPI_Allreduce (sum) over the flattened gradients, then a division by the rank count.
void allreduce_grads(ParamRegistry& params, MPI_Comm comm);

// The same on a caller's buffer (in place).
void allreduce_mean(std::span<float> values, MPI_Comm comm);

}  // namespace tamoe::train
