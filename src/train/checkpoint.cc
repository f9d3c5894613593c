#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "runtime/error.h"

namespace tamoe::train {
namespace {

static_assert(std::endian::native == std::endian::little,
              "checkpoints store little-endian float32; add byte swapping for this host");

const std::string kMagicLine =
    std::string(kCheckpointFormat) + " " + std::to_string(kCheckpointVersion) + "\n";

struct Slot {
  std::string name;
  MatrixRf* tensor;
};

std::vector<Slot> slots_of(const ParamRegistry& params, Optimizer* optimizer) {
  std::vector<Slot> out;
  for (const auto& e : params.entries()) out.push_back({"param/" + e.name, &e.param->value});
  if (optimizer != nullptr)
    for (const auto& t : optimizer->state())
      out.push_back({std::string(optimizer->kind()) + "/" + t.name, t.tensor});
  return out;
}

[[noreturn]] void fail_errno(const std::string& where, const std::string& what) {
  const int err = errno;
  fail(Status::system, where, what + " (" + std::strerror(err) + ")");
}

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail_errno(path, "write failed");
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

uint32_t crc_of(const char* data, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const auto chunk = static_cast<uInt>(std::min<size_t>(n, size_t{1} << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

}  // namespace

void save_checkpoint(const std::string& path, const ParamRegistry& params, Optimizer* optimizer,
                     const TrainState& state) {
  const std::vector<Slot> slots = slots_of(params, optimizer);
  nlohmann::json tensors = nlohmann::json::array();
  size_t payload_bytes = 0;
  for (const auto& s : slots) {
    const size_t bytes = static_cast<size_t>(s.tensor->size()) * sizeof(float);
    tensors.push_back({{"name", s.name},
                       {"dtype", "f32"},
                       {"shape", {s.tensor->rows(), s.tensor->cols()}},
                       {"offset", payload_bytes},
                       {"bytes", bytes}});
    payload_bytes += bytes;
  }
  std::vector<char> payload(payload_bytes);
  size_t off = 0;
  for (const auto& s : slots) {
    const size_t bytes = static_cast<size_t>(s.tensor->size()) * sizeof(float);
    if (bytes > 0) std::memcpy(payload.data() + off, s.tensor->data(), bytes);
    off += bytes;
  }
  nlohmann::json header = {{"format", kCheckpointFormat},
                           {"version", kCheckpointVersion},
                           {"step", state.step},
                           {"epoch", state.epoch},
                           {"batch", state.batch},
                           {"rng", state.rng},
                           {"extra", state.extra},
                           {"tensors", tensors},
                           {"payload_bytes", payload_bytes},
                           {"payload_crc32", crc_of(payload.data(), payload.size())}};
  if (optimizer != nullptr)
    header["optimizer"] = {{"kind", optimizer->kind()},
                           {"steps", optimizer->steps()},
                           {"options", optimizer->options_json()}};
  else
    header["optimizer"] = nullptr;
  const std::string header_text = header.dump();
  const uint64_t header_len = header_text.size();

  // Temporary name in the same directory so rename() is atomic.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_errno(tmp, "cannot create the temporary checkpoint file");
  try {
    write_all(fd, kMagicLine.data(), kMagicLine.size(), tmp);
    write_all(fd, &header_len, sizeof header_len, tmp);
    write_all(fd, header_text.data(), header_text.size(), tmp);
    write_all(fd, payload.data(), payload.size(), tmp);
    if (::fsync(fd) != 0) fail_errno(tmp, "fsync failed");
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    fail_errno(tmp, "close failed");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    fail_errno(path, "rename of " + tmp + " failed");
  }
  // Make the rename itself durable.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

TrainState load_checkpoint(const std::string& path, ParamRegistry& params, Optimizer* optimizer) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    fail(Status::invalid_input, path, "a readable checkpoint file", std::strerror(err));
  }
  const std::vector<char> file((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
  if (file.size() < kMagicLine.size() ||
      std::memcmp(file.data(), kMagicLine.data(), kMagicLine.size()) != 0) {
    const size_t n = std::min<size_t>(file.size(), kMagicLine.size());
    std::string found(file.data(), n);
    for (char& c : found)
      if (c == '\n' || c < 32 || c > 126) c = '?';
    fail(Status::invalid_input, path,
         str("a file starting with '", kCheckpointFormat, " ", kCheckpointVersion, "'"),
         str("'", found, "'"));
  }
  size_t pos = kMagicLine.size();
  uint64_t header_len = 0;
  if (file.size() < pos + sizeof header_len ||
      (std::memcpy(&header_len, file.data() + pos, sizeof header_len),
       header_len > file.size() - pos - sizeof header_len)) {
    fail(Status::invalid_input, path, "a header length within the file",
         str(header_len, " bytes in a file of ", file.size(), " (truncated?)"));
  }
  pos += sizeof header_len;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file.begin() + static_cast<std::ptrdiff_t>(pos),
                                   file.begin() + static_cast<std::ptrdiff_t>(pos + header_len));
  } catch (const nlohmann::json::exception& e) {
    fail(Status::invalid_input, path + ": header", "JSON", e.what());
  }
  pos += header_len;
  const char* payload = file.data() + pos;
  const size_t payload_size = file.size() - pos;

  TrainState st;
  std::vector<std::pair<MatrixRf*, size_t>> copies;  // (destination, payload offset)
  int64_t opt_steps = 0;
  try {
    if (header.at("format") != kCheckpointFormat || header.at("version") != kCheckpointVersion)
      fail(Status::invalid_input, path + ": format",
           str(kCheckpointFormat, " version ", kCheckpointVersion),
           str(header.at("format").dump(), " version ", header.at("version").dump()));
    const auto payload_bytes = header.at("payload_bytes").get<uint64_t>();
    if (payload_bytes != payload_size)
      fail(Status::invalid_input, path + ": payload", str(payload_bytes, " bytes"),
           str(payload_size, " bytes (truncated or appended to)"));
    const auto crc = header.at("payload_crc32").get<uint32_t>();
    if (crc_of(payload, payload_size) != crc)
      fail(Status::invalid_input, path + ": payload", str("CRC-32 ", crc),
           str("CRC-32 ", crc_of(payload, payload_size), " (corrupt file)"));

    st.step = header.at("step").get<int64_t>();
    st.epoch = header.at("epoch").get<int64_t>();
    st.batch = header.at("batch").get<int64_t>();
    st.rng = header.at("rng").get<std::map<std::string, std::string>>();
    st.extra = header.at("extra");

    const nlohmann::json& opt = header.at("optimizer");
    if (optimizer != nullptr) {
      if (opt.is_null())
        fail(Status::invalid_input, path + ": optimizer",
             str("state of optimizer '", optimizer->kind(), "'"), "none (a parameters-only file)");
      if (opt.at("kind").get<std::string>() != optimizer->kind())
        fail(Status::invalid_input, path + ": optimizer.kind", optimizer->kind(),
             opt.at("kind").get<std::string>());
      opt_steps = opt.at("steps").get<int64_t>();
    }

    // Index the file's tensors, then match them to the model's.
    std::map<std::string, const nlohmann::json*> by_name;
    for (const auto& t : header.at("tensors")) {
      const auto name = t.at("name").get<std::string>();
      if (!by_name.emplace(name, &t).second)
        fail(Status::invalid_input, path + ": tensors", "unique names", str("'", name, "' twice"));
    }
    const std::vector<Slot> slots = slots_of(params, optimizer);
    for (const auto& s : slots) {
      const auto it = by_name.find(s.name);
      if (it == by_name.end())
        fail(Status::invalid_input, str(path, ": tensor ", s.name), "present (the model has it)",
             "absent");
      const nlohmann::json& t = *it->second;
      const auto shape = t.at("shape").get<std::vector<int64_t>>();
      if (shape.size() != 2 || shape[0] != s.tensor->rows() || shape[1] != s.tensor->cols())
        fail(Status::invalid_input, str(path, ": tensor ", s.name),
             str("shape [", s.tensor->rows(), ", ", s.tensor->cols(), "]"),
             str("shape ", t.at("shape").dump()));
      if (t.at("dtype") != "f32")
        fail(Status::invalid_input, str(path, ": tensor ", s.name), "dtype f32",
             t.at("dtype").dump());
      const auto offset = t.at("offset").get<uint64_t>();
      const auto bytes = t.at("bytes").get<uint64_t>();
      const uint64_t want = static_cast<uint64_t>(s.tensor->size()) * sizeof(float);
      if (bytes != want || offset > payload_size || bytes > payload_size - offset)
        fail(Status::invalid_input, str(path, ": tensor ", s.name),
             str(want, " bytes inside the ", payload_size, "-byte payload"),
             str(bytes, " bytes at offset ", offset));
      copies.emplace_back(s.tensor, static_cast<size_t>(offset));
      by_name.erase(it);
    }
    // Leftovers are tensors the model lacks. Optimizer state is ignored when no optimizer is given.
    for (const auto& [name, t] : by_name) {
      if (optimizer == nullptr && name.rfind("param/", 0) != 0) continue;
      fail(Status::invalid_input, str(path, ": tensor ", name), "only tensors the model has",
           "a tensor the model lacks (different model configuration?)");
    }
  } catch (const nlohmann::json::exception& e) {
    fail(Status::invalid_input, path + ": header", "the fields of a tamoe.checkpoint v1 header",
         e.what());
  }

  for (const auto& [dst, offset] : copies)
    if (dst->size() > 0) std::memcpy(dst->data(), payload + offset, dst->size() * sizeof(float));
  if (optimizer != nullptr) optimizer->set_steps(opt_steps);
  return st;
}

}  // namespace tamoe::train
