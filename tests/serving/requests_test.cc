// The service's parsers on their own: hostile bytes get a Status naming what
// is wrong, never a crash (the fuzz targets drive the same functions).
#include <gtest/gtest.h>

#include <cstring>

#include "serving/requests.h"

namespace damoyolo::serving {
namespace {

TEST(Requests, TargetsAndQueries) {
  auto t = parse_target("/v1/detect?conf=0.5&classes=1%2C2&empty=&flag");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->path, "/v1/detect");
  EXPECT_EQ(t->query.at("conf"), "0.5");
  EXPECT_EQ(t->query.at("classes"), "1,2");
  EXPECT_EQ(t->query.at("empty"), "");
  EXPECT_EQ(t->query.at("flag"), "");
}

TEST(Requests, BadEscapesAreErrors) {
  for (const char* bad : {"/a%", "/a%2", "/a%zz", "/x?q=%g1"}) {
    auto t = parse_target(bad);
    EXPECT_FALSE(t.ok()) << bad;
    if (!t.ok()) {
      EXPECT_EQ(t.status().code(), ErrorCode::kParseError) << bad;
    }
  }
}

TEST(Requests, QueryOptions) {
  auto o = parse_query_options({{"conf", "0.4"}, {"iou", "0.5"}, {"max_det", "10"}, {"classes", "0,3"}, {"timeout_ms", "20"}});
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_FLOAT_EQ(*o->conf, 0.4f);
  EXPECT_EQ(*o->max_det, 10);
  EXPECT_EQ(*o->classes, (std::vector<int>{0, 3}));
  EXPECT_EQ(*o->timeout_ms, 20);
  EXPECT_FALSE(parse_query_options({{"conf", "0.4x"}}).ok());
  EXPECT_FALSE(parse_query_options({{"max_det", "1.5"}}).ok());
  EXPECT_FALSE(parse_query_options({{"classes", ""}}).ok());
  EXPECT_FALSE(parse_query_options({{"confidence", "0.4"}}).ok());
  PostprocessOptions base;
  auto applied = apply_options(*o, base, 10);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied->class_filter, (std::vector<int>{0, 3}));
  EXPECT_FALSE(apply_options(*o, base, 3).ok());  // class 3 of 3
  RequestOptions r;
  r.conf = 1.5f;
  EXPECT_FALSE(apply_options(r, base, 10).ok());
  r.conf = std::nanf("");
  EXPECT_FALSE(apply_options(r, base, 10).ok());
}

TEST(Requests, V2Parameters) {
  auto o = parse_v2_parameters(nlohmann::json{{"conf", 0.3}, {"classes", "1,2"}, {"timeout", 2500}, {"other", true}});
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(*o->timeout_ms, 3);  // 2500 µs, rounded up
  EXPECT_EQ(*o->classes, (std::vector<int>{1, 2}));
  EXPECT_FALSE(parse_v2_parameters(nlohmann::json{{"max_det", 2.5}}).ok());
  EXPECT_FALSE(parse_v2_parameters(nlohmann::json{{"classes", {1, "a"}}}).ok());
  EXPECT_FALSE(parse_v2_parameters(nlohmann::json{{"timeout_ms", -1}}).ok());
}

TEST(Requests, MediaTypes) {
  EXPECT_EQ(media_type("Image/JPEG ; q=1"), "image/jpeg");
  EXPECT_EQ(media_parameter("multipart/form-data; boundary=\"a b\"", "boundary"), "a b");
  EXPECT_EQ(media_parameter("multipart/form-data; charset=x; Boundary=zz", "boundary"), "zz");
  EXPECT_EQ(media_parameter("multipart/form-data", "boundary"), "");
  EXPECT_TRUE(looks_like_image("\xFF\xD8\xFF\xE0"));
  EXPECT_TRUE(looks_like_image(std::string("\x89PNG\r\n\x1a\n", 8)));
  EXPECT_FALSE(looks_like_image("GIF89a"));
}

TEST(Requests, Multipart) {
  const std::string body =
      "preamble\r\n--B\r\nContent-Disposition: form-data; name=\"x\"; filename=\"a.jpg\"\r\n"
      "Content-Type: image/jpeg\r\n\r\nAAA\r\n--B\r\n\r\nBB\r\n--B--\r\nepilogue";
  auto parts = parse_multipart(body, "B");
  ASSERT_TRUE(parts.ok()) << parts.status().message();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].filename, "a.jpg");
  EXPECT_EQ((*parts)[0].name, "x");
  EXPECT_EQ((*parts)[0].data, "AAA");
  EXPECT_EQ((*parts)[1].data, "BB");
  // The data may contain CRLFs and the boundary text without its leading CRLF.
  auto tricky = parse_multipart("--B\r\n\r\nx\r\n--Bq\r\ny\r\n--B--", "B");
  ASSERT_TRUE(tricky.ok());
  EXPECT_EQ((*tricky)[0].data, "x\r\n--Bq\r\ny");
  for (const char* bad : {"", "--B", "--B\r\n", "--B\r\nH: v\r\n\r\ndata", "--B--", "--Bx", "no delimiter"}) {
    auto p = parse_multipart(bad, "B");
    EXPECT_FALSE(p.ok()) << bad;
  }
  EXPECT_FALSE(parse_multipart(body, "").ok());
  EXPECT_FALSE(parse_multipart(body, std::string(71, 'b')).ok());
  std::string many;
  for (int i = 0; i < 5; ++i) many += "--B\r\n\r\nx\r\n";
  many += "--B--";
  EXPECT_TRUE(parse_multipart(many, "B", 5).ok());
  EXPECT_FALSE(parse_multipart(many, "B", 4).ok());
}

TEST(Requests, Base64) {
  bool ok = false;
  EXPECT_EQ(base64_decode_or_empty("aGVsbG8=", &ok), "hello");
  EXPECT_TRUE(ok);
  EXPECT_EQ(base64_decode_or_empty("aGVsbG8", &ok), "hello");  // padding optional
  EXPECT_TRUE(ok);
  base64_decode_or_empty("aGV$bG8=", &ok);
  EXPECT_FALSE(ok);
  base64_decode_or_empty("aG=Vs", &ok);
  EXPECT_FALSE(ok);
  base64_decode_or_empty("a", &ok);
  EXPECT_FALSE(ok);
}

TEST(Requests, V2RequestJsonAndBinary) {
  auto r = parse_v2_request(R"({"id":"7","inputs":[{"name":"t","datatype":"FP32","shape":[2,2],"data":[[1,2],[3,4]]}],
                               "outputs":[{"name":"boxes","parameters":{"binary_data":true}}]})",
                            std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->id, "7");
  ASSERT_EQ(r->inputs.size(), 1u);
  EXPECT_EQ(r->inputs[0].tensor.data<float>()[3], 4.f);
  ASSERT_EQ(r->outputs.size(), 1u);
  EXPECT_TRUE(r->outputs[0].binary);

  const std::string header = R"({"inputs":[{"name":"IMAGE","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":11}}]})";
  std::string bin;
  auto element = [&](const std::string& s) {
    uint32_t n = static_cast<uint32_t>(s.size());
    bin.append(reinterpret_cast<const char*>(&n), 4);
    bin += s;
  };
  element("abc");
  element("");
  ASSERT_EQ(bin.size(), 11u);
  // The elements are views into the body: it must outlive the request.
  const std::string body = header + bin;
  auto b = parse_v2_request(body, header.size());
  ASSERT_TRUE(b.ok()) << b.status().message();
  ASSERT_EQ(b->inputs[0].elements.size(), 2u);
  EXPECT_EQ(b->inputs[0].elements[0], "abc");
  EXPECT_EQ(b->inputs[0].elements[1], "");
  // Every way the binary framing can be wrong.
  EXPECT_FALSE(parse_v2_request(header + bin + "x", header.size()).ok());        // unclaimed bytes
  EXPECT_FALSE(parse_v2_request(header + bin.substr(0, 10), header.size()).ok());  // runs past the end
  EXPECT_FALSE(parse_v2_request(header + bin, header.size() + 100).ok());          // header past the body
  std::string lie = bin;
  lie[0] = 100;  // element length past its data
  EXPECT_FALSE(parse_v2_request(header + lie, header.size()).ok());
  // Shapes and data that disagree.
  EXPECT_FALSE(parse_v2_request(R"({"inputs":[{"name":"t","datatype":"FP32","shape":[3],"data":[1,2]}]})", {}).ok());
  EXPECT_FALSE(parse_v2_request(R"({"inputs":[{"name":"t","datatype":"UINT8","shape":[1],"data":[256]}]})", {}).ok());
  EXPECT_FALSE(parse_v2_request(R"({"inputs":[{"name":"t","datatype":"FP32","shape":[-1],"data":[]}]})", {}).ok());
  auto huge = parse_v2_request(R"({"inputs":[{"name":"t","datatype":"FP32","shape":[100000,100000,100000],"data":[]}]})", {});
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), ErrorCode::kOutOfRange);
}

TEST(Requests, V2ResponseTensors) {
  std::vector<std::vector<Detection>> dets = {{{1, 2, 3, 4, 0.9f, 7}, {5, 6, 7, 8, 0.5f, 1}}, {}};
  auto r = build_v2_response("m", "id9", dets, {}, false);
  EXPECT_FALSE(r.json_length);
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["id"], "id9");
  EXPECT_EQ(j["outputs"][0]["shape"], nlohmann::json({2, 2, 4}));
  EXPECT_EQ(j["outputs"][0]["data"][4], 5.0);
  EXPECT_EQ(j["outputs"][2]["data"][0], 7);
  EXPECT_EQ(j["outputs"][3]["data"], nlohmann::json({2, 0}));
  auto bin = build_v2_response("m", "", dets, {{"counts", true}}, false);
  ASSERT_TRUE(bin.json_length);
  EXPECT_EQ(bin.body.size(), *bin.json_length + 8);
  int32_t counts[2];
  std::memcpy(counts, bin.body.data() + *bin.json_length, 8);
  EXPECT_EQ(counts[0], 2);
  EXPECT_EQ(counts[1], 0);
}

}  // namespace
}  // namespace damoyolo::serving
