// The HTTP service under load, on loopback, against the offline throughput
// of the same model at the same batch size, in one run (docs/serving.md,
// "Measured"):
//
//   1. offline: the network alone at batch B (Session::run_into, what
//      `damoyolo bench --batch B` measures), and the whole detector offline
//      at batch B (decoded images → preprocess → network → NMS);
//   2. the server (damoyolo::Server, max batch B) driven by C keep-alive
//      clients posting the same JPEG to /v1/detect as fast as they are
//      answered, for each C given: images/s, latency p50/p99/max, errors,
//      mean batch size (from the server's counters);
//   3. overload: requests offered at 4x the rate sustained in 2 (open loop,
//      4·Q clients) to a server queueing at most Q images — every request is
//      answered, 200 when admitted, 503 at once otherwise; the 503s' latency,
//      resident memory before and after, and whether the server still
//      answers afterwards.
//
//   bench_serve MODEL IMAGE [--batch 4] [--delay-us 2000] [--concurrency 8,32]
//               [--seconds 10] [--threads 0] [--queue 16] [--no-overload]
//
// Clients and server share the machine's cores, as wrk on the same host
// would: the figures are the service's throughput *with* its load generator.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../tests/testutil/http_client.h"
#include "damoyolo/detector.h"
#include "damoyolo/server.h"

namespace {

using namespace damoyolo;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

long status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::strlen(key)));
  return 0;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct LoadResult {
  double seconds = 0;
  int64_t ok = 0, busy = 0, other = 0;  // 200, 503, anything else (errors)
  std::vector<double> ok_ms, busy_ms;
  std::map<int, int64_t> statuses;
};

// C clients, each on one keep-alive connection, for `seconds` after a warm-up.
// `rate` > 0: open loop — each client sends on its own schedule, one request
// every clients/rate seconds (whatever the answers), so the arrival rate is
// `rate` as long as answers come faster than that interval; 0: closed loop,
// each client sends again as soon as it is answered.
LoadResult drive(int port, const std::string& body, int clients, double seconds, double rate = 0,
                 double warmup = 1.0) {
  std::atomic<bool> measuring{false}, stop{false};
  std::vector<LoadResult> per(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      testing::HttpClient client(port);
      LoadResult& r = per[static_cast<size_t>(c)];
      const auto interval = std::chrono::duration<double>(rate > 0 ? clients / rate : 0);
      // Spread the clients' schedules over one interval.
      auto next = Clock::now() + std::chrono::duration_cast<Clock::duration>(interval * c / std::max(1, clients));
      while (!stop) {
        if (rate > 0) {
          std::this_thread::sleep_until(next);
          next += std::chrono::duration_cast<Clock::duration>(interval);
        }
        const auto t0 = Clock::now();
        testing::HttpReply reply = client.post("/v1/detect", body, "image/jpeg");
        const double ms = seconds_since(t0) * 1e3;
        if (!measuring) continue;
        r.statuses[reply.status]++;
        if (reply.status == 200) {
          r.ok++;
          r.ok_ms.push_back(ms);
        } else if (reply.status == 503) {
          r.busy++;
          r.busy_ms.push_back(ms);
        } else {
          r.other++;
        }
      }
    });
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  measuring = true;
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  measuring = false;
  LoadResult total;
  total.seconds = seconds_since(t0);
  stop = true;
  for (auto& t : threads) t.join();
  for (auto& r : per) {
    total.ok += r.ok;
    total.busy += r.busy;
    total.other += r.other;
    total.ok_ms.insert(total.ok_ms.end(), r.ok_ms.begin(), r.ok_ms.end());
    total.busy_ms.insert(total.busy_ms.end(), r.busy_ms.begin(), r.busy_ms.end());
    for (auto [s, n] : r.statuses) total.statuses[s] += n;
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: bench_serve MODEL IMAGE [--batch 4] [--delay-us 2000] [--concurrency 8,32] [--seconds 10] "
                 "[--threads 0] [--queue 16] [--no-overload]\n");
    return 2;
  }
  const std::string model = argv[1], image_path = argv[2];
  int batch = 4, threads = 0, queue = 16;
  int64_t delay_us = 2000;
  double seconds = 10;
  bool overload = true;
  std::vector<int> concurrency = {8, 32};
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--batch") batch = std::stoi(next());
    else if (a == "--delay-us") delay_us = std::stoll(next());
    else if (a == "--seconds") seconds = std::stod(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--queue") queue = std::stoi(next());
    else if (a == "--no-overload") overload = false;
    else if (a == "--concurrency") {
      concurrency.clear();
      std::stringstream ss(next());
      std::string tok;
      while (std::getline(ss, tok, ',')) concurrency.push_back(std::stoi(tok));
    } else {
      std::fprintf(stderr, "bench_serve: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  const std::string body = read_bytes(image_path);
  auto decoded = decode_image(reinterpret_cast<const uint8_t*>(body.data()), body.size());
  if (body.empty() || !decoded.ok()) {
    std::fprintf(stderr, "bench_serve: cannot read image %s\n", image_path.c_str());
    return 1;
  }
  std::printf("model %s, image %s (%dx%d, %zu bytes), batch %d, queue delay %lld us, threads %d\n", model.c_str(),
              image_path.c_str(), decoded->width(), decoded->height(), body.size(), batch,
              static_cast<long long>(delay_us), threads);

  // 1. Offline, in a thread of its own (its OpenMP team ends with it, so it
  // does not compete with the server's afterwards).
  double network_ips = 0, detector_ips = 0;
  std::thread offline([&] {
    DetectorOptions o;
    o.session.batch = batch;
    o.session.threads = threads;
    auto det = Detector::create(model, o);
    if (!det.ok()) {
      std::fprintf(stderr, "bench_serve: %s\n", det.status().message().c_str());
      std::exit(1);
    }
    const Session& s = det->session();
    std::vector<Tensor> in{Tensor(DType::kFloat32, {batch, 3, det->input_height(), det->input_width()})};
    auto outs = s.make_outputs(batch);
    for (int i = 0; i < 3; ++i) (void)s.run_into(in, outs);
    double best = 1e9;
    for (int rep = 0; rep < 3; ++rep) {  // min over 3 rounds of ≥ 1 s
      int runs = 0;
      const auto t0 = Clock::now();
      while (seconds_since(t0) < 1.0 || runs < 3) {
        (void)s.run_into(in, outs);
        ++runs;
      }
      best = std::min(best, seconds_since(t0) / runs);
    }
    network_ips = batch / best;
    std::vector<ImageView> views(static_cast<size_t>(batch), decoded->view());
    (void)det->detect(views);
    best = 1e9;
    for (int rep = 0; rep < 3; ++rep) {
      int runs = 0;
      const auto t0 = Clock::now();
      while (seconds_since(t0) < 1.0 || runs < 3) {
        (void)det->detect(views);
        ++runs;
      }
      best = std::min(best, seconds_since(t0) / runs);
    }
    detector_ips = batch / best;
  });
  offline.join();
  std::printf("offline network alone, batch %d:           %8.2f images/s\n", batch, network_ips);
  std::printf("offline detector (pre+network+NMS), batch %d: %6.2f images/s\n\n", batch, detector_ips);

  // 2. The server under C clients.
  ServerOptions so;
  so.model_path = model;
  so.port = 0;
  so.max_batch = batch;
  so.max_queue_delay_us = delay_us;
  so.max_queue = std::max(256, batch);
  so.detector.session.threads = threads;
  auto server = Server::start(so);
  if (!server.ok()) {
    std::fprintf(stderr, "bench_serve: %s\n", server.status().message().c_str());
    return 1;
  }
  std::printf("%6s %10s %10s %9s %9s %9s %8s %9s %7s\n", "conc", "images/s", "vs net", "p50 ms", "p99 ms", "max ms",
              "errors", "mean bat", "n");
  double capacity = 0;  // the best images/s sustained, for the overload rate
  for (int c : concurrency) {
    const ServerStats before = server->stats();
    LoadResult r = drive(server->port(), body, c, seconds);
    const ServerStats after = server->stats();
    const double ips = static_cast<double>(r.ok) / r.seconds;
    capacity = std::max(capacity, ips);
    const double mean_batch = after.executions > before.executions
                                  ? static_cast<double>(after.inferences - before.inferences) /
                                        static_cast<double>(after.executions - before.executions)
                                  : 0;
    std::printf("%6d %10.2f %9.3fx %9.2f %9.2f %9.2f %8lld %9.2f %7lld\n", c, ips, ips / network_ips,
                percentile(r.ok_ms, 0.5), percentile(r.ok_ms, 0.99), percentile(r.ok_ms, 1.0),
                static_cast<long long>(r.other + r.busy), mean_batch, static_cast<long long>(r.ok));
  }
  server->stop();
  server->wait();

  if (overload) {
    // 3. Requests arriving at 4x the rate the server sustained above (open
    // loop), with a queue of `queue` images: what cannot be admitted must be
    // refused at once, what is admitted must complete.
    so.max_queue = queue;
    auto small = Server::start(so);
    if (!small.ok()) {
      std::fprintf(stderr, "bench_serve: %s\n", small.status().message().c_str());
      return 1;
    }
    const long rss0 = status_kb("VmRSS:");
    const double rate = 4 * capacity;
    LoadResult r = drive(small->port(), body, 4 * queue, seconds, rate);
    const long rss1 = status_kb("VmRSS:");
    testing::HttpClient probe(small->port());
    const int ready = probe.get("/v2/health/ready").status;
    const ServerStats st = small->stats();
    std::printf("\noverload: %.1f requests/s offered (4 x %.1f sustained), queue %d images, %d clients, %.0f s\n",
                rate, capacity, queue, 4 * queue, r.seconds);
    std::printf("  200: %lld (%.2f images/s, p50 %.2f ms, p99 %.2f ms)\n", static_cast<long long>(r.ok),
                static_cast<double>(r.ok) / r.seconds, percentile(r.ok_ms, 0.5), percentile(r.ok_ms, 0.99));
    std::printf("  503: %lld (p50 %.3f ms, p99 %.3f ms, max %.3f ms)\n", static_cast<long long>(r.busy),
                percentile(r.busy_ms, 0.5), percentile(r.busy_ms, 0.99), percentile(r.busy_ms, 1.0));
    std::printf("  other statuses or transport errors: %lld\n", static_cast<long long>(r.other));
    std::printf("  pending after: %lld, ready after: %d, RSS %.1f -> %.1f MiB\n", static_cast<long long>(st.pending),
                ready, rss0 / 1024.0, rss1 / 1024.0);
    small->stop();
    small->wait();
  }
  return 0;
}
