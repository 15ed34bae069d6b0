// A small blocking HTTP/1.1 client for tests and the load benchmark, on
// Boost.Beast: one keep-alive connection per HttpClient.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace damoyolo::testing {

struct HttpReply {
  int status = 0;  // 0: no answer (error says why)
  std::string body;
  std::map<std::string, std::string> headers;  // names lower-case
  std::string error;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class HttpClient {
 public:
  explicit HttpClient(int port, std::string host = "127.0.0.1") : host_(std::move(host)), port_(port) {}

  HttpReply request(const std::string& method, const std::string& target, const std::string& body = {},
                    const std::string& content_type = {},
                    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    namespace http = boost::beast::http;
    HttpReply reply;
    boost::beast::error_code ec;
    if (!stream_.socket().is_open()) {
      boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address(host_), static_cast<unsigned short>(port_));
      stream_.expires_after(std::chrono::seconds(120));
      stream_.connect(ep, ec);
      if (ec) {
        reply.error = "connect: " + ec.message();
        return reply;
      }
    }
    http::request<http::string_body> req(http::string_to_verb(method), target, 11);
    req.set(http::field::host, host_);
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    for (const auto& [k, v] : headers) req.set(k, v);
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    stream_.expires_after(std::chrono::seconds(120));
    http::write(stream_, req, ec);
    if (ec) {
      reply.error = "write: " + ec.message();
      close();
      return reply;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(1u << 30);
    if (method == "HEAD") parser.skip(true);
    http::read(stream_, buffer_, parser, ec);
    if (ec) {
      reply.error = "read: " + ec.message();
      close();
      return reply;
    }
    auto res = parser.release();
    reply.status = static_cast<int>(res.result_int());
    reply.body = std::move(res.body());
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply.headers[name] = std::string(f.value());
    }
    if (!res.keep_alive()) close();
    return reply;
  }

  HttpReply get(const std::string& target) { return request("GET", target); }
  HttpReply post(const std::string& target, const std::string& body, const std::string& content_type,
                 const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return request("POST", target, body, content_type, headers);
  }

  // Raw bytes on a fresh connection, then whatever comes back until the
  // server closes (or `timeout_s`).
  static std::string raw_exchange(int port, const std::string& bytes, int timeout_s = 30) {
    boost::asio::io_context ioc;
    boost::beast::tcp_stream s(ioc);
    boost::beast::error_code ec;
    s.expires_after(std::chrono::seconds(timeout_s));
    s.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                             static_cast<unsigned short>(port)),
              ec);
    if (ec) return "connect: " + ec.message();
    boost::asio::write(s.socket(), boost::asio::buffer(bytes), ec);
    std::string out;
    char buf[4096];
    for (;;) {
      size_t n = s.socket().read_some(boost::asio::buffer(buf), ec);
      out.append(buf, n);
      if (ec) break;
    }
    return out;
  }

  void close() {
    boost::beast::error_code ec;
    stream_.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
    buffer_.clear();
  }
  bool connected() const { return stream_.socket().is_open(); }
  boost::beast::tcp_stream& stream() { return stream_; }

 private:
  std::string host_;
  int port_;
  boost::asio::io_context ioc_;
  boost::beast::tcp_stream stream_{ioc_};
  boost::beast::flat_buffer buffer_;
};

}  // namespace damoyolo::testing
