// Builds small ONNX models in memory for tests (bad-input cases, pass tests).
#pragma once

#include <onnx/onnx_pb.h>

#include <filesystem>
#include <string>
#include <vector>

namespace damoyolo::testing {

class ModelBuilder {
 public:
  explicit ModelBuilder(int64_t opset = 11) {
    model_.set_ir_version(7);
    model_.set_producer_name("damoyolo-tests");
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    model_.mutable_graph()->set_name("test");
  }
  // A graph input/output of float32 (elem 1) or another onnx element type.
  ModelBuilder& input(const std::string& name, const std::vector<int64_t>& dims, int elem = 1,
                      const std::vector<std::string>& dim_params = {}) {
    add_value(model_.mutable_graph()->add_input(), name, dims, elem, dim_params);
    return *this;
  }
  ModelBuilder& output(const std::string& name, const std::vector<int64_t>& dims = {}, int elem = 1) {
    add_value(model_.mutable_graph()->add_output(), name, dims, elem, {});
    return *this;
  }
  ModelBuilder& init_f32(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& v) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4));
    return *this;
  }
  ModelBuilder& init_i64(const std::string& name, const std::vector<int64_t>& dims, const std::vector<int64_t>& v) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    for (auto d : dims) t->add_dims(d);
    for (auto x : v) t->add_int64_data(x);
    return *this;
  }
  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& in,
                        const std::vector<std::string>& out, const std::string& name = "") {
    auto* n = model_.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(model_.graph().node_size()) : name);
    for (const auto& s : in) n->add_input(s);
    for (const auto& s : out) n->add_output(s);
    return *n;
  }
  static void attr_ints(onnx::NodeProto& n, const std::string& key, const std::vector<int64_t>& v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
  }
  static void attr_int(onnx::NodeProto& n, const std::string& key, int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  std::string bytes() const { return model_.SerializeAsString(); }
  onnx::ModelProto& proto() { return model_; }
  std::filesystem::path save(const std::filesystem::path& path) const;

 private:
  static void add_value(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims, int elem,
                        const std::vector<std::string>& dim_params) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem);
    auto* shape = tt->mutable_shape();
    for (size_t i = 0; i < dims.size(); ++i) {
      auto* d = shape->add_dim();
      if (i < dim_params.size() && !dim_params[i].empty()) d->set_dim_param(dim_params[i]);
      else d->set_dim_value(dims[i]);
    }
  }
  onnx::ModelProto model_;
};

// An initializer of any element type (onnx::TensorProto::INT8 ...) from
// raw little-endian bytes: the quantised models' integers.
template <class T>
void init_raw(ModelBuilder& mb, const std::string& name, int elem, const std::vector<int64_t>& dims,
              const std::vector<T>& v) {
  auto* t = mb.proto().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(elem);
  for (auto d : dims) t->add_dims(d);
  t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)));
}

}  // namespace damoyolo::testing
