#include "onnx/onnx_loader.h"

#include <fcntl.h>
#include <onnx/onnx_pb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "common/checked_size.h"

namespace damoyolo::onnx_io {
namespace {

namespace fs = std::filesystem;

DType dtype_from_onnx(int32_t t, const std::string& what) {
  switch (t) {
    case onnx::TensorProto::FLOAT: return DType::kFloat32;
    case onnx::TensorProto::UINT8: return DType::kUInt8;
    case onnx::TensorProto::INT8: return DType::kInt8;
    case onnx::TensorProto::UINT16: return DType::kUInt16;
    case onnx::TensorProto::INT16: return DType::kInt16;
    case onnx::TensorProto::INT32: return DType::kInt32;
    case onnx::TensorProto::INT64: return DType::kInt64;
    case onnx::TensorProto::BOOL: return DType::kBool;
    case onnx::TensorProto::FLOAT16: return DType::kFloat16;
    case onnx::TensorProto::DOUBLE: return DType::kFloat64;
    case onnx::TensorProto::UINT32: return DType::kUInt32;
    case onnx::TensorProto::UINT64: return DType::kUInt64;
    case onnx::TensorProto::BFLOAT16: return DType::kBFloat16;
    default:
      throw Error(ErrorCode::kUnsupported, what + ": element type " + std::to_string(t) +
                                               " (" + onnx::TensorProto::DataType_Name(t) + ") is not supported");
  }
}

// Typed-field payloads (float_data, int32_data, ...) per the ONNX spec: int32_data
// also carries the narrow integer types, bool and float16 bit patterns.
// Number of values the typed field for `dtype` holds.
int64_t typed_count(const onnx::TensorProto& p, DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return p.float_data_size();
    case DType::kFloat64: return p.double_data_size();
    case DType::kInt64: return p.int64_data_size();
    case DType::kUInt32: case DType::kUInt64: return p.uint64_data_size();
    default: return p.int32_data_size();
  }
}

template <class Dst, class Src>
void copy_converted(const Src& src, Tensor& t) {
  Dst* d = t.data<Dst>();
  for (int i = 0; i < src.size(); ++i) d[i] = static_cast<Dst>(src.Get(i));
}

// The model's own trust boundary: where tensors may come from and how large
// they may be (docs/security.md). One per load; counts the weight bytes.
struct LoadContext {
  std::string base_dir;
  ModelLimits limits;
  int64_t weight_bytes = 0;

  // Bytes the tensor's data is allowed to take; checked after the file was
  // shown to hold that much, before anything is allocated.
  void admit(int64_t bytes, const Shape& shape, DType dtype, const std::string& what) {
    checked::check_tensor(shape, dtype, limits, what);
    auto total = checked::add(weight_bytes, bytes);
    if (!total || *total > limits.max_total_weight_bytes)
      throw Error(ErrorCode::kOutOfRange, what + ": the model's weights exceed the limit of " +
                                              std::to_string(limits.max_total_weight_bytes) +
                                              " bytes in all (ModelLimits::max_total_weight_bytes)");
    weight_bytes = *total;
  }
};

// Closes a file descriptor on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// A path for external data that stays inside the model's folder: relative, no
// '..', and its resolved (symlink-free) form under the folder's resolved form.
fs::path resolve_external(const std::string& location, const std::string& base_dir, const std::string& what) {
  const std::string where = what + ": external data location '" + location + "'";
  if (location.empty()) throw Error(ErrorCode::kParseError, what + ": external data without a location");
  if (location.find('\0') != std::string::npos)
    throw Error(ErrorCode::kInvalidArgument, what + ": external data location contains a NUL byte");
  const fs::path rel(location);
  if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory())
    throw Error(ErrorCode::kInvalidArgument,
                where + " is an absolute path; external data must be a file inside the model's folder");
  for (const auto& part : rel)
    if (part == "..")
      throw Error(ErrorCode::kInvalidArgument,
                  where + " contains '..'; external data must be a file inside the model's folder");
  std::error_code ec;
  const fs::path base = fs::canonical(base_dir.empty() ? "." : base_dir, ec);
  if (ec) throw Error(ErrorCode::kNotFound, what + ": the model's folder '" + base_dir + "' cannot be resolved");
  const fs::path full = base / rel;
  const fs::path resolved = fs::canonical(full, ec);
  if (ec) throw Error(ErrorCode::kNotFound, what + ": external data file '" + full.string() + "' does not exist");
  // Component-wise prefix test: /models2/x is not inside /models.
  auto [b, r] = std::mismatch(base.begin(), base.end(), resolved.begin(), resolved.end());
  if (b != base.end())
    throw Error(ErrorCode::kInvalidArgument, where + " resolves to '" + resolved.string() +
                                                 "', outside the model's folder '" + base.string() +
                                                 "' (a symbolic link?)");
  return resolved;
}

Tensor read_external(const onnx::TensorProto& p, DType dtype, Shape shape, int64_t need, LoadContext& lc,
                     const std::string& what) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : p.external_data()) {
    if (kv.key() == "location") {
      location = kv.value();
    } else if (kv.key() == "offset" || kv.key() == "length") {
      auto v = checked::parse_size(kv.value());
      if (!v)
        throw Error(ErrorCode::kParseError, what + ": external data " + kv.key() + " '" + kv.value() +
                                                "' is not a non-negative integer");
      (kv.key() == "offset" ? offset : length) = *v;
    }
  }
  if (length >= 0 && length != need)
    throw Error(ErrorCode::kParseError, what + ": external data length " + std::to_string(length) +
                                            " does not match the shape " + shape_to_string(shape) + " (" +
                                            std::to_string(need) + " bytes)");
  const fs::path path = resolve_external(location, lc.base_dir, what);
  const std::string file = "external data file '" + path.string() + "'";
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then rejects it.
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW)};
  if (f.fd < 0) throw Error(ErrorCode::kIOError, what + ": " + file + " cannot be opened: " + std::strerror(errno));
  struct stat st{};
  if (::fstat(f.fd, &st) != 0) throw Error(ErrorCode::kIOError, what + ": " + file + " cannot be read");
  if (!S_ISREG(st.st_mode))
    throw Error(ErrorCode::kInvalidArgument,
                what + ": " + file + " is not a regular file (a directory, device, FIFO or socket)");
  const int64_t size = static_cast<int64_t>(st.st_size);
  auto end = checked::add(offset, need);
  if (!end || *end > size)
    throw Error(ErrorCode::kParseError, what + ": " + file + " has " + std::to_string(size) + " bytes; the tensor " +
                                            shape_to_string(shape) + " needs " + std::to_string(need) +
                                            " bytes at offset " + std::to_string(offset));
  lc.admit(need, shape, dtype, what);
  Tensor t(dtype, std::move(shape));
  auto* dst = static_cast<char*>(t.raw());
  int64_t done = 0;
  while (done < need) {
    const size_t chunk = static_cast<size_t>(std::min<int64_t>(need - done, int64_t{1} << 30));
    const ssize_t got = ::pread(f.fd, dst + done, chunk, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      throw Error(ErrorCode::kIOError, what + ": " + file + " could not be read (wanted " + std::to_string(need) +
                                           " bytes at offset " + std::to_string(offset) + ")");
    done += got;
  }
  return t;
}

Tensor tensor_from_proto_impl(onnx::TensorProto* mut, const onnx::TensorProto& p, LoadContext& lc) {
  const std::string what = "tensor '" + p.name() + "'";
  if (p.data_type() == onnx::TensorProto::STRING)
    throw Error(ErrorCode::kUnsupported, what + ": string tensors are not supported");
  DType dtype = dtype_from_onnx(p.data_type(), what);
  Shape shape(p.dims().begin(), p.dims().end());
  for (int64_t d : shape)
    if (d < 0) throw Error(ErrorCode::kParseError, what + ": negative dimension in " + shape_to_string(shape));
  // Every count below is exact: a shape whose size overflows int64 is refused
  // here, so [2^62, 4] can never pass as "0 bytes".
  const int64_t numel = checked::numel_or_throw(shape, what);
  const int64_t need = checked::nbytes_or_throw(shape, dtype, what);
  if (p.data_location() == onnx::TensorProto::EXTERNAL) return read_external(p, dtype, shape, need, lc, what);

  // The data must be in the file before anything is allocated for it.
  if (p.has_raw_data()) {
    if (static_cast<int64_t>(p.raw_data().size()) != need)
      throw Error(ErrorCode::kParseError, what + ": raw_data has " + std::to_string(p.raw_data().size()) +
                                              " bytes, shape " + shape_to_string(shape) + " needs " + std::to_string(need));
    lc.admit(need, shape, dtype, what);
    if (mut) {
      // Take the bytes the parser already holds: no second copy of the weights.
      auto owner = std::shared_ptr<std::string>(mut->release_raw_data());
      void* data = owner->data();
      return Tensor::wrap(dtype, std::move(shape), data, std::move(owner));
    }
    Tensor t(dtype, std::move(shape));
    if (need) std::memcpy(t.raw(), p.raw_data().data(), static_cast<size_t>(need));
    return t;
  }

  const int64_t have = typed_count(p, dtype);
  if (have != numel)
    throw Error(ErrorCode::kParseError, what + ": holds " + std::to_string(have) + " values, shape " +
                                            shape_to_string(shape) + " needs " + std::to_string(numel));
  lc.admit(need, shape, dtype, what);
  Tensor t(dtype, std::move(shape));
  switch (dtype) {
    case DType::kFloat32: copy_converted<float>(p.float_data(), t); break;
    case DType::kFloat64: copy_converted<double>(p.double_data(), t); break;
    case DType::kInt64: copy_converted<int64_t>(p.int64_data(), t); break;
    case DType::kUInt32: copy_converted<uint32_t>(p.uint64_data(), t); break;
    case DType::kUInt64: copy_converted<uint64_t>(p.uint64_data(), t); break;
    case DType::kInt32: copy_converted<int32_t>(p.int32_data(), t); break;
    case DType::kInt16: copy_converted<int16_t>(p.int32_data(), t); break;
    case DType::kUInt16: copy_converted<uint16_t>(p.int32_data(), t); break;
    case DType::kInt8: copy_converted<int8_t>(p.int32_data(), t); break;
    case DType::kUInt8: copy_converted<uint8_t>(p.int32_data(), t); break;
    case DType::kBool: copy_converted<uint8_t>(p.int32_data(), t); break;
    case DType::kFloat16: case DType::kBFloat16: copy_converted<uint16_t>(p.int32_data(), t); break;
    default: throw Error(ErrorCode::kUnsupported, what + ": unsupported element type");
  }
  return t;
}

graph::Attribute convert_attribute(onnx::AttributeProto& a, LoadContext& lc, const std::string& where) {
  graph::Attribute out;
  switch (a.type()) {
    case onnx::AttributeProto::FLOAT: out.kind = graph::Attribute::Kind::kFloat; out.f = a.f(); break;
    case onnx::AttributeProto::INT: out.kind = graph::Attribute::Kind::kInt; out.i = a.i(); break;
    case onnx::AttributeProto::STRING: out.kind = graph::Attribute::Kind::kString; out.s = a.s(); break;
    case onnx::AttributeProto::TENSOR:
      out.kind = graph::Attribute::Kind::kTensor;
      out.t = tensor_from_proto_impl(a.mutable_t(), a.t(), lc);
      break;
    case onnx::AttributeProto::FLOATS:
      out.kind = graph::Attribute::Kind::kFloats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      out.kind = graph::Attribute::Kind::kInts;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      out.kind = graph::Attribute::Kind::kStrings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case onnx::AttributeProto::GRAPH:
    case onnx::AttributeProto::GRAPHS:
      // Control flow (If/Loop/Scan) never appears in DAMO-YOLO exports.
      out.kind = graph::Attribute::Kind::kGraph;
      break;
    default:
      throw Error(ErrorCode::kUnsupported, where + ": attribute '" + a.name() + "' has an unsupported type " +
                                               std::to_string(a.type()));
  }
  return out;
}

// `what` names the value in errors ("graph input 'x'").
graph::ValueInfo value_info_from_proto(const onnx::ValueInfoProto& v, const std::string& what) {
  graph::ValueInfo info;
  if (!v.has_type() || !v.type().has_tensor_type()) return info;
  const auto& tt = v.type().tensor_type();
  if (tt.elem_type() != 0 && tt.elem_type() != onnx::TensorProto::STRING) {
    try {
      info.dtype = dtype_from_onnx(tt.elem_type(), v.name());
    } catch (const Error&) {
      info.dtype = DType::kUndefined;
    }
  }
  if (tt.has_shape()) {
    info.has_shape = true;
    for (const auto& d : tt.shape().dim()) {
      // A dim_param ("batch", or the "1" strings some exporters write) is unknown here;
      // numeric dim_params are read as numbers (§3.3 of the facts: TRT exports do that).
      int64_t value = -1;
      if (d.has_dim_value()) value = d.dim_value();
      else if (d.has_dim_param()) {
        const std::string& s = d.dim_param();
        if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) {
          auto n = checked::parse_size(s);
          if (!n)
            throw Error(ErrorCode::kParseError, what + ": dimension " + std::to_string(info.shape.size()) + " is '" +
                                                    s + "', a number too large for a dimension");
          value = *n;
        }
      }
      info.shape.push_back(value);
    }
  }
  return info;
}

graph::Graph convert_model(onnx::ModelProto& model, LoadContext& lc, const std::string& name) {
  graph::Graph g;
  g.ir_version = model.ir_version();
  g.producer = model.producer_name() + (model.producer_version().empty() ? "" : " " + model.producer_version());
  for (const auto& kv : model.metadata_props()) g.metadata[kv.key()] = kv.value();
  for (const auto& op : model.opset_import()) {
    std::string domain = op.domain() == "ai.onnx" ? "" : op.domain();
    g.opsets[domain] = op.version();
  }
  if (model.opset_import_size() == 0) g.opsets[""] = 1;  // IR v2 files carry no opset import
  if (!model.has_graph()) throw Error(ErrorCode::kParseError, name + ": the model has no graph");
  onnx::GraphProto& gp = *model.mutable_graph();
  g.name = gp.name();

  for (int i = 0; i < gp.initializer_size(); ++i) {
    onnx::TensorProto* t = gp.mutable_initializer(i);
    if (t->name().empty()) throw Error(ErrorCode::kParseError, name + ": an initializer has no name");
    Tensor tensor = tensor_from_proto_impl(t, *t, lc);
    g.values[t->name()] = graph::ValueInfo{tensor.dtype(), tensor.shape(), true};
    g.constants[t->name()] = std::move(tensor);
  }
  for (const auto& in : gp.input()) {
    if (g.constants.count(in.name())) continue;  // IR < 4 lists initializers as inputs too
    g.inputs.push_back(in.name());
    g.values[in.name()] = value_info_from_proto(in, "graph input '" + in.name() + "'");
  }
  for (const auto& out : gp.output()) {
    g.outputs.push_back(out.name());
    auto info = value_info_from_proto(out, "graph output '" + out.name() + "'");
    if (info.dtype != DType::kUndefined || info.has_shape) g.values.emplace(out.name(), info);
  }
  for (const auto& vi : gp.value_info()) {
    // Exporter annotations are hints only; shape inference recomputes every value.
    (void)vi;
  }
  g.nodes.reserve(gp.node_size());
  for (int i = 0; i < gp.node_size(); ++i) {
    onnx::NodeProto& np = *gp.mutable_node(i);
    graph::Node n;
    n.op_type = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    n.name = np.name().empty() ? np.op_type() + "_" + std::to_string(i) : np.name();
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (auto& a : *np.mutable_attribute())
      n.attrs[a.name()] = convert_attribute(a, lc, n.describe());
    g.nodes.push_back(std::move(n));
  }
  g.topological_sort();
  return g;
}

graph::Graph parse(google::protobuf::io::ZeroCopyInputStream& stream, const std::string& base_dir,
                   const std::string& name, const ModelLimits& limits) {
  onnx::ModelProto model;
  google::protobuf::io::CodedInputStream coded(&stream);
  // Protobuf's default 64 MB message cap would reject the L model (168 MB).
  coded.SetTotalBytesLimit(std::numeric_limits<int>::max());
  if (!model.ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage())
    throw Error(ErrorCode::kParseError, name + ": not a valid ONNX model (protobuf parsing failed; the file is "
                                               "truncated or not ONNX)");
  if (!model.has_graph() || model.graph().node_size() == 0)
    throw Error(ErrorCode::kParseError, name + ": not a valid ONNX model (no graph or no nodes)");
  LoadContext lc{base_dir, limits};
  return convert_model(model, lc, name);
}

}  // namespace

Tensor tensor_from_proto(onnx::TensorProto& proto, const std::string& base_dir, bool steal, const ModelLimits& limits) {
  LoadContext lc{base_dir, limits};
  return tensor_from_proto_impl(steal ? &proto : nullptr, proto, lc);
}
Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& base_dir, const ModelLimits& limits) {
  LoadContext lc{base_dir, limits};
  return tensor_from_proto_impl(nullptr, proto, lc);
}

graph::Graph load_onnx_file(const std::string& path, const ModelLimits& limits) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(ErrorCode::kNotFound, "model file '" + path + "' does not exist");
  if (fs::is_directory(path, ec)) throw Error(ErrorCode::kInvalidArgument, "model path '" + path + "' is a directory");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorCode::kIOError, "model file '" + path + "' cannot be opened");
  google::protobuf::io::IstreamInputStream stream(&f);
  std::string base = fs::path(path).parent_path().string();
  return parse(stream, base.empty() ? "." : base, "model file '" + path + "'", limits);
}

graph::Graph load_onnx_memory(const void* data, size_t size, const std::string& base_dir,
                              const std::string& name_for_errors, const ModelLimits& limits) {
  if (size > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw Error(ErrorCode::kOutOfRange, name_for_errors + ": models over 2 GB are not supported");
  google::protobuf::io::ArrayInputStream stream(data, static_cast<int>(size));
  return parse(stream, base_dir, name_for_errors, limits);
}

}  // namespace damoyolo::onnx_io
