// gpu-emu-bench: a single-threaded epoll client that keeps N streaming chat completions open
// against one gpu-emu instance (each connection sends its next request as soon as the previous
// stream ends) and reports emitted tokens/s, concurrency, TTFT and the emulator's CPU use.
//
// Before the measurement window every response is checked: HTTP 200, SSE framing ending in
// `data: [DONE]`, and exactly max_tokens content chunks (the emulator's default --output-dist is
// `max`). A mismatch is counted as an error and makes the run fail.
//
//   gpu-emu-bench --target 127.0.0.1:8000 --model bench --streams 2000 --duration 20
//                 [--warmup 5] [--max-tokens 200] [--prompt-bytes 400] [--emu-pid PID]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

double mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// utime + stime of a process, seconds.
double proc_cpu(int pid) {
  if (pid <= 0) return 0;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t p = s.rfind(')');
  if (p == std::string::npos) return 0;
  std::istringstream is(s.substr(p + 2));
  std::string tok;
  unsigned long long ut = 0, st = 0;
  for (int i = 3; i <= 15 && is >> tok; ++i) {
    if (i == 14) ut = std::strtoull(tok.c_str(), nullptr, 10);
    if (i == 15) st = std::strtoull(tok.c_str(), nullptr, 10);
  }
  return double(ut + st) / double(sysconf(_SC_CLK_TCK));
}

struct Conn {
  int fd = -1;
  std::string req;
  size_t sent = 0;
  std::string tail;  // last bytes of the previous read, for patterns split across reads
  bool headers_ok = false;
  bool got_status = false;
  uint32_t tokens = 0;
  double t_start = 0, t_first = 0;
  bool in_flight = false;
};

const char TOKEN_PAT[] = "{\"content\":\"";
const char END_PAT[] = "[DONE]\n\n\r\n0\r\n\r\n";

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1", model = "bench";
  int port = 8000, streams = 2000, max_tokens = 200, prompt_bytes = 400, emu_pid = 0;
  double duration = 20, warmup = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--target") {
      size_t c = v.rfind(':');
      host = v.substr(0, c);
      port = std::atoi(v.c_str() + c + 1);
    } else if (a == "--model") model = v;
    else if (a == "--streams") streams = std::atoi(v.c_str());
    else if (a == "--duration") duration = std::atof(v.c_str());
    else if (a == "--warmup") warmup = std::atof(v.c_str());
    else if (a == "--max-tokens") max_tokens = std::atoi(v.c_str());
    else if (a == "--prompt-bytes") prompt_bytes = std::atoi(v.c_str());
    else if (a == "--emu-pid") emu_pid = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  std::string prompt;
  for (int i = 0; prompt.size() < size_t(prompt_bytes); ++i) prompt += "benchmark prompt words ";
  prompt.resize(prompt_bytes);
  std::string body = "{\"model\":\"" + model +
                     "\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                     "\"max_tokens\":" + std::to_string(max_tokens) +
                     ",\"messages\":[{\"role\":\"user\",\"content\":\"" + prompt + "\"}]}";
  std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: " + host +
                    "\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;

  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &sa.sin_addr);
  int ep = epoll_create1(0);
  std::vector<Conn> conns(static_cast<size_t>(streams));
  auto start_req = [&](Conn& c, double now) {
    c.req = req;
    c.sent = 0;
    c.tail.clear();
    c.headers_ok = c.got_status = false;
    c.tokens = 0;
    c.t_start = now;
    c.t_first = 0;
    c.in_flight = true;
    ssize_t n = send(c.fd, c.req.data(), c.req.size(), MSG_NOSIGNAL);
    if (n > 0) c.sent = size_t(n);
  };
  double t0 = mono();
  for (int i = 0; i < streams; ++i) {
    Conn& c = conns[size_t(i)];
    // The server may still be starting: retry refused connects for a few seconds.
    for (int attempt = 0;; ++attempt) {
      c.fd = socket(AF_INET, SOCK_STREAM, 0);
      if (c.fd >= 0 && connect(c.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) break;
      if (c.fd < 0 || errno != ECONNREFUSED || attempt > 100) {
        std::perror("connect");
        return 1;
      }
      close(c.fd);
      usleep(50000);
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    start_req(c, mono());
  }
  const double t_measure = mono() + warmup, t_end = t_measure + duration;
  uint64_t tokens_window = 0, done_window = 0, errors = 0, done_total = 0;
  std::vector<double> ttfts;
  double cpu0 = -1, max_active = 0;
  std::vector<epoll_event> evs(4096);
  std::vector<char> buf(1 << 16);
  bool measuring = false;
  for (;;) {
    double now = mono();
    if (!measuring && now >= t_measure) {
      measuring = true;
      cpu0 = proc_cpu(emu_pid);
    }
    if (now >= t_end) break;
    int n = epoll_wait(ep, evs.data(), int(evs.size()), 50);
    now = mono();
    for (int i = 0; i < n; ++i) {
      Conn& c = conns[evs[i].data.u32];
      for (;;) {
        ssize_t r = read(c.fd, buf.data(), buf.size());
        if (r <= 0) {
          if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            std::fprintf(stderr, "connection closed by server\n");
            ++errors;
            epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
            close(c.fd);
            c.fd = -1;
          }
          break;
        }
        std::string s = c.tail;
        s.append(buf.data(), size_t(r));
        if (!c.got_status && s.size() >= 12) {
          c.got_status = true;
          c.headers_ok = s.compare(0, 12, "HTTP/1.1 200") == 0;
          if (!c.headers_ok) ++errors;
        }
        size_t from = 0;
        uint32_t found = 0;
        // Tokens: patterns that end inside the new bytes (the tail is shorter than a pattern
        // so nothing is counted twice).
        while ((from = s.find(TOKEN_PAT, from)) != std::string::npos) {
          ++found;
          from += sizeof(TOKEN_PAT) - 1;
        }
        if (found) {
          if (c.tokens == 0) {
            c.t_first = now;
            if (measuring) ttfts.push_back(now - c.t_start);
          }
          c.tokens += found;
          if (measuring) tokens_window += found;
        }
        bool end = s.find(END_PAT) != std::string::npos;
        size_t keep = std::min<size_t>(s.size(), sizeof(END_PAT) - 2);
        c.tail = s.substr(s.size() - keep);
        // Drop the part of the tail that already matched a token pattern fully.
        size_t last_tok = c.tail.rfind(TOKEN_PAT);
        if (last_tok != std::string::npos) c.tail.erase(0, last_tok + 1);
        if (end) {
          ++done_total;
          if (measuring) ++done_window;
          if (c.tokens != uint32_t(max_tokens)) {
            ++errors;
            if (errors < 5)
              std::fprintf(stderr, "response with %u tokens, expected %d\n", c.tokens, max_tokens);
          }
          start_req(c, now);
        }
        if (size_t(r) < buf.size()) break;
      }
    }
    if (measuring) {
      double active = 0;
      for (Conn& c : conns) active += (c.fd >= 0 && c.in_flight) ? 1 : 0;
      max_active = std::max(max_active, active);
    }
  }
  double cpu1 = proc_cpu(emu_pid);
  // The emulator's own view of how late it delivered tokens (gpuemu_event_lag_seconds_*).
  double lag_sum = -1, lag_n = 0, lag_max = -1;
  {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
      const char get[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      if (send(fd, get, sizeof get - 1, 0) > 0) {
        std::string m;
        for (ssize_t r; (r = read(fd, buf.data(), buf.size())) > 0;) m.append(buf.data(), size_t(r));
        auto val = [&](const char* name) {
          size_t p = m.find(std::string("\n") + name + "{");
          if (p == std::string::npos) return -1.0;
          p = m.find("} ", p);
          return std::atof(m.c_str() + p + 2);
        };
        lag_sum = val("gpuemu_event_lag_seconds_sum");
        lag_n = val("gpuemu_event_lag_seconds_count");
        lag_max = val("gpuemu_event_lag_seconds_max");
      }
    }
    close(fd);
  }
  std::sort(ttfts.begin(), ttfts.end());
  auto pct = [&](double q) { return ttfts.empty() ? 0.0 : ttfts[size_t(q * (ttfts.size() - 1))]; };
  size_t open = 0;
  for (Conn& c : conns) open += c.fd >= 0;
  std::printf("streams=%d open=%zu duration=%.1fs tokens=%llu tokens_per_s=%.0f "
              "completed=%llu req_per_s=%.1f ttft_p50_ms=%.1f ttft_p99_ms=%.1f errors=%llu",
              streams, open, duration, (unsigned long long)tokens_window, tokens_window / duration,
              (unsigned long long)done_window, done_window / duration, pct(0.5) * 1e3,
              pct(0.99) * 1e3, (unsigned long long)errors);
  if (emu_pid > 0) std::printf(" emu_cpu_cores=%.2f", (cpu1 - cpu0) / duration);
  if (lag_n > 0)
    std::printf(" emu_lag_mean_ms=%.2f emu_lag_max_ms=%.1f", lag_sum / lag_n * 1e3, lag_max * 1e3);
  std::printf(" setup_s=%.2f\n", t_measure - warmup - t0);
  return errors == 0 && open == size_t(streams) ? 0 : 1;
}
