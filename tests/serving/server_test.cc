// damoyolo::Server on loopback: every endpoint, dynamic batching, every error
// status, deadlines, disconnects, overload and shutdown, with the real
// server and a real HTTP client (testutil/http_client.h).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "damoyolo/detector.h"
#include "damoyolo/server.h"
#include "testutil/http_client.h"
#include "testutil/testutil.h"

extern char** environ;

namespace damoyolo {
namespace {

using json = nlohmann::json;
using testing::HttpClient;
using testing::HttpReply;
using Clock = std::chrono::steady_clock;

std::string demo_model() { return (testing::source_dir() / "models" / "damoyolo_demo.onnx").string(); }
std::string demo_jpeg_path() { return (testing::source_dir() / "models" / "demo.jpg").string(); }
std::string file_bytes(const std::string& path) {
  auto v = testing::read_file(path);
  return std::string(v.begin(), v.end());
}
std::string demo_jpeg() { return file_bytes(demo_jpeg_path()); }
std::string chelsea_png_path() { return (testing::fixtures_dir() / "images" / "chelsea.png").string(); }

ServerOptions base_options() {
  ServerOptions o;
  o.model_path = demo_model();
  o.model_name = "demo";
  o.port = 0;
  o.detector.session.threads = 2;
  return o;
}

Server start(const ServerOptions& o) {
  auto s = Server::start(o);
  if (!s.ok()) throw std::runtime_error("server did not start: " + s.status().message());
  return std::move(s).value();
}

// The library's detections for the same file with the server's options.
ImageDetections reference(const std::string& path, const DetectorOptions& options = {}) {
  auto det = Detector::create(demo_model(), options);
  if (!det.ok()) throw std::runtime_error(det.status().message());
  auto r = det->detect_file(path);
  if (!r.ok()) throw std::runtime_error(r.status().message());
  return std::move(r).value();
}

// The server's JSON rounds boxes to 0.01 px and scores to 1e-4.
void expect_same(const json& got, const ImageDetections& want) {
  ASSERT_EQ(got.at("width").get<int>(), want.width);
  ASSERT_EQ(got.at("height").get<int>(), want.height);
  const auto& dets = got.at("detections");
  ASSERT_EQ(dets.size(), want.detections.size());
  for (size_t i = 0; i < dets.size(); ++i) {
    const Detection& d = want.detections[i];
    EXPECT_EQ(dets[i].at("class_id").get<int>(), d.class_id) << i;
    EXPECT_NEAR(dets[i].at("score").get<double>(), d.score, 6e-5) << i;
    const float want_box[4] = {d.x1, d.y1, d.x2, d.y2};
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(dets[i].at("box")[k].get<double>(), want_box[k], 0.006) << i;
  }
}

std::string multipart(const std::vector<std::pair<std::string, std::string>>& files, const std::string& boundary,
                      const std::string& type = "image/jpeg") {
  std::string b;
  for (const auto& [name, bytes] : files) {
    b += "--" + boundary + "\r\n";
    b += "Content-Disposition: form-data; name=\"image\"; filename=\"" + name + "\"\r\n";
    b += "Content-Type: " + type + "\r\n\r\n";
    b += bytes;
    b += "\r\n";
  }
  b += "--" + boundary + "--\r\n";
  return b;
}

std::string base64(const std::string& in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += a[v >> 18], out += a[(v >> 12) & 63], out += a[(v >> 6) & 63], out += a[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += a[v >> 18], out += a[(v >> 12) & 63], out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += a[v >> 18], out += a[(v >> 12) & 63], out += a[(v >> 6) & 63], out += '=';
  }
  return out;
}

// The number after `name{...}` (or `name `) in Prometheus text; -1 if absent.
double metric(const std::string& text, const std::string& series) {
  size_t p = text.find("\n" + series);
  if (p == std::string::npos) return -1;
  p = text.find(' ', p + 1 + series.size());
  return std::stod(text.substr(p + 1));
}

// Waits (up to 20 s) for a condition the server reaches asynchronously.
template <class F>
bool eventually(F f) {
  const auto end = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return f();
}

TEST(Server, EveryEndpointAnswers) {
  Server server = start(base_options());
  HttpClient c(server.port());
  HttpReply r = c.get("/v2");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(json::parse(r.body)["name"], "damoyolo");
  EXPECT_NE(r.body.find("binary_tensor_data"), std::string::npos);
  EXPECT_EQ(c.get("/v2/health/live").status, 200);
  r = c.get("/v2/health/ready");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["ready"], true);
  r = c.get("/v2/models/demo");
  ASSERT_EQ(r.status, 200);
  json meta = json::parse(r.body);
  EXPECT_EQ(meta["name"], "demo");
  EXPECT_EQ(meta["inputs"][0]["datatype"], "BYTES");
  EXPECT_EQ(meta["inputs"][1]["shape"], json({-1, 3, 320, 320}));
  EXPECT_EQ(meta["outputs"].size(), 4u);
  EXPECT_EQ(meta["parameters"]["class_names"].size(), 10u);
  EXPECT_EQ(c.get("/v2/models/demo/versions/1").status, 200);
  EXPECT_EQ(c.get("/v2/models/demo/ready").status, 200);
  EXPECT_EQ(c.get("/v2/models/demo/versions/1/ready").status, 200);
  r = c.get("/v2/models/other");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(json::parse(r.body)["error"].get<std::string>().find("\"other\""), std::string::npos);
  EXPECT_EQ(c.get("/v2/models/demo/versions/7").status, 404);
  EXPECT_EQ(c.get("/nowhere").status, 404);
  r = c.post("/v2/health/live", "", "application/json");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "GET");
  EXPECT_EQ(c.get("/v1/detect").status, 405);
  r = c.get("/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.header("content-type").find("text/plain"), std::string::npos);
  for (const char* name : {"damoyolo_inference_request_success", "damoyolo_inference_request_failure",
                           "damoyolo_inference_count", "damoyolo_inference_exec_count",
                           "damoyolo_inference_queue_duration_us", "damoyolo_inference_compute_infer_duration_us",
                           "damoyolo_inference_pending_request_count", "damoyolo_inference_request_latency_seconds_bucket"})
    EXPECT_NE(r.body.find(std::string("\n") + name), std::string::npos) << name;
  // HEAD: the headers alone; the connection stays in step for the next answer.
  r = c.request("HEAD", "/v2/health/ready");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.header("content-length"), "14");  // {"ready":true}
  EXPECT_EQ(c.get("/v2/health/live").body, "{\"live\":true}");
  // Every answer above came on one keep-alive connection.
  EXPECT_TRUE(c.connected());
  EXPECT_EQ(metric(c.get("/metrics").body, "damoyolo_http_connections_total"), 1);
}

TEST(Server, DetectGivesTheLibrarysDetections) {
  Server server = start(base_options());
  HttpClient c(server.port());
  const ImageDetections want_jpg = reference(demo_jpeg_path());
  HttpReply r = c.post("/v1/detect", demo_jpeg(), "image/jpeg");
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  json j = json::parse(r.body);
  ASSERT_EQ(j["images"].size(), 1u);
  ASSERT_FALSE(want_jpg.detections.empty());
  expect_same(j["images"][0], want_jpg);
  EXPECT_EQ(j["images"][0]["detections"][0]["class_name"], "ring");
  for (const char* t : {"decode", "queue", "preprocess", "inference", "postprocess"})
    EXPECT_TRUE(j["images"][0]["timings_ms"].contains(t)) << t;

  if (std::filesystem::exists(chelsea_png_path())) {
    r = c.post("/v1/detect", file_bytes(chelsea_png_path()), "image/png");
    ASSERT_EQ(r.status, 200) << r.body;
    expect_same(json::parse(r.body)["images"][0], reference(chelsea_png_path()));
    // application/octet-stream is accepted when the bytes are an image.
    r = c.post("/v1/detect", file_bytes(chelsea_png_path()), "application/octet-stream");
    EXPECT_EQ(r.status, 200) << r.body;
  }

  // Several images in one multipart request, in order, named.
  r = c.post("/v1/detect", multipart({{"a.jpg", demo_jpeg()}, {"b.jpg", demo_jpeg()}}, "XyZ123"),
             "multipart/form-data; boundary=XyZ123");
  ASSERT_EQ(r.status, 200) << r.body;
  j = json::parse(r.body);
  ASSERT_EQ(j["images"].size(), 2u);
  EXPECT_EQ(j["images"][0]["file"], "a.jpg");
  EXPECT_EQ(j["images"][1]["file"], "b.jpg");
  expect_same(j["images"][0], want_jpg);
  expect_same(j["images"][1], want_jpg);
  // The two images of one request were batched together.
  EXPECT_EQ(j["images"][0]["batch"], 2);
}

TEST(Server, QueryOptionsApplyPerRequest) {
  Server server = start(base_options());
  HttpClient c(server.port());
  DetectorOptions o;
  o.conf_threshold = 0.5f;
  HttpReply r = c.post("/v1/detect?conf=0.5", demo_jpeg(), "image/jpeg");
  ASSERT_EQ(r.status, 200) << r.body;
  const ImageDetections want = reference(demo_jpeg_path(), o);
  expect_same(json::parse(r.body)["images"][0], want);
  EXPECT_LT(want.detections.size(), reference(demo_jpeg_path()).detections.size());

  r = c.post("/v1/detect?classes=5,9&max_det=2", demo_jpeg(), "image/jpeg");
  ASSERT_EQ(r.status, 200) << r.body;
  json dets = json::parse(r.body)["images"][0]["detections"];
  EXPECT_EQ(dets.size(), 2u);
  for (const auto& d : dets) EXPECT_TRUE(d["class_id"] == 5 || d["class_id"] == 9);
  // The next request without options gets the defaults again.
  r = c.post("/v1/detect", demo_jpeg(), "image/jpeg");
  expect_same(json::parse(r.body)["images"][0], reference(demo_jpeg_path()));

  for (const char* bad : {"conf=abc", "conf=2", "iou=-1", "max_det=0", "classes=99", "classes=1,x", "confidence=0.3",
                          "timeout_ms=-5", "conf=%zz"}) {
    r = c.post(std::string("/v1/detect?") + bad, demo_jpeg(), "image/jpeg");
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
    EXPECT_TRUE(json::parse(r.body).contains("error")) << bad;
  }
}

TEST(Server, BadInputGetsItsStatusAndTheServerGoesOn) {
  ServerOptions o = base_options();
  o.max_body_bytes = 200'000;
  o.max_pixels = 440 * 420;  // the demo image exactly
  Server server = start(o);
  HttpClient c(server.port());
  // 415: not an image type.
  HttpReply r = c.post("/v1/detect", "hello", "text/plain");
  EXPECT_EQ(r.status, 415);
  r = c.post("/v1/detect", multipart({{"a.txt", "hello"}}, "b0", "text/plain"), "multipart/form-data; boundary=b0");
  EXPECT_EQ(r.status, 415) << r.body;
  // 422: claims to be an image, is not.
  r = c.post("/v1/detect", "\xFF\xD8\xFFgarbage", "image/jpeg");
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_NE(json::parse(r.body)["error"].get<std::string>().find("the image"), std::string::npos);
  // A truncated JPEG says so.
  std::string half = demo_jpeg().substr(0, 3000);
  r = c.post("/v1/detect", half, "image/jpeg");
  EXPECT_TRUE(r.status == 422 || r.status == 200) << r.status;
  // 400: a broken multipart body names the problem.
  r = c.post("/v1/detect", "--b0\r\nContent-Type: image/jpeg\r\n\r\nxx", "multipart/form-data; boundary=b0");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("closing delimiter"), std::string::npos) << r.body;
  r = c.post("/v1/detect", "xx", "multipart/form-data");
  EXPECT_EQ(r.status, 400);
  // 413: more pixels than allowed (checked from the header).
  if (std::filesystem::exists(chelsea_png_path())) {
    r = c.post("/v1/detect", file_bytes(chelsea_png_path()), "image/png");
    EXPECT_EQ(r.status, 413) << r.body;
  }
  // The connection and the server still work.
  r = c.post("/v1/detect", demo_jpeg(), "image/jpeg");
  EXPECT_EQ(r.status, 200) << r.body;
  // 413: a body over the limit, refused from its Content-Length; the server
  // closes that connection (the rest of the body is not read).
  HttpClient big(server.port());
  r = big.post("/v1/detect", std::string(300'000, 'x'), "image/jpeg");
  EXPECT_TRUE(r.status == 413 || !r.error.empty()) << r.status << " " << r.error;
  if (r.status == 413) {
    EXPECT_NE(json::parse(r.body)["error"].get<std::string>().find("200000"), std::string::npos);
  }
  // 400: garbage on the wire.
  std::string raw = HttpClient::raw_exchange(server.port(), "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_NE(raw.find("400"), std::string::npos) << raw;
  EXPECT_NE(raw.find("malformed HTTP request"), std::string::npos) << raw;
  // Still serving.
  HttpClient after(server.port());
  EXPECT_EQ(after.post("/v1/detect", demo_jpeg(), "image/jpeg").status, 200);
  const std::string m = after.get("/metrics").body;
  EXPECT_GE(metric(m, "damoyolo_inference_request_failure{model=\"demo\",version=\"1\",reason=\"unsupported_media_type\"}"), 2);
  EXPECT_GE(metric(m, "damoyolo_inference_request_failure{model=\"demo\",version=\"1\",reason=\"unprocessable\"}"), 1);
  EXPECT_GE(metric(m, "damoyolo_inference_request_failure{model=\"demo\",version=\"1\",reason=\"too_large\"}"), 1);
}

json v2_image_request(const std::vector<std::string>& images) {
  json data = json::array();
  for (const auto& i : images) data.push_back(base64(i));
  return {{"id", "req-1"},
          {"inputs", {{{"name", "IMAGE"}, {"datatype", "BYTES"}, {"shape", {images.size()}}, {"data", data}}}}};
}

// The v2 output tensors as detections of image b.
std::vector<Detection> v2_detections(const json& outputs, int b) {
  json boxes, scores, classes, counts;
  for (const auto& o : outputs) {
    if (o["name"] == "boxes") boxes = o;
    if (o["name"] == "scores") scores = o;
    if (o["name"] == "classes") classes = o;
    if (o["name"] == "counts") counts = o;
  }
  const int d = scores["shape"][1];
  std::vector<Detection> out;
  for (int k = 0; k < counts["data"][b].get<int>(); ++k) {
    const int i = b * d + k;
    out.push_back({boxes["data"][i * 4].get<float>(), boxes["data"][i * 4 + 1].get<float>(),
                   boxes["data"][i * 4 + 2].get<float>(), boxes["data"][i * 4 + 3].get<float>(),
                   scores["data"][i].get<float>(), classes["data"][i].get<int>()});
  }
  return out;
}

void expect_same_dets(const std::vector<Detection>& got, const std::vector<Detection>& want, float box_tol = 1e-3f) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].class_id, want[i].class_id);
    EXPECT_NEAR(got[i].score, want[i].score, 1e-6);
    EXPECT_NEAR(got[i].x1, want[i].x1, box_tol);
    EXPECT_NEAR(got[i].y1, want[i].y1, box_tol);
    EXPECT_NEAR(got[i].x2, want[i].x2, box_tol);
    EXPECT_NEAR(got[i].y2, want[i].y2, box_tol);
  }
}

TEST(Server, V2InferWithJsonTensors) {
  Server server = start(base_options());
  HttpClient c(server.port());
  const ImageDetections want = reference(demo_jpeg_path());
  HttpReply r = c.post("/v2/models/demo/infer", v2_image_request({demo_jpeg(), demo_jpeg()}).dump(), "application/json");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["model_name"], "demo");
  EXPECT_EQ(j["id"], "req-1");
  ASSERT_EQ(j["outputs"].size(), 4u);
  EXPECT_EQ(j["outputs"][3]["name"], "counts");
  EXPECT_EQ(j["outputs"][3]["shape"], json({2}));
  for (int b = 0; b < 2; ++b) expect_same_dets(v2_detections(j["outputs"], b), want.detections);

  // Parameters: thresholds and a requested subset of outputs.
  json req = v2_image_request({demo_jpeg()});
  req["parameters"] = {{"conf", 0.5}, {"classes", {5, 9}}};
  req["outputs"] = {{{"name", "counts"}}, {{"name", "scores"}}};
  r = c.post("/v2/models/demo/versions/1/infer", req.dump(), "application/json");
  ASSERT_EQ(r.status, 200) << r.body;
  j = json::parse(r.body);
  ASSERT_EQ(j["outputs"].size(), 2u);
  EXPECT_EQ(j["outputs"][0]["name"], "counts");
  EXPECT_EQ(j["outputs"][0]["data"][0], 3);  // ring, glyph_Z, glyph_Z over 0.5
}

TEST(Server, V2BinaryTensorExtensionBothWays) {
  Server server = start(base_options());
  HttpClient c(server.port());
  const std::string jpg = demo_jpeg();
  // One BYTES element in binary: 4-byte little-endian length, then the bytes.
  std::string bin(4, '\0');
  const uint32_t len = static_cast<uint32_t>(jpg.size());
  std::memcpy(bin.data(), &len, 4);
  bin += jpg;
  json header = {{"inputs", {{{"name", "IMAGE"}, {"datatype", "BYTES"}, {"shape", {1}},
                              {"parameters", {{"binary_data_size", bin.size()}}}}}},
                 {"parameters", {{"binary_data_output", true}}}};
  const std::string h = header.dump();
  HttpReply r = c.post("/v2/models/demo/infer", h + bin, "application/octet-stream",
                       {{"Inference-Header-Content-Length", std::to_string(h.size())}});
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  const size_t json_len = std::stoul(r.header("inference-header-content-length"));
  json j = json::parse(r.body.substr(0, json_len));
  const ImageDetections want = reference(demo_jpeg_path());
  // Walk the binary outputs in order.
  size_t off = json_len;
  std::vector<float> boxes, scores;
  std::vector<int32_t> classes, counts;
  for (const auto& o : j["outputs"]) {
    const size_t n = o["parameters"]["binary_data_size"];
    ASSERT_FALSE(o.contains("data"));
    ASSERT_LE(off + n, r.body.size());
    const char* p = r.body.data() + off;
    if (o["name"] == "boxes") boxes.assign(reinterpret_cast<const float*>(p), reinterpret_cast<const float*>(p + n));
    if (o["name"] == "scores") scores.assign(reinterpret_cast<const float*>(p), reinterpret_cast<const float*>(p + n));
    if (o["name"] == "classes") classes.assign(reinterpret_cast<const int32_t*>(p), reinterpret_cast<const int32_t*>(p + n));
    if (o["name"] == "counts") counts.assign(reinterpret_cast<const int32_t*>(p), reinterpret_cast<const int32_t*>(p + n));
    off += n;
  }
  EXPECT_EQ(off, r.body.size());
  ASSERT_EQ(counts.size(), 1u);
  ASSERT_EQ(static_cast<size_t>(counts[0]), want.detections.size());
  for (size_t k = 0; k < want.detections.size(); ++k) {
    EXPECT_EQ(classes[k], want.detections[k].class_id);
    EXPECT_FLOAT_EQ(scores[k], want.detections[k].score);
    EXPECT_FLOAT_EQ(boxes[k * 4], want.detections[k].x1);
    EXPECT_FLOAT_EQ(boxes[k * 4 + 3], want.detections[k].y2);
  }
}

TEST(Server, V2PreprocessedTensorInputs) {
  Server server = start(base_options());
  HttpClient c(server.port());
  auto image = decode_image_file(demo_jpeg_path());
  ASSERT_TRUE(image.ok());
  Preprocessor pre;
  std::vector<float> f(3 * 320 * 320);
  std::vector<uint8_t> u(3 * 320 * 320);
  PreprocessInfo info;
  ASSERT_TRUE(pre.run(image->view(), 320, 320, ResizeMode::kStretch, f.data(), &info).ok());
  ASSERT_TRUE(pre.run_u8(image->view(), 320, 320, ResizeMode::kStretch, u.data()).ok());
  // Boxes come back in network-input pixels: scaled, they are the image's.
  std::vector<Detection> want = reference(demo_jpeg_path()).detections;
  for (auto& d : want) {
    d.x1 /= info.scale_x, d.x2 /= info.scale_x;
    d.y1 /= info.scale_y, d.y2 /= info.scale_y;
  }
  for (const char* dt : {"FP32", "UINT8"}) {
    const bool fp = std::string(dt) == "FP32";
    const std::string bin = fp ? std::string(reinterpret_cast<const char*>(f.data()), f.size() * 4)
                               : std::string(reinterpret_cast<const char*>(u.data()), u.size());
    json header = {{"inputs", {{{"name", "images"}, {"datatype", dt}, {"shape", {1, 3, 320, 320}},
                                {"parameters", {{"binary_data_size", bin.size()}}}}}}};
    const std::string h = header.dump();
    HttpReply r = c.post("/v2/models/demo/infer", h + bin, "application/octet-stream",
                         {{"Inference-Header-Content-Length", std::to_string(h.size())}});
    ASSERT_EQ(r.status, 200) << dt << ": " << r.body.substr(0, 300);
    expect_same_dets(v2_detections(json::parse(r.body)["outputs"], 0), want, 2e-3f);
  }
  // A small tensor in JSON: wrong shape is refused with the expected one.
  json small = {{"inputs", {{{"name", "images"}, {"datatype", "FP32"}, {"shape", {1, 3, 2, 2}},
                             {"data", std::vector<float>(12, 1.f)}}}}};
  HttpReply r = c.post("/v2/models/demo/infer", small.dump(), "application/json");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("[N,3,320,320]"), std::string::npos) << r.body;
}

TEST(Server, V2MalformedRequestsAre400WithAMessage) {
  Server server = start(base_options());
  HttpClient c(server.port());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", "not valid JSON"},
      {"[1,2]", "JSON object"},
      {R"({"inputs": []})", "non-empty array"},
      {R"({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["@@@"]}]})", "base64"},
      {R"({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [2], "data": ["AAAA"]}]})", "elements"},
      {R"({"inputs": [{"name": "x", "datatype": "INT64", "shape": [1], "data": [1]}]})", "INT64"},
      {R"({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["AAAA"]},
                      {"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["AAAA"]}]})", "one input"},
      {R"({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["AAAA"]}],
           "outputs": [{"name": "masks"}]})", "masks"},
      {R"({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["AAAA"]}],
           "parameters": {"conf": "high"}})", "conf"},
      {R"({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 10}}]})",
       "Inference-Header-Content-Length"},
  };
  for (const auto& [body, says] : cases) {
    HttpReply r = c.post("/v2/models/demo/infer", body, "application/json");
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    EXPECT_NE(r.body.find(says), std::string::npos) << body << " -> " << r.body;
  }
  // The header length larger than the body.
  HttpReply r = c.post("/v2/models/demo/infer", "{}", "application/json", {{"Inference-Header-Content-Length", "99"}});
  EXPECT_EQ(r.status, 400);
  r = c.post("/v2/models/demo/infer", "{}", "application/json", {{"Inference-Header-Content-Length", "x"}});
  EXPECT_EQ(r.status, 400);
  // A valid image still works afterwards on the same connection.
  r = c.post("/v2/models/demo/infer", v2_image_request({demo_jpeg()}).dump(), "application/json");
  EXPECT_EQ(r.status, 200);
}

TEST(Server, ConcurrentRequestsAreBatchedAndAnsweredCorrectly) {
  ServerOptions o = base_options();
  o.max_batch = 4;
  o.max_queue_delay_us = 400'000;  // long enough for 8 requests to gather
  Server server = start(o);
  const ImageDetections want = reference(demo_jpeg_path());
  const std::string jpg = demo_jpeg();
  std::vector<std::future<HttpReply>> replies;
  for (int i = 0; i < 8; ++i)
    replies.push_back(std::async(std::launch::async, [&] {
      HttpClient c(server.port());
      return c.post("/v1/detect", jpg, "image/jpeg");
    }));
  int batched = 0;
  for (auto& f : replies) {
    HttpReply r = f.get();
    ASSERT_EQ(r.status, 200) << r.body << r.error;
    json img = json::parse(r.body)["images"][0];
    expect_same(img, want);
    if (img["batch"].get<int>() > 1) ++batched;
  }
  EXPECT_GE(batched, 4);
  const ServerStats st = server.stats();
  EXPECT_EQ(st.inferences, 8);
  EXPECT_LE(st.executions, 4);  // 8 images, batches of up to 4: at most 4 runs even if some ran alone
  HttpClient c(server.port());
  const std::string m = c.get("/metrics").body;
  EXPECT_EQ(metric(m, "damoyolo_inference_count{model=\"demo\",version=\"1\"}"), 8);
  EXPECT_EQ(metric(m, "damoyolo_inference_exec_count{model=\"demo\",version=\"1\"}"), st.executions);
  EXPECT_EQ(metric(m, "damoyolo_inference_request_success{model=\"demo\",version=\"1\"}"), 8);
}

TEST(Server, OverloadIsRefusedAtOnceWithRetryAfter) {
  ServerOptions o = base_options();
  o.max_batch = 4;
  o.max_queue = 2;
  o.max_queue_delay_us = 1'500'000;  // the two admitted images wait this long
  Server server = start(o);
  const std::string jpg = demo_jpeg();
  auto a = std::async(std::launch::async, [&] { return HttpClient(server.port()).post("/v1/detect", jpg, "image/jpeg"); });
  auto b = std::async(std::launch::async, [&] { return HttpClient(server.port()).post("/v1/detect", jpg, "image/jpeg"); });
  ASSERT_TRUE(eventually([&] { return server.stats().pending == 2; }));
  const auto t0 = Clock::now();
  HttpReply r = HttpClient(server.port()).post("/v1/detect", jpg, "image/jpeg");
  const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_LT(waited, 1.0);  // at once, not after the queue
  EXPECT_NE(json::parse(r.body)["error"].get<std::string>().find("overloaded"), std::string::npos);
  // A request with more images than the queue can ever hold: 413.
  r = HttpClient(server.port()).post("/v1/detect", multipart({{"1", jpg}, {"2", jpg}, {"3", jpg}}, "q"),
                                     "multipart/form-data; boundary=q");
  EXPECT_EQ(r.status, 413);
  // The admitted ones complete.
  EXPECT_EQ(a.get().status, 200);
  EXPECT_EQ(b.get().status, 200);
  EXPECT_EQ(server.stats().rejected_overload, 1);
  EXPECT_EQ(server.stats().pending, 0);
}

TEST(Server, DeadlinesAnswer504WithoutRunning) {
  ServerOptions o = base_options();
  o.max_batch = 4;
  o.max_queue_delay_us = 5'000'000;
  Server server = start(o);
  const auto t0 = Clock::now();
  HttpReply r = HttpClient(server.port()).post("/v1/detect?timeout_ms=150", demo_jpeg(), "image/jpeg");
  const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_NE(r.body.find("150 ms"), std::string::npos) << r.body;
  EXPECT_LT(waited, 3.0);  // at its deadline, not at the 5 s batch delay
  // The v2 form: Triton's "timeout" in microseconds.
  json req = v2_image_request({demo_jpeg()});
  req["parameters"] = {{"timeout", 100000}};
  r = HttpClient(server.port()).post("/v2/models/demo/infer", req.dump(), "application/json");
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_EQ(server.stats().deadline_exceeded, 2);
  EXPECT_EQ(server.stats().executions, 0);  // neither ran
  // The server-wide default applies when a request sets none.
  server.stop();
  server.wait();
  o.timeout_ms = 100;
  Server with_default = start(o);
  r = HttpClient(with_default.port()).post("/v1/detect", demo_jpeg(), "image/jpeg");
  EXPECT_EQ(r.status, 504);
}

TEST(Server, ADisconnectedClientsWorkIsDropped) {
  ServerOptions o = base_options();
  o.max_batch = 4;
  o.max_queue_delay_us = 1'000'000;
  Server server = start(o);
  {
    HttpClient gone(server.port());
    namespace http = boost::beast::http;
    http::request<http::string_body> req(http::verb::post, "/v1/detect", 11);
    req.set(http::field::content_type, "image/jpeg");
    req.body() = demo_jpeg();
    req.prepare_payload();
    ASSERT_TRUE(gone.get("/v2/health/live").status == 200);
    http::write(gone.stream(), req);
    ASSERT_TRUE(eventually([&] { return server.stats().pending == 1; }));
    gone.close();
  }
  // Another client meanwhile is served normally.
  HttpReply r = HttpClient(server.port()).post("/v1/detect", demo_jpeg(), "image/jpeg");
  EXPECT_EQ(r.status, 200);
  ASSERT_TRUE(eventually([&] { return server.stats().cancelled == 1; }));
  EXPECT_EQ(server.stats().inferences, 1);  // only the connected client's image ran
  EXPECT_EQ(server.stats().pending, 0);
}

TEST(Server, ShutdownFinishesAcceptedRequestsThenStops) {
  ServerOptions o = base_options();
  o.max_batch = 4;
  o.max_queue_delay_us = 800'000;
  Server server = start(o);
  const int port = server.port();
  HttpClient idle(port);
  ASSERT_EQ(idle.get("/v2/health/ready").status, 200);
  auto pending = std::async(std::launch::async, [&] { return HttpClient(port).post("/v1/detect", demo_jpeg(), "image/jpeg"); });
  ASSERT_TRUE(eventually([&] { return server.stats().pending == 1; }));
  server.stop();
  // Not ready any more while it drains.
  HttpReply r = pending.get();
  EXPECT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_EQ(r.header("connection"), "close");
  server.wait();
  // Gone: the idle keep-alive connection was closed, new ones are refused.
  EXPECT_NE(idle.get("/v2/health/ready").status, 200);
  EXPECT_NE(HttpClient(port).get("/v2/health/live").status, 200);
}

TEST(Server, HoldsAThousandKeepAliveConnections) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  int n = 1000;
  if (rl.rlim_cur < 2 * 1000 + 64) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 2 * 1000 + 64);
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * 1000 + 64) GTEST_SKIP() << "RLIMIT_NOFILE " << rl.rlim_cur << " is below 2064";
  }
  ServerOptions o = base_options();
  o.io_threads = 1;
  Server server = start(o);
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int i = 0; i < n; ++i) {
    clients.push_back(std::make_unique<HttpClient>(server.port()));
    ASSERT_EQ(clients.back()->get("/v2/health/live").status, 200) << i;
  }
  EXPECT_EQ(server.stats().connections, n);
  // Every one of them is still open and served, and detection works beside them.
  for (int i = 0; i < n; i += 97) EXPECT_EQ(clients[i]->get("/v2/health/ready").status, 200) << i;
  EXPECT_EQ(clients[500]->post("/v1/detect", demo_jpeg(), "image/jpeg").status, 200);
  EXPECT_EQ(server.stats().connections, n);
}

TEST(Server, BodiesInFlightShareABudget) {
  ServerOptions o = base_options();
  o.max_body_bytes = 200'000;
  o.max_inflight_body_bytes = 300'000;
  Server server = start(o);
  // A client announces a 200 kB body and sends 10 bytes of it: its
  // reservation holds while it trickles.
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket slow(ioc);
  slow.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(server.port())});
  const std::string head =
      "POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 200000\r\n\r\n0123456789";
  boost::asio::write(slow, boost::asio::buffer(head));
  // Another 150 kB body does not fit beside it: 503 at once, nothing read.
  ASSERT_TRUE(eventually([&] {
    HttpReply r = HttpClient(server.port()).post("/v1/detect", std::string(150'000, 'x'), "image/jpeg");
    return r.status == 503 && r.body.find("bodies in flight") != std::string::npos &&
           r.header("retry-after") == "1";
  }));
  // Small requests still fit.
  EXPECT_EQ(HttpClient(server.port()).post("/v1/detect", demo_jpeg(), "image/jpeg").status, 200);
  // When the slow client goes, its reservation goes with it.
  slow.close();
  ASSERT_TRUE(eventually([&] {
    return HttpClient(server.port()).post("/v1/detect", std::string(150'000, 'x'), "image/jpeg").status == 422;
  }));
  o.max_inflight_body_bytes = 1000;  // less than one body: refused at start
  EXPECT_FALSE(Server::start(o).ok());
}

TEST(Server, AnswersExpect100ContinueBeforeTheBody) {
  Server server = start(base_options());
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket sock(ioc);
  sock.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(server.port())});
  const std::string jpg = demo_jpeg();
  const std::string head = "POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nExpect: 100-continue\r\n"
                           "Content-Length: " + std::to_string(jpg.size()) + "\r\n\r\n";
  boost::asio::write(sock, boost::asio::buffer(head));
  // The interim answer comes before any of the body is sent.
  std::string got;
  char buf[256];
  while (got.find("\r\n\r\n") == std::string::npos) got.append(buf, sock.read_some(boost::asio::buffer(buf)));
  EXPECT_EQ(got.rfind("HTTP/1.1 100 Continue\r\n", 0), 0u) << got;
  boost::asio::write(sock, boost::asio::buffer(jpg));
  boost::beast::flat_buffer fb;
  boost::beast::http::response<boost::beast::http::string_body> res;
  boost::beast::http::read(sock, fb, res);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_NE(res.body().find("\"ring\""), std::string::npos);
}

TEST(Server, StartErrorsSayWhat) {
  ServerOptions o = base_options();
  o.model_path = "/nonexistent/model.onnx";
  auto s = Server::start(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("/nonexistent/model.onnx"), std::string::npos);
  o = base_options();
  o.host = "not-an-ip";
  s = Server::start(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("not-an-ip"), std::string::npos);
  // A port in use.
  Server first = start(base_options());
  o = base_options();
  o.port = first.port();
  s = Server::start(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), ErrorCode::kIOError);
  EXPECT_NE(s.status().message().find(std::to_string(first.port())), std::string::npos);
  o = base_options();
  o.max_batch = 0;
  EXPECT_FALSE(Server::start(o).ok());
}

// The command: `damoyolo serve --port 0` prints its port, serves, and on
// SIGTERM finishes and exits 0.
TEST(ServeCommand, ServesAndExitsZeroOnSigterm) {
  const auto dir = testing::make_temp_dir("serve_cli");
  const std::string out = (dir / "stdout").string(), err = (dir / "stderr").string();
  const std::string cli = testing::cli_path().string();
  std::vector<std::string> args = {cli, "serve", "-m", demo_model(), "--port", "0", "--threads", "2", "--name", "demo"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, cli.c_str(), &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } reaper{pid};
  int port = 0;
  ASSERT_TRUE(eventually([&] {
    std::ifstream f(out);
    std::string word, hostport;
    if (f >> word >> hostport && word == "listening") port = std::stoi(hostport.substr(hostport.rfind(':') + 1));
    return port > 0;
  })) << testing::read_file(err).size();
  HttpClient c(port);
  HttpReply r = c.post("/v1/detect", demo_jpeg(), "image/jpeg");
  ASSERT_EQ(r.status, 200) << r.body;
  // The command line's defaults: conf 0.25.
  const json answer = json::parse(r.body);  // a named object: the loop reads into it
  for (const auto& d : answer["images"][0]["detections"]) EXPECT_GE(d["score"].get<double>(), 0.25);
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_TRUE(eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }));
  reaper.pid = 0;
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::ifstream ef(err);
  std::string log((std::istreambuf_iterator<char>(ef)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find("SIGTERM"), std::string::npos) << log;
  EXPECT_NE(log.find("1 requests answered"), std::string::npos) << log;
}

}  // namespace
}  // namespace damoyolo
