// The HTTP side of damoyolo::Server (damoyolo/server.h): Boost.Beast on
// Boost.Asio. Every connection is a small state machine on its own strand —
// read a request, hand it to the workers, write the answer when it comes
// back, read the next — so thousands of keep-alive connections cost a few
// kilobytes each and no thread. Only the routing and the small endpoints run
// on the I/O threads; decoding, post-processing and JSON building run on the
// worker pool, the network on the scheduler's thread.
#include "damoyolo/server.h"

#include <atomic>
#include <charconv>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <list>
#include <mutex>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "serving/metrics.h"
#include "serving/requests.h"
#include "serving/scheduler.h"

namespace damoyolo {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using serving::Clock;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

constexpr const char* kServerName = "damoyolo";
constexpr const char* kVersion = "0.1.0";

std::string json_dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

double round_to(double v, double per_unit) { return std::round(v * per_unit) / per_unit; }

// An HTTP answer before it is bound to a request (version, keep-alive).
struct Answer {
  http::status status = http::status::ok;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

Answer json_answer(http::status status, const nlohmann::json& j) {
  Answer a;
  a.status = status;
  a.body = json_dump(j);
  return a;
}

Answer error_answer(http::status status, const std::string& message) {
  return json_answer(status, {{"error", message}});
}

// The metrics' reason label for an error status.
const char* failure_reason(http::status s) {
  switch (s) {
    case http::status::service_unavailable: return "overload";
    case http::status::gateway_timeout: return "deadline";
    case http::status::bad_request: return "bad_request";
    case http::status::payload_too_large: return "too_large";
    case http::status::unsupported_media_type: return "unsupported_media_type";
    case http::status::unprocessable_entity: return "unprocessable";
    case http::status::not_found: return "not_found";
    default: return "internal";
  }
}

// What a library error means for the client.
http::status status_for(const Status& st) {
  switch (st.code()) {
    case ErrorCode::kOutOfRange: return http::status::payload_too_large;
    case ErrorCode::kParseError:
    case ErrorCode::kUnsupported:
    case ErrorCode::kInvalidArgument: return http::status::unprocessable_entity;
    case ErrorCode::kNotFound: return http::status::not_found;
    default: return http::status::internal_server_error;
  }
}

class Connection;

// One inference request: its images in flight and what the answer needs.
struct InferenceCall {
  enum class Kind { kDetect, kV2 };
  Kind kind = Kind::kDetect;
  std::shared_ptr<Connection> conn;
  std::shared_ptr<Request> request;  // owns the body the image views point into
  std::vector<std::string_view> encoded;  // images to decode (or empty)
  std::vector<std::string> names;         // per image: part filename / name
  Tensor tensor;                          // v2 preprocessed input [N,3,H,W]
  PostprocessOptions post;
  Clock::time_point arrived, deadline = Clock::time_point::max();
  int64_t timeout_ms = 0;
  // v2
  serving::V2Request v2;
  // Results, filled by the jobs' callbacks.
  std::mutex mu;
  std::vector<serving::JobResult> results;
  int remaining = 0;
  int images = 0;
};

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::string model_name;
  serving::Metrics metrics;
  serving::Scheduler scheduler;
  DecodeOptions decode;
  int num_classes = 0;
  int in_w = 0, in_h = 0;
  std::string input_name;

  asio::io_context ioc;
  tcp::acceptor acceptor;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> io_threads;
  std::unique_ptr<asio::thread_pool> workers;
  int port = 0;

  // Shutdown: stop() sets stopping; wait() waits for the accepted requests
  // (active) to be answered, then winds everything down.
  std::atomic<bool> stopping{false};
  std::mutex state_mu;
  std::condition_variable state_cv;
  int64_t active = 0;  // requests read and not yet answered
  bool finished = false;
  std::atomic<int64_t> admitted{0};  // images admitted and not answered (≤ max_queue)
  std::atomic<int64_t> inflight_body_bytes{0};  // reserved by bodies being read or held

  std::mutex conn_mu;
  std::list<std::weak_ptr<Connection>> connections;

  Impl(const ServerOptions& o, std::string name)
      : options(o),
        model_name(std::move(name)),
        metrics(model_name),
        scheduler(serving::SchedulerOptions{o.model_path, o.detector, o.max_batch, o.max_queue_delay_us, o.max_queue,
                                            o.worker_threads},
                  &metrics),
        ioc(std::max(1, o.io_threads)),
        acceptor(ioc) {}

  void accept();
  void request_started() {
    std::lock_guard lock(state_mu);
    ++active;
  }
  void request_finished() {
    std::lock_guard lock(state_mu);
    --active;
    state_cv.notify_all();
  }
  bool ready() const { return !stopping && scheduler.ready(); }

  // Routing, on the connection's strand.
  void handle(const std::shared_ptr<Connection>& conn, std::shared_ptr<Request> req);
  Answer model_metadata() const;
  // Inference: admission, decode on the workers, the scheduler, the answer.
  void start_inference(std::shared_ptr<InferenceCall> call);
  void decode_and_submit(std::shared_ptr<InferenceCall> call);
  void finish_inference(const std::shared_ptr<InferenceCall>& call);
  void fail_call(const std::shared_ptr<InferenceCall>& call, http::status status, const std::string& message);
  nlohmann::json image_json(const InferenceCall& call, size_t i) const;
  void count_answer(const InferenceCall& call, http::status status);
};

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, Server::Impl* server)
      : stream_(std::move(socket)), server_(server), cancelled_(std::make_shared<std::atomic<bool>>(false)) {}

  void start() {
    asio::dispatch(stream_.get_executor(), beast::bind_front_handler(&Connection::read, shared_from_this()));
  }

  // Called (through post) when the server shuts down: an idle connection
  // closes now, a busy one after its answer.
  void shut_down_if_idle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->busy_) self->close();
    });
  }
  void close_now() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

  // From any thread: the answer to the request being served.
  void respond(Answer answer) {
    asio::post(stream_.get_executor(), [self = shared_from_this(), answer = std::move(answer)]() mutable {
      self->write(std::move(answer));
    });
  }
  // The client went away while its request ran: nothing to write.
  void abandon() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->busy_) return;
      self->busy_ = false;
      self->release_body_budget();
      self->server_->request_finished();
      self->close();
    });
  }

  std::shared_ptr<std::atomic<bool>> cancelled() const { return cancelled_; }
  unsigned version() const { return version_; }

 private:
  void read() {
    if (closed_) return;
    if (server_->stopping) {
      close();
      return;
    }
    parser_.emplace();
    parser_->body_limit(static_cast<uint64_t>(server_->options.max_body_bytes));
    parser_->header_limit(64 * 1024);
    stream_.expires_after(std::chrono::milliseconds(server_->options.idle_timeout_ms));
    // The header first: the body's memory is reserved from the server's
    // budget before any of it is read (on_header).
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Connection::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, size_t n) {
    if (ec) return on_read(ec, n);
    // Bodies being received or held by requests in flight share one budget
    // (ServerOptions::max_inflight_body_bytes), so that many clients sending
    // large bodies at once cannot take the memory: over it, 503 at once.
    // A body without Content-Length (chunked) is counted at the limit.
    const auto length = parser_->content_length();
    const int64_t want = length ? static_cast<int64_t>(std::min<uint64_t>(*length, server_->options.max_body_bytes))
                                : (parser_->chunked() ? server_->options.max_body_bytes : 0);
    if (want > 0) {
      if (server_->inflight_body_bytes.fetch_add(want) + want > server_->options.max_inflight_body_bytes) {
        server_->inflight_body_bytes.fetch_sub(want);
        busy_ = true;
        keep_alive_ = false;  // the body is not read: the stream cannot frame a next request
        server_->request_started();
        server_->metrics.failure("overload");
        Answer a = error_answer(http::status::service_unavailable,
                                "server busy: too many request bodies in flight; retry later");
        a.headers.emplace_back("Retry-After", "1");
        write(std::move(a));
        return;
      }
      reserved_ = want;
    }
    // A client that asked to be told before sending its body (curl does for
    // large uploads) would otherwise wait a second for nothing.
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, parser_->get().version());
      http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code ec, size_t n) {
        if (ec) return self->on_read(ec, n);
        http::async_read(self->stream_, self->buffer_, *self->parser_,
                         beast::bind_front_handler(&Connection::on_read, self));
      });
      return;
    }
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Connection::on_read, shared_from_this()));
  }

  void release_body_budget() {
    if (reserved_ > 0) server_->inflight_body_bytes.fetch_sub(reserved_);
    reserved_ = 0;
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
      close();
      return;
    }
    if (ec) {
      // Garbage on the wire or a body over the limit: say so, then close
      // (the rest of the stream cannot be trusted to frame a next request).
      const bool too_large = ec == http::error::body_limit || ec == http::error::header_limit;
      busy_ = true;
      head_ = false;
      keep_alive_ = false;
      server_->request_started();
      Answer a = error_answer(too_large ? http::status::payload_too_large : http::status::bad_request,
                              too_large ? (ec == http::error::body_limit
                                               ? "request body larger than the server's limit of " +
                                                     std::to_string(server_->options.max_body_bytes) + " bytes"
                                               : std::string("request header larger than 64 KiB"))
                                        : "malformed HTTP request: " + ec.message());
      server_->metrics.failure(too_large ? "too_large" : "bad_request");
      write(std::move(a));
      return;
    }
    stream_.expires_never();
    auto req = std::make_shared<Request>(parser_->release());
    version_ = req->version();
    head_ = req->method() == http::verb::head;
    keep_alive_ = req->keep_alive();
    busy_ = true;
    cancelled_ = std::make_shared<std::atomic<bool>>(false);
    server_->request_started();
    watch_disconnect();
    server_->handle(shared_from_this(), std::move(req));
  }

  // While a request runs, a readable socket means the client closed it (or
  // pipelined the next request, which is left in the socket for later).
  void watch_disconnect() {
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this(), flag = cancelled_](beast::error_code ec) {
      if (!self->busy_ || flag != self->cancelled_) return;
      char byte;
      beast::error_code peek_ec;
      const size_t n = ec ? 0 : self->stream_.socket().receive(asio::buffer(&byte, 1), tcp::socket::message_peek, peek_ec);
      if (ec || peek_ec || n == 0) flag->store(true);
    });
  }

  void write(Answer answer) {
    if (!busy_) return;  // already abandoned
    auto res = std::make_shared<Response>(answer.status, version_);
    res->set(http::field::server, kServerName);
    res->set(http::field::content_type, answer.content_type);
    for (auto& [k, v] : answer.headers) res->set(k, v);
    if (server_->stopping) keep_alive_ = false;
    res->keep_alive(keep_alive_);
    res->body() = std::move(answer.body);
    res->prepare_payload();
    server_->metrics.http_response(static_cast<int>(answer.status));
    stream_.expires_after(std::chrono::seconds(30));  // a client that never reads its answer
    auto done = [self = shared_from_this(), res](beast::error_code ec, size_t) {
      self->busy_ = false;
      self->release_body_budget();
      self->server_->request_finished();
      if (ec || !self->keep_alive_) {
        self->close();
        return;
      }
      self->read();
    };
    if (head_) {
      // HEAD: the GET's headers (Content-Length included), no body — a body
      // here would be read by the client as the start of the next answer.
      auto sr = std::make_shared<http::response_serializer<http::string_body>>(*res);
      http::async_write_header(stream_, *sr, [sr, done](beast::error_code ec, size_t n) { done(ec, n); });
    } else {
      http::async_write(stream_, *res, std::move(done));
    }
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    release_body_budget();
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
    server_->metrics.connections.fetch_sub(1);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Server::Impl* server_;
  std::shared_ptr<std::atomic<bool>> cancelled_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool busy_ = false;
  bool head_ = false;  // the request being answered is a HEAD
  bool closed_ = false;
  int64_t reserved_ = 0;  // of Impl::inflight_body_bytes, for this request's body
};

}  // namespace

void Server::Impl::accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      if (stopping || metrics.connections.load() >= options.max_connections) {
        beast::error_code ignore;
        socket.close(ignore);
      } else {
        metrics.connections.fetch_add(1);
        metrics.connections_total.fetch_add(1);
        auto conn = std::make_shared<Connection>(std::move(socket), this);
        {
          std::lock_guard lock(conn_mu);
          // Forget connections that are gone, so the list stays as long as the open ones.
          for (auto it = connections.begin(); it != connections.end();)
            it = it->expired() ? connections.erase(it) : std::next(it);
          connections.push_back(conn);
        }
        conn->start();
      }
    }
    accept();
  });
}

Answer Server::Impl::model_metadata() const {
  nlohmann::json j;
  j["name"] = model_name;
  j["versions"] = {"1"};
  j["platform"] = "damoyolo";
  j["inputs"] = {
      {{"name", "IMAGE"}, {"datatype", "BYTES"}, {"shape", {-1}}},
      {{"name", input_name}, {"datatype", "FP32"}, {"shape", {-1, 3, in_h, in_w}}},
  };
  j["outputs"] = {
      {{"name", "boxes"}, {"datatype", "FP32"}, {"shape", {-1, -1, 4}}},
      {{"name", "scores"}, {"datatype", "FP32"}, {"shape", {-1, -1}}},
      {{"name", "classes"}, {"datatype", "INT32"}, {"shape", {-1, -1}}},
      {{"name", "counts"}, {"datatype", "INT32"}, {"shape", {-1}}},
  };
  j["parameters"] = {{"class_names", scheduler.detector().class_names()},
                     {"max_batch_size", options.max_batch}};
  return json_answer(http::status::ok, j);
}

void Server::Impl::handle(const std::shared_ptr<Connection>& conn, std::shared_ptr<Request> req) {
  auto target = serving::parse_target(std::string_view(req->target().data(), req->target().size()));
  if (!target.ok()) {
    metrics.failure("bad_request");
    conn->respond(error_answer(http::status::bad_request, target.status().message()));
    return;
  }
  const std::string& path = target.value().path;
  const auto method = req->method();
  auto method_not_allowed = [&](const char* allow) {
    Answer a = error_answer(http::status::method_not_allowed,
                            std::string(req->method_string()) + " is not allowed on " + path + " (allowed: " + allow + ")");
    a.headers.emplace_back("Allow", allow);
    conn->respond(std::move(a));
  };
  auto is_get = method == http::verb::get || method == http::verb::head;

  if (path == "/metrics") {
    if (!is_get) return method_not_allowed("GET");
    Answer a;
    a.content_type = "text/plain; version=0.0.4; charset=utf-8";
    a.body = metrics.render();
    conn->respond(std::move(a));
    return;
  }
  if (path == "/v2" || path == "/v2/") {
    if (!is_get) return method_not_allowed("GET");
    conn->respond(json_answer(http::status::ok, {{"name", kServerName},
                                                 {"version", kVersion},
                                                 {"extensions", {"binary_tensor_data", "parameters"}}}));
    return;
  }
  if (path == "/v2/health/live") {
    if (!is_get) return method_not_allowed("GET");
    conn->respond(json_answer(http::status::ok, {{"live", true}}));
    return;
  }
  if (path == "/v2/health/ready") {
    if (!is_get) return method_not_allowed("GET");
    const bool r = ready();
    conn->respond(json_answer(r ? http::status::ok : http::status::service_unavailable, {{"ready", r}}));
    return;
  }
  if (path.rfind("/v2/models/", 0) == 0) {
    // /v2/models/{name}[/versions/{v}][/ready|/infer]
    std::string rest = path.substr(11);
    std::vector<std::string> seg;
    for (size_t p = 0; p <= rest.size();) {
      size_t q = rest.find('/', p);
      if (q == std::string::npos) q = rest.size();
      seg.push_back(rest.substr(p, q - p));
      p = q + 1;
    }
    if (seg.empty() || seg[0] != model_name) {
      metrics.failure("not_found");
      conn->respond(error_answer(http::status::not_found, "no model \"" + (seg.empty() ? std::string() : seg[0]) +
                                                              "\" (this server serves \"" + model_name + "\")"));
      return;
    }
    size_t i = 1;
    if (seg.size() >= 3 && seg[1] == "versions") {
      if (seg[2] != "1") {
        metrics.failure("not_found");
        conn->respond(error_answer(http::status::not_found, "model \"" + model_name + "\" has no version \"" + seg[2] +
                                                                "\" (only \"1\")"));
        return;
      }
      i = 3;
    }
    const std::string action = i < seg.size() ? seg[i] : "";
    if (i + 1 < seg.size() && !(i + 2 == seg.size() && seg[i + 1].empty())) {
      conn->respond(error_answer(http::status::not_found, "no endpoint " + path));
      return;
    }
    if (action.empty()) {
      if (!is_get) return method_not_allowed("GET");
      conn->respond(model_metadata());
      return;
    }
    if (action == "ready") {
      if (!is_get) return method_not_allowed("GET");
      const bool r = ready();
      conn->respond(json_answer(r ? http::status::ok : http::status::service_unavailable,
                                {{"name", model_name}, {"ready", r}}));
      return;
    }
    if (action == "infer") {
      if (method != http::verb::post) return method_not_allowed("POST");
      auto call = std::make_shared<InferenceCall>();
      call->kind = InferenceCall::Kind::kV2;
      call->conn = conn;
      call->request = req;
      call->arrived = Clock::now();
      std::optional<size_t> json_length;
      if (auto it = req->find("Inference-Header-Content-Length"); it != req->end()) {
        size_t v = 0;
        auto sv = it->value();
        auto [p, ec] = std::from_chars(sv.data(), sv.data() + sv.size(), v);
        if (ec != std::errc() || p != sv.data() + sv.size())
          return fail_call(call, http::status::bad_request, "Inference-Header-Content-Length is not a byte count");
        json_length = v;
      }
      auto parsed = serving::parse_v2_request(req->body(), json_length);
      if (!parsed.ok()) {
        const auto& st = parsed.status();
        return fail_call(call,
                         st.code() == ErrorCode::kOutOfRange ? http::status::payload_too_large
                                                             : http::status::bad_request,
                         st.message());
      }
      call->v2 = std::move(parsed).value();
      if (call->v2.inputs.size() != 1)
        return fail_call(call, http::status::bad_request,
                         "expected one input (IMAGE as BYTES, or " + input_name + " as FP32/UINT8), got " +
                             std::to_string(call->v2.inputs.size()));
      auto opts = serving::parse_v2_parameters(call->v2.parameters);
      if (!opts.ok()) return fail_call(call, http::status::bad_request, opts.status().message());
      auto post = serving::apply_options(opts.value(), scheduler.detector().postprocess_options(), num_classes);
      if (!post.ok()) return fail_call(call, http::status::bad_request, post.status().message());
      call->post = std::move(post).value();
      call->timeout_ms = opts.value().timeout_ms.value_or(options.timeout_ms);
      serving::V2Input& in = call->v2.inputs[0];
      if (in.datatype == "BYTES") {
        call->encoded = in.elements;
        call->names.assign(call->encoded.size(), {});
      } else {
        const Shape expect{-1, 3, in_h, in_w};
        if (in.shape.size() != 4 || in.shape[1] != 3 || in.shape[2] != in_h || in.shape[3] != in_w)
          return fail_call(call, http::status::bad_request,
                           "input \"" + in.name + "\" has shape " + shape_to_string(in.shape) + ", expected [N,3," +
                               std::to_string(in_h) + "," + std::to_string(in_w) + "] (the network input)");
        call->tensor = in.tensor;
      }
      start_inference(std::move(call));
      return;
    }
    conn->respond(error_answer(http::status::not_found, "no endpoint " + path));
    return;
  }
  if (path == "/v1/detect") {
    if (method != http::verb::post) return method_not_allowed("POST");
    auto call = std::make_shared<InferenceCall>();
    call->conn = conn;
    call->request = req;
    call->arrived = Clock::now();
    auto opts = serving::parse_query_options(target.value().query);
    if (!opts.ok()) return fail_call(call, http::status::bad_request, opts.status().message());
    auto post = serving::apply_options(opts.value(), scheduler.detector().postprocess_options(), num_classes);
    if (!post.ok()) return fail_call(call, http::status::bad_request, post.status().message());
    call->post = std::move(post).value();
    call->timeout_ms = opts.value().timeout_ms.value_or(options.timeout_ms);
    const std::string ct((*req)[http::field::content_type]);
    const std::string type = serving::media_type(ct);
    const std::string_view body = req->body();
    if (type == "multipart/form-data") {
      auto parts = serving::parse_multipart(body, serving::media_parameter(ct, "boundary"));
      if (!parts.ok()) return fail_call(call, http::status::bad_request, parts.status().message());
      for (const auto& part : parts.value()) {
        const std::string pt = serving::media_type(part.content_type);
        if (!pt.empty() && pt != "image/jpeg" && pt != "image/png" && pt != "application/octet-stream")
          return fail_call(call, http::status::unsupported_media_type,
                           "part \"" + (part.filename.empty() ? part.name : part.filename) + "\" is " + pt +
                               " (image/jpeg or image/png)");
        call->encoded.push_back(part.data);
        call->names.push_back(part.filename.empty() ? part.name : part.filename);
      }
    } else if (type == "image/jpeg" || type == "image/png" ||
               (type == "application/octet-stream" && serving::looks_like_image(body))) {
      call->encoded.push_back(body);
      call->names.emplace_back();
    } else {
      return fail_call(call, http::status::unsupported_media_type,
                       "Content-Type \"" + ct + "\" is not image/jpeg, image/png or multipart/form-data");
    }
    start_inference(std::move(call));
    return;
  }
  if (path == "/" && is_get) {
    conn->respond(json_answer(http::status::ok, {{"name", kServerName},
                                                 {"version", kVersion},
                                                 {"model", model_name},
                                                 {"endpoints", {"POST /v1/detect", "GET /v2", "GET /v2/health/live",
                                                                "GET /v2/health/ready", "GET /v2/models/" + model_name,
                                                                "POST /v2/models/" + model_name + "/infer",
                                                                "GET /metrics"}}}));
    return;
  }
  metrics.failure("not_found");
  conn->respond(error_answer(http::status::not_found, "no endpoint " + path));
}

void Server::Impl::count_answer(const InferenceCall& call, http::status status) {
  const double us = std::chrono::duration<double, std::micro>(Clock::now() - call.arrived).count();
  metrics.request_duration_us.fetch_add(static_cast<int64_t>(us));
  metrics.request_latency_seconds.observe(us * 1e-6);
  if (status == http::status::ok) {
    metrics.request_success.fetch_add(1);
  } else {
    metrics.failure(failure_reason(status));
  }
}

void Server::Impl::fail_call(const std::shared_ptr<InferenceCall>& call, http::status status,
                             const std::string& message) {
  count_answer(*call, status);
  Answer a = error_answer(status, message);
  if (status == http::status::service_unavailable) a.headers.emplace_back("Retry-After", "1");
  call->conn->respond(std::move(a));
}

void Server::Impl::start_inference(std::shared_ptr<InferenceCall> call) {
  const int n = call->tensor.defined() ? static_cast<int>(call->tensor.dim(0)) : static_cast<int>(call->encoded.size());
  if (n == 0) return fail_call(call, http::status::bad_request, "the request holds no image");
  if (n > options.max_queue)
    return fail_call(call, http::status::payload_too_large,
                     std::to_string(n) + " images in one request; this server queues at most " +
                         std::to_string(options.max_queue));
  if (stopping) return fail_call(call, http::status::service_unavailable, "the server is shutting down");
  // Admission before any work: a full server answers at once.
  if (admitted.fetch_add(n) + n > options.max_queue) {
    admitted.fetch_sub(n);
    return fail_call(call, http::status::service_unavailable,
                     "server overloaded: " + std::to_string(options.max_queue) + " images already queued");
  }
  metrics.pending.fetch_add(n);
  call->images = n;
  if (call->timeout_ms > 0) call->deadline = call->arrived + std::chrono::milliseconds(call->timeout_ms);
  asio::post(*workers, [this, call = std::move(call)]() mutable { decode_and_submit(std::move(call)); });
}

void Server::Impl::decode_and_submit(std::shared_ptr<InferenceCall> call) {
  const int n = call->images;
  auto release = [&] {
    admitted.fetch_sub(n);
    metrics.pending.fetch_sub(n);
  };
  std::vector<serving::Job> jobs(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    serving::Job& job = jobs[static_cast<size_t>(i)];
    if (call->tensor.defined()) {
      // One image of the batch tensor, sharing its memory.
      auto owner = std::make_shared<Tensor>(call->tensor);
      const size_t es = dtype_size(call->tensor.dtype());
      const size_t plane = static_cast<size_t>(3) * in_h * in_w;
      job.tensor = Tensor::wrap(call->tensor.dtype(), {3, in_h, in_w},
                                static_cast<uint8_t*>(owner->raw()) + static_cast<size_t>(i) * plane * es, owner);
    } else {
      const auto t0 = Clock::now();
      const std::string_view bytes = call->encoded[static_cast<size_t>(i)];
      auto image = decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), decode);
      job.decode_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (!image.ok()) {
        release();
        const std::string& name = call->names[static_cast<size_t>(i)];
        const std::string which = n == 1 && name.empty()
                                      ? std::string("the image")
                                      : "image " + std::to_string(i) + (name.empty() ? "" : " (\"" + name + "\")");
        return fail_call(call, status_for(image.status()), which + ": " + image.status().message());
      }
      job.image = std::move(image).value();
    }
    job.post = call->post;
    job.deadline = call->deadline;
    job.cancelled = call->conn->cancelled();
    job.done = [this, call, i](serving::JobResult&& r) {
      bool last = false;
      {
        std::lock_guard lock(call->mu);
        call->results[static_cast<size_t>(i)] = std::move(r);
        last = --call->remaining == 0;
      }
      if (last) finish_inference(call);
    };
  }
  if (Clock::now() >= call->deadline) {
    release();
    return fail_call(call, http::status::gateway_timeout,
                     "deadline of " + std::to_string(call->timeout_ms) + " ms exceeded before queueing");
  }
  call->results.resize(static_cast<size_t>(n));
  call->remaining = n;
  switch (scheduler.submit(jobs)) {
    case serving::Admission::kAccepted: return;
    case serving::Admission::kQueueFull:
      release();
      return fail_call(call, http::status::service_unavailable, "server overloaded: the queue is full");
    case serving::Admission::kShuttingDown:
      release();
      return fail_call(call, http::status::service_unavailable, "the server is shutting down");
  }
}

nlohmann::json Server::Impl::image_json(const InferenceCall& call, size_t i) const {
  const serving::JobResult& r = call.results[i];
  const Detector& det = scheduler.detector();
  auto dets = nlohmann::json::array();
  for (const Detection& d : r.detections)
    dets.push_back({{"box", {round_to(d.x1, 100), round_to(d.y1, 100), round_to(d.x2, 100), round_to(d.y2, 100)}},
                    {"score", round_to(d.score, 1e4)},
                    {"class_id", d.class_id},
                    {"class_name", det.class_name(d.class_id)}});
  nlohmann::json j = {{"width", r.width}, {"height", r.height}, {"detections", std::move(dets)}};
  if (!call.names[i].empty()) j["file"] = call.names[i];
  j["batch"] = r.batch;
  j["timings_ms"] = {{"decode", round_to(r.timings.decode_ms, 100)},
                     {"queue", round_to(r.queue_ms, 100)},
                     {"preprocess", round_to(r.timings.preprocess_ms, 100)},
                     {"inference", round_to(r.timings.inference_ms, 100)},
                     {"postprocess", round_to(r.timings.postprocess_ms, 100)}};
  return j;
}

void Server::Impl::finish_inference(const std::shared_ptr<InferenceCall>& call) {
  const int n = call->images;
  admitted.fetch_sub(n);
  metrics.pending.fetch_sub(n);
  // Outcomes: a client that left gets nothing; a deadline is a 504; a
  // failure names the image.
  bool cancelled = false;
  for (int i = 0; i < n; ++i) {
    const auto& r = call->results[static_cast<size_t>(i)];
    if (r.outcome == serving::JobOutcome::kCancelled) cancelled = true;
  }
  if (cancelled) {
    metrics.failure("cancelled");
    call->conn->abandon();
    return;
  }
  for (int i = 0; i < n; ++i) {
    const auto& r = call->results[static_cast<size_t>(i)];
    if (r.outcome == serving::JobOutcome::kDeadline)
      return fail_call(call, http::status::gateway_timeout,
                       "deadline of " + std::to_string(call->timeout_ms) + " ms exceeded while queued");
    if (r.outcome != serving::JobOutcome::kOk)
      return fail_call(call, status_for(r.status),
                       (n == 1 ? std::string("the image") : "image " + std::to_string(i)) + ": " + r.status.message());
  }
  const auto t0 = Clock::now();
  Answer a;
  if (call->kind == InferenceCall::Kind::kDetect) {
    nlohmann::json images = nlohmann::json::array();
    for (int i = 0; i < n; ++i) images.push_back(image_json(*call, static_cast<size_t>(i)));
    a.body = json_dump({{"model", model_name}, {"images", std::move(images)}});
  } else {
    std::vector<std::vector<Detection>> dets;
    dets.reserve(static_cast<size_t>(n));
    for (auto& r : call->results) dets.push_back(std::move(r.detections));
    auto v2 = serving::build_v2_response(model_name, call->v2.id, dets, call->v2.outputs,
                                         call->v2.binary_output_default);
    a.body = std::move(v2.body);
    if (v2.json_length) {
      a.content_type = "application/octet-stream";
      a.headers.emplace_back("Inference-Header-Content-Length", std::to_string(*v2.json_length));
    }
  }
  metrics.compute_output_duration_us.fetch_add(
      static_cast<int64_t>(std::chrono::duration<double, std::micro>(Clock::now() - t0).count()));
  count_answer(*call, http::status::ok);
  call->conn->respond(std::move(a));
}

Server::Server() = default;
Server::~Server() {
  if (impl_) {
    stop();
    wait();
  }
}
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&& other) noexcept {
  if (this != &other) {
    if (impl_) {
      stop();
      wait();
    }
    impl_ = std::move(other.impl_);
  }
  return *this;
}

Result<Server> Server::start(const ServerOptions& options) {
  if (options.port < 0 || options.port > 65535) return Status(ErrorCode::kInvalidArgument, "port must be 0..65535");
  if (options.max_batch < 1 || options.max_batch > 256)
    return Status(ErrorCode::kInvalidArgument, "max batch must be within 1..256");
  // max_queue below max_batch is allowed: batches then hold max_queue images at most.
  if (options.max_queue < 1) return Status(ErrorCode::kInvalidArgument, "max queue must be at least 1");
  if (options.io_threads < 1 || options.worker_threads < 1)
    return Status(ErrorCode::kInvalidArgument, "io and worker threads must be at least 1");
  if (options.max_body_bytes < 1 || options.max_pixels < 1 || options.max_inflight_body_bytes < options.max_body_bytes)
    return Status(ErrorCode::kInvalidArgument,
                  "body and pixel limits must be positive, and the in-flight body budget at least one body");
  if (options.timeout_ms < 0 || options.max_queue_delay_us < 0)
    return Status(ErrorCode::kInvalidArgument, "timeout and queue delay must not be negative");
  std::string name = options.model_name;
  if (name.empty()) name = std::filesystem::path(options.model_path).stem().string();
  if (name.empty() || name.find('/') != std::string::npos)
    return Status(ErrorCode::kInvalidArgument, "model name \"" + name + "\" must be non-empty and hold no '/'");

  Server server;
  server.impl_ = std::make_unique<Impl>(options, name);
  Impl& s = *server.impl_;
  Status st = s.scheduler.start();
  if (!st.ok()) {
    server.impl_.reset();
    return st;
  }
  s.decode = options.detector.decode;
  s.decode.max_pixels = options.max_pixels;
  // An upload is untrusted: bound the decoder's memory by the pixel limit
  // (about 6 bytes a pixel covers the worst layouts), not the 1 GiB default.
  s.decode.max_decode_bytes = std::min<int64_t>(s.decode.max_decode_bytes, options.max_pixels * 8 + (int64_t{64} << 20));
  s.num_classes = s.scheduler.detector().num_classes();
  s.in_w = s.scheduler.detector().input_width();
  s.in_h = s.scheduler.detector().input_height();
  const auto& inputs = s.scheduler.session().inputs();
  s.input_name = inputs.empty() ? "images" : inputs[0].name;

  beast::error_code ec;
  auto address = asio::ip::make_address(options.host, ec);
  if (ec) {
    server.impl_.reset();
    return Status(ErrorCode::kInvalidArgument, "host \"" + options.host + "\" is not an IP address: " + ec.message());
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(options.port));
  const std::string where = options.host + ":" + std::to_string(options.port);
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    server.impl_.reset();
    return Status(ErrorCode::kIOError, "cannot listen on " + where + ": " + ec.message());
  }
  s.port = s.acceptor.local_endpoint().port();
  s.workers = std::make_unique<asio::thread_pool>(static_cast<size_t>(options.worker_threads));
  s.work.emplace(s.ioc.get_executor());
  s.accept();
  for (int i = 0; i < options.io_threads; ++i) s.io_threads.emplace_back([&s] { s.ioc.run(); });
  return server;
}

int Server::port() const { return impl_ ? impl_->port : 0; }
const std::string& Server::model_name() const {
  static const std::string empty;
  return impl_ ? impl_->model_name : empty;
}

ServerStats Server::stats() const {
  ServerStats st;
  if (!impl_) return st;
  const auto& m = impl_->metrics;
  st.requests_ok = m.request_success.load();
  st.requests_failed = m.failures();
  st.inferences = m.inference_count.load();
  st.executions = m.exec_count.load();
  st.rejected_overload = m.failures("overload");
  st.deadline_exceeded = m.failures("deadline");
  st.cancelled = m.failures("cancelled");
  st.pending = m.pending.load();
  st.connections = m.connections.load();
  return st;
}

void Server::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  Impl* s = impl_.get();
  // No new connections; idle ones close, busy ones after their answer.
  asio::post(s->ioc, [s] {
    beast::error_code ec;
    s->acceptor.close(ec);
    std::lock_guard lock(s->conn_mu);
    for (auto& weak : s->connections)
      if (auto c = weak.lock()) c->shut_down_if_idle();
  });
  std::lock_guard lock(s->state_mu);
  s->state_cv.notify_all();
}

void Server::wait() {
  if (!impl_) return;
  Impl* s = impl_.get();
  std::unique_lock lock(s->state_mu);
  if (s->finished) return;
  s->state_cv.wait(lock, [s] { return s->stopping.load() && s->active == 0; });
  lock.unlock();
  // Every accepted request has been answered: wind down the model's threads,
  // close what is left (connections opened in the last instant), stop I/O.
  s->scheduler.stop();
  s->scheduler.join();
  asio::post(s->ioc, [s] {
    std::lock_guard lock(s->conn_mu);
    for (auto& weak : s->connections)
      if (auto c = weak.lock()) c->close_now();
  });
  s->work.reset();
  // The I/O threads end when the last connection's handlers have run.
  for (auto& t : s->io_threads) t.join();
  s->io_threads.clear();
  if (s->workers) s->workers->join();
  lock.lock();
  s->finished = true;
}

}  // namespace damoyolo
