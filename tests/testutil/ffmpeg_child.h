// Loopback video streams served by an `ffmpeg` child process, for the tests
// of network sources (tests/pipeline, tests/cli). Never an outside address.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace damoyolo::testing {

// A child's log, for failure messages ("" when absent).
inline std::string read_file_string(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// True when an `ffmpeg` binary runs from PATH.
inline bool have_ffmpeg() { return std::system("ffmpeg -version >/dev/null 2>&1") == 0; }

// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then
// closed). SOCK_DGRAM or SOCK_STREAM.
inline int free_loopback_port(int type = SOCK_DGRAM) {
  const int fd = ::socket(AF_INET, type, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// `ffmpeg ARGS...` as a child process (stdin /dev/null, output appended to
// `log`), killed with SIGKILL and reaped when destroyed or kill()ed.
class FfmpegChild {
 public:
  FfmpegChild(const std::vector<std::string>& args, const std::string& log) {
    std::vector<std::string> all = {"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawnp(&pid_, "ffmpeg", &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~FfmpegChild() { kill(); }
  FfmpegChild(const FfmpegChild&) = delete;
  FfmpegChild& operator=(const FfmpegChild&) = delete;

  bool started() const { return pid_ > 0; }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // Waits up to `limit` for the child to exit by itself; true if it did.
  bool wait_exit(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (pid_ > 0) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }

 private:
  pid_t pid_ = -1;
};

// Waits up to `timeout_ms` for a UDP packet to 127.0.0.1:port (binding the
// port meanwhile, then closing it): true once a sender is running.
inline bool wait_for_udp_sender(int port, int timeout_ms) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool got = false;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[2048];
    got = ::recv(fd, buf, sizeof buf, 0) > 0;
  }
  ::close(fd);
  return got;
}

// Arguments for ffmpeg to send `seconds` of a 25 fps test pattern of
// width x height as MPEG-TS (MPEG-2 video, a keyframe every 5 frames) to
// udp://127.0.0.1:port, in real time.
inline std::vector<std::string> udp_test_stream_args(int port, double seconds, int width = 160, int height = 120) {
  return {"-re", "-f", "lavfi", "-i",
          "testsrc=size=" + std::to_string(width) + "x" + std::to_string(height) + ":rate=25", "-t",
          std::to_string(seconds), "-c:v", "mpeg2video", "-g", "5", "-f", "mpegts",
          "udp://127.0.0.1:" + std::to_string(port) + "?pkt_size=1316"};
}

}  // namespace damoyolo::testing
