// Training checkpoints: parameters, optimizer state, step/epoch/batch counters, named RNG states
// and free-form metadata in one file, written atomically (temporary file, fsync, rename, fsync of
// the directory), so a crash leaves either the old or the new checkpoint, never a torn one.
//
// File layout (format "tamoe.checkpoint", version 1; see docs/training.md):
//   line   "tamoe.checkpoint 1\n"
//   uint64 little-endian length H of the header
//   H bytes of JSON header: counters, rng, extra, optimizer {kind, steps, options},
//          tensors [{name, dtype "f32", shape [rows, cols], offset, bytes}], payload_bytes,
//          payload_crc32
//   payload: the tensors as little-endian float32, row-major, at their offsets
// Tensor names: "param/<name>" for parameters, "<optimizer kind>/<state name>" for optimizer
// state ("adam/m/<name>").
//
// Loading is strict: every tensor of the model must be in the file with the same shape, the file
// may hold no tensors the model lacks, and the optimizer kind must match. Nothing is modified
// unless everything validates. Errors (tamoe::Error, invalid_input) name the file and the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "train/optimizer.h"
#include "train/param_registry.h"

namespace tamoe::train {

inline constexpr const char* kCheckpointFormat = "tamoe.checkpoint";
inline constexpr int kCheckpointVersion = 1;

struct TrainState {
  int64_t step = 0;                                 // optimizer steps taken
  int64_t epoch = 0;                                // the epoch to continue in
  int64_t batch = 0;                                // the next batch of that epoch
  std::map<std::string, std::string> rng;           // name -> Rng::state()
  nlohmann::json extra = nlohmann::json::object();  // e.g. the run's configuration
};

// optimizer may be null (parameters only).
void save_checkpoint(const std::string& path, const ParamRegistry& params, Optimizer* optimizer,
                     const TrainState& state);

// Loads into params (and optimizer's state and step count when not null; the file must then
// hold state of the same optimizer kind). Returns the counters, rng states and extra.
TrainState load_checkpoint(const std::string& path, ParamRegistry& params, Optimizer* optimizer);

}  // namespace tamoe::train
