// gpu-emu: an OpenAI-compatible GPU-server emulator driven by tlb::gpumodel in real time.
//
// One process = one emulated inference server (one engine). Single thread, epoll, kernel
// sockets, non-blocking everywhere; many instances run side by side in the lab. The engine runs
// in virtual time anchored to CLOCK_MONOTONIC: steps are laid back to back on the engine's own
// timeline, a timerfd fires at the next step end, and every token produced by that step is
// written then. A late wake-up therefore delays the bytes but never stretches the model.
//
// HTTP/1.1 framing uses http-parser (Content-Length and chunked request bodies, keep-alive); the
// parser is paused after each request so pipelined requests are answered strictly in order.
// JSON bodies are validated and read with simdjson's DOM parser (the emulator wants full
// validation for its 400s more than it wants on-demand speed). Docs: docs/gpu-emu.md.
#include <arpa/inet.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sentencepiece_processor.h>
#include <simdjson.h>
#include <string>
#include <unordered_map>
#include <vector>

#include "gpumodel/gpumodel.hpp"
#include "options.hpp"

using namespace tlb::gpumodel;
using namespace tlb::gpuemu;

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

double mono_now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}
double wall_now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

// Output text: one word per token, chosen deterministically from the request id and position.
constexpr const char* WORDS[] = {
    " the", " model", " answer", " is", " a", " token", " of", " GPU", " and", " to",
    " batch", " cache", " prefix", " stream", " in", " that", " with", " for", " on", " time",
    " data", " we", " can", " see", " it", " from", " each", " step", " as", " more",
    " load", " balance"};
constexpr size_t N_WORDS = sizeof(WORDS) / sizeof(WORDS[0]);
const char* word_at(uint64_t id, uint32_t i) {
  return WORDS[(id * 2654435761ULL + i * 40503ULL) % N_WORDS];
}

void json_escape_append(std::string& out, std::string_view s) {
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out += ch;
        }
    }
  }
}

// Prometheus histogram with fixed buckets (vLLM's bucket bounds).
struct Histogram {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;
  double sum = 0;
  uint64_t n = 0;
  explicit Histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size(), 0) {}
  void observe(double v) {
    for (size_t i = 0; i < bounds.size(); ++i)
      if (v <= bounds[i]) ++counts[i];
    sum += v;
    ++n;
  }
};

struct Active {  // one in-flight completion request
  uint64_t id = 0;
  bool chat = true;
  bool stream = false;
  bool include_usage = false;
  bool headers_sent = false;
  uint32_t prompt_tokens = 0;
  uint32_t max_tokens = 0;
  uint32_t planned = 0;  // tokens the engine will generate
  uint32_t gen = 0;
  std::string resp_id;
  std::string chunk_prefix;  // `data: {...,"choices":[{"index":0,` for stream chunks
  double t_submit = 0;       // engine time
  double wall_start = 0;
  uint32_t reset_at = 0;     // fault: reset after this many tokens (0 = never)
  double stall_mid_s = 0;    // fault: hold output for this long after the first token
  std::vector<uint64_t> hashes;
};

struct Conn {
  int fd = -1;
  uint64_t serial = 0;
  std::string peer;
  http_parser parser;
  std::string in;
  size_t in_off = 0;
  // current request being parsed
  std::string url, body, hfield;
  bool hfield_done = false, expect_continue = false, msg_done = false, too_big = false;
  std::unique_ptr<Active> act;
  std::string out;
  size_t out_off = 0;
  bool epollout = false;
  bool close_after_flush = false;
  bool dirty = false;
  bool dead = false;
  double hold_until = 0;  // engine time; output is not written before this (stall faults)
  double last_active = 0;  // engine time of the last request or response byte (idle timeout)
};

class Server : public Listener {
 public:
  explicit Server(Options o) : _o(std::move(o)) {}
  int run();

  // Listener (called from inside engine calls)
  void on_first_token(uint64_t id, double t) override;
  void on_tokens(uint64_t id, double t, uint32_t n) override;
  void on_finished(const RequestStats& s) override;

 private:
  Options _o;
  Profile _prof;
  std::unique_ptr<Engine> _engine;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> _spm;
  simdjson::dom::parser _json;
  int _ep = -1, _lfd = -1, _tfd = -1;
  double _t0 = 0;  // CLOCK_MONOTONIC at start; engine time = mono - _t0
  double _armed = -1;
  uint64_t _next_serial = 1, _next_req = 1, _req_seq = 0;
  std::unordered_map<uint64_t, Conn*> _conns;  // serial -> conn
  std::unordered_map<uint64_t, Conn*> _by_req;  // engine id -> conn
  std::vector<Conn*> _dirty;
  std::vector<Conn*> _held;
  std::vector<uint64_t> _pending_resets;
  std::vector<Conn*> _graveyard;
  std::vector<Conn*> _pending_parse;  // conns with pipelined input behind a finished response
  FILE* _log = stderr;
  http_parser_settings _hs{};
  time_t _created = 0;

  // metrics
  Histogram _ttft{{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                   5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}};
  Histogram _e2e{{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                  60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}};
  Histogram _tpot{{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
                   7.5, 10.0, 20.0, 40.0, 80.0}};
  Histogram _queue{{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                    60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}};
  uint64_t _success_length = 0, _success_stop = 0;
  uint64_t _http_requests = 0;
  uint64_t _aborted_client = 0, _aborted_fault = 0;
  uint64_t _rejected[6] = {};  // 400, 404, 405, 413, 429, 503
  uint64_t _faults_refuse = 0, _faults_close = 0, _faults_reset = 0, _faults_reset_mid = 0,
           _faults_stall = 0, _faults_stall_mid = 0;
  uint64_t _conns_accepted = 0;
  double _lag_sum = 0, _lag_max = 0;
  uint64_t _lag_n = 0;
  double _next_sweep = 0;
  uint64_t _idle_closed = 0;

  double now() const { return mono_now() - _t0; }
  bool setup(std::string* err);
  void accept_all();
  void on_readable(Conn* c);
  void on_writable(Conn* c);
  void process_input(Conn* c);
  void handle_request(Conn* c);
  void handle_completion(Conn* c, bool chat);
  void respond(Conn* c, int status, const char* ctype, std::string_view body,
               const char* extra_headers = "");
  void respond_error(Conn* c, int status, const char* type, const std::string& msg,
                     const char* code = nullptr);
  std::string metrics_text();
  void mark_dirty(Conn* c);
  void flush(Conn* c);
  void close_conn(Conn* c, bool rst);
  void client_gone(Conn* c, const char* why);
  void finish_active(Conn* c);
  void log_request(const Active& a, const Conn* c, const char* outcome, const RequestStats* st,
                   double abort_wall);
  void stream_token(Conn* c, Active& a);
  void arm_timer();
  uint64_t rand_u64(uint64_t salt);
  double rand01(uint64_t salt) { return (rand_u64(salt) >> 11) * (1.0 / 9007199254740992.0); }
  uint32_t count_tokens(const std::string& text, std::vector<uint64_t>* hashes);
};

// ---- helpers ---------------------------------------------------------------------------------

const char* reason(int s) {
  switch (s) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t Server::rand_u64(uint64_t salt) {
  return splitmix(splitmix(_o.seed * 0x100000001b3ULL + _req_seq) ^ salt);
}

// Exact count with sentencepiece when loaded, else the documented estimate: one token per 4
// bytes of the rendered prompt (rounded up), which is what OpenAI documents as the English rule
// of thumb. Block hashes follow the same unit: token ids (exact) or 4*block_tokens-byte chunks.
uint32_t Server::count_tokens(const std::string& text, std::vector<uint64_t>* hashes) {
  const uint32_t B = _prof.block_tokens;
  if (_spm) {
    std::vector<int> ids;
    if (!_spm->Encode(text, &ids).ok()) ids.clear();
    uint64_t h = 0;
    for (size_t i = 0; i + B <= ids.size(); i += B) {
      h = block_hash(h, ids.data() + i, B * sizeof(int));
      hashes->push_back(h);
    }
    return static_cast<uint32_t>(std::max<size_t>(ids.size(), 1));
  }
  uint64_t h = 0;
  const size_t chunk = 4ull * B;
  for (size_t i = 0; i + chunk <= text.size(); i += chunk) {
    h = block_hash(h, text.data() + i, chunk);
    hashes->push_back(h);
  }
  return static_cast<uint32_t>(std::max<size_t>((text.size() + 3) / 4, 1));
}

// ---- HTTP parser callbacks -------------------------------------------------------------------

int cb_url(http_parser* p, const char* at, size_t n) {
  static_cast<Conn*>(p->data)->url.append(at, n);
  return 0;
}
int cb_hfield(http_parser* p, const char* at, size_t n) {
  Conn* c = static_cast<Conn*>(p->data);
  if (c->hfield_done) {
    c->hfield.clear();
    c->hfield_done = false;
  }
  c->hfield.append(at, n);
  return 0;
}
int cb_hvalue(http_parser* p, const char* at, size_t n) {
  Conn* c = static_cast<Conn*>(p->data);
  c->hfield_done = true;
  if (c->hfield.size() == 6 && strncasecmp(c->hfield.data(), "expect", 6) == 0 &&
      n >= 12 && strncasecmp(at, "100-continue", 12) == 0)
    c->expect_continue = true;
  return 0;
}
constexpr size_t MAX_BODY = 16u << 20;
int cb_headers_complete(http_parser* p) {
  Conn* c = static_cast<Conn*>(p->data);
  if (p->content_length != ULLONG_MAX && p->content_length > MAX_BODY) c->too_big = true;
  if (c->expect_continue && !c->too_big) c->out += "HTTP/1.1 100 Continue\r\n\r\n";
  return 0;
}
int cb_body(http_parser* p, const char* at, size_t n) {
  Conn* c = static_cast<Conn*>(p->data);
  if (c->body.size() + n > MAX_BODY) {
    c->too_big = true;
    return 0;
  }
  c->body.append(at, n);
  return 0;
}
int cb_message_complete(http_parser* p) {
  Conn* c = static_cast<Conn*>(p->data);
  c->msg_done = true;
  http_parser_pause(p, 1);  // one request at a time; the rest waits in c->in
  return 0;
}

// ---- server ---------------------------------------------------------------------------------

bool Server::setup(std::string* err) {
  std::string path = profile_path(_o.profile, _o.profiles_dir);
  if (!load_profile(path, _prof, err)) return false;
  if (!_o.spm.empty()) {
    _spm = std::make_unique<sentencepiece::SentencePieceProcessor>();
    auto st = _spm->Load(_o.spm);
    if (!st.ok()) {
      *err = "cannot load sentencepiece model " + _o.spm + ": " + st.ToString();
      return false;
    }
  }
  if (_o.max_num_seqs) _prof.max_num_seqs = _o.max_num_seqs;
  _engine = std::make_unique<Engine>(_prof, this);
  if (!_o.log_path.empty()) {
    _log = std::fopen(_o.log_path.c_str(), "a");
    if (!_log) {
      *err = "cannot open log " + _o.log_path + ": " + std::strerror(errno);
      return false;
    }
  }
  std::setvbuf(_log, nullptr, _IOLBF, 0);

  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  _lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(_o.port);
  if (inet_pton(AF_INET, _o.addr.c_str(), &sa.sin_addr) != 1) {
    *err = "bad listen address " + _o.addr;
    return false;
  }
  if (bind(_lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 || listen(_lfd, 4096) < 0) {
    *err = "cannot listen on " + _o.addr + ":" + std::to_string(_o.port) + ": " +
           std::strerror(errno);
    return false;
  }
  _ep = epoll_create1(EPOLL_CLOEXEC);
  _tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // listener
  epoll_ctl(_ep, EPOLL_CTL_ADD, _lfd, &ev);
  ev.data.u64 = 1;  // timer
  epoll_ctl(_ep, EPOLL_CTL_ADD, _tfd, &ev);

  http_parser_settings_init(&_hs);
  _hs.on_url = cb_url;
  _hs.on_header_field = cb_hfield;
  _hs.on_header_value = cb_hvalue;
  _hs.on_headers_complete = cb_headers_complete;
  _hs.on_body = cb_body;
  _hs.on_message_complete = cb_message_complete;
  _t0 = mono_now();
  _created = time(nullptr);
  return true;
}

void Server::arm_timer() {
  double next = _engine->next_event_time();
  for (Conn* c : _held) next = std::min(next, c->hold_until);
  if (_o.idle_timeout_s > 0) next = std::min(next, _next_sweep);
  if (next == _armed) return;
  _armed = next;
  itimerspec its{};
  if (next != NEVER) {
    double abs = _t0 + next;
    if (abs <= 0) abs = 1e-9;
    its.it_value.tv_sec = static_cast<time_t>(abs);
    its.it_value.tv_nsec = static_cast<long>((abs - std::floor(abs)) * 1e9);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
  }
  timerfd_settime(_tfd, TFD_TIMER_ABSTIME, &its, nullptr);
}

int Server::run() {
  std::string err;
  if (!setup(&err)) {
    std::fprintf(stderr, "gpu-emu: %s\n", err.c_str());
    return 1;
  }
  std::fprintf(_log,
               "gpu-emu listening on %s:%u profile=%s gpu=%s model=%s max_num_seqs=%u "
               "kv_tokens=%llu spm=%s seed=%llu\n",
               _o.addr.c_str(), _o.port, _prof.name.c_str(), _prof.gpu.c_str(),
               _o.models[0].c_str(), _prof.max_num_seqs,
               static_cast<unsigned long long>(_prof.kv_capacity_tokens),
               _spm ? "yes" : "no", static_cast<unsigned long long>(_o.seed));
  std::vector<epoll_event> evs(1024);
  while (!g_stop) {
    arm_timer();
    int n = epoll_wait(_ep, evs.data(), static_cast<int>(evs.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      uint64_t key = evs[i].data.u64;
      uint32_t e = evs[i].events;
      if (key == 0) {
        accept_all();
        continue;
      }
      if (key == 1) {
        uint64_t x;
        while (read(_tfd, &x, sizeof x) > 0) {
        }
        _armed = -1;
        continue;
      }
      auto it = _conns.find(key);
      if (it == _conns.end()) continue;
      Conn* c = it->second;
      if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
      if (!c->dead && (e & EPOLLOUT)) on_writable(c);
    }
    double t = now();
    // How late this process delivers engine events (a loaded host shows up here first).
    if (double due = _engine->next_event_time(); due <= t) {
      double lag = t - due;
      _lag_sum += lag;
      ++_lag_n;
      _lag_max = std::max(_lag_max, lag);
    }
    _engine->advance(t);
    // Stalled connections whose hold expired.
    for (size_t i = 0; i < _held.size();) {
      Conn* c = _held[i];
      if (c->dead || c->hold_until <= t) {
        c->hold_until = 0;
        if (!c->dead) mark_dirty(c);
        _held[i] = _held.back();
        _held.pop_back();
      } else {
        ++i;
      }
    }
    // Faults decided inside engine callbacks are applied here (callbacks must not re-enter).
    for (uint64_t id : _pending_resets) {
      auto it = _by_req.find(id);
      if (it == _by_req.end()) continue;
      Conn* c = it->second;
      c->hold_until = 0;
      flush(c);
      if (c->dead || !c->act) continue;
      ++_aborted_fault;
      Active& a = *c->act;
      _engine->abort(id, t);
      log_request(a, c, "fault_reset", nullptr, wall_now());
      _by_req.erase(id);
      c->act.reset();
      close_conn(c, true);
    }
    _pending_resets.clear();
    for (size_t i = 0; i < _pending_parse.size(); ++i)
      if (!_pending_parse[i]->dead) process_input(_pending_parse[i]);
    _pending_parse.clear();
    for (size_t i = 0; i < _dirty.size(); ++i) {
      Conn* c = _dirty[i];
      c->dirty = false;
      if (!c->dead) flush(c);
    }
    _dirty.clear();
    // Keep-alive timeout (uvicorn, in front of vLLM, closes idle connections after 5 s):
    // a coarse sweep, at most one per quarter of the timeout.
    if (_o.idle_timeout_s > 0 && t >= _next_sweep) {
      std::vector<Conn*> idle;
      for (auto& kv : _conns) {
        Conn* c = kv.second;
        if (!c->act && c->out_off >= c->out.size() && c->in_off >= c->in.size() &&
            t - c->last_active >= _o.idle_timeout_s)
          idle.push_back(c);
      }
      for (Conn* c : idle) {
        shutdown(c->fd, SHUT_WR);
        close_conn(c, false);
        ++_idle_closed;
      }
      _next_sweep = t + _o.idle_timeout_s / 4;
    }
    for (Conn* c : _graveyard) delete c;
    _graveyard.clear();
  }
  // Close what is still open so leak checkers see a clean exit.
  std::vector<Conn*> open;
  for (auto& kv : _conns) open.push_back(kv.second);
  for (Conn* c : open) close_conn(c, false);
  for (Conn* c : _graveyard) delete c;
  _graveyard.clear();
  std::fprintf(_log, "gpu-emu exiting: busy_gpu_seconds=%.3f generation_tokens=%llu\n",
               _engine->busy_gpu_seconds(),
               static_cast<unsigned long long>(_engine->counters().generation_tokens));
  return 0;
}

void Server::accept_all() {
  for (;;) {
    sockaddr_in sa{};
    socklen_t sl = sizeof sa;
    int fd = accept4(_lfd, reinterpret_cast<sockaddr*>(&sa), &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or EMFILE (the listen queue keeps them)
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Conn* c = new Conn();
    c->fd = fd;
    c->serial = ++_next_serial;
    c->last_active = now();
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
    c->peer = std::string(ip) + ":" + std::to_string(ntohs(sa.sin_port));
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    _conns.emplace(c->serial, c);
    ++_conns_accepted;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = c->serial;
    epoll_ctl(_ep, EPOLL_CTL_ADD, fd, &ev);
  }
}

void Server::close_conn(Conn* c, bool rst) {
  if (c->dead) return;
  if (c->act) {
    _by_req.erase(c->act->id);
    c->act.reset();
  }
  if (rst) {
    linger lg{1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  // _held outlives this loop iteration; the graveyard does not.
  if (auto it = std::find(_held.begin(), _held.end(), c); it != _held.end()) {
    *it = _held.back();
    _held.pop_back();
  }
  epoll_ctl(_ep, EPOLL_CTL_DEL, c->fd, nullptr);
  close(c->fd);
  c->dead = true;
  _conns.erase(c->serial);
  _graveyard.push_back(c);
}

// The client went away while a request was in flight: abort it so its batch slot and KV blocks
// are free for the next engine step.
void Server::client_gone(Conn* c, const char* why) {
  double t = now();
  double w = wall_now();
  _engine->advance(t);  // steps already done may have finished it; callbacks run first
  if (c->act && !c->dead) {
    Active& a = *c->act;
    _engine->abort(a.id, t);
    ++_aborted_client;
    log_request(a, c, why, nullptr, w);
    _by_req.erase(a.id);
    c->act.reset();
  }
  close_conn(c, false);
}

void Server::on_readable(Conn* c) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n > 0) {
      c->last_active = now();
      c->in.append(buf, static_cast<size_t>(n));
      if (c->in.size() - c->in_off > MAX_BODY + (1u << 20)) {
        close_conn(c, true);
        return;
      }
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      client_gone(c, n == 0 ? "aborted_client_closed" : "aborted_client_error");
      return;
    }
    if (errno == EINTR) continue;
    break;
  }
  process_input(c);
}

void Server::process_input(Conn* c) {
  while (!c->dead && !c->act && !c->close_after_flush && c->in_off < c->in.size()) {
    size_t avail = c->in.size() - c->in_off;
    size_t n = http_parser_execute(&c->parser, &_hs, c->in.data() + c->in_off, avail);
    c->in_off += n;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e != HPE_OK && e != HPE_PAUSED) {
      c->close_after_flush = true;
      respond_error(c, 400, "invalid_request_error",
                    std::string("malformed HTTP request: ") + http_errno_name(e));
      break;
    }
    if (!c->msg_done) {
      if (!c->out.empty()) mark_dirty(c);  // 100 Continue
      break;
    }
    ++_http_requests;
    if (!http_should_keep_alive(&c->parser)) c->close_after_flush = true;
    handle_request(c);
    c->msg_done = false;
    c->url.clear();
    c->body.clear();
    c->hfield.clear();
    c->hfield_done = c->expect_continue = c->too_big = false;
    http_parser_pause(&c->parser, 0);
  }
  if (c->in_off == c->in.size()) {
    c->in.clear();
    c->in_off = 0;
  } else if (c->in_off > 65536) {
    c->in.erase(0, c->in_off);
    c->in_off = 0;
  }
}

void Server::respond(Conn* c, int status, const char* ctype, std::string_view body,
                     const char* extra) {
  char h[512];
  int n = std::snprintf(h, sizeof h,
                        "HTTP/1.1 %d %s\r\nserver: gpu-emu\r\ncontent-type: %s\r\n"
                        "content-length: %zu\r\n%s%s\r\n",
                        status, reason(status), ctype, body.size(), extra,
                        c->close_after_flush ? "connection: close\r\n" : "");
  c->out.append(h, static_cast<size_t>(n));
  c->out.append(body);
  mark_dirty(c);
}

void Server::respond_error(Conn* c, int status, const char* type, const std::string& msg,
                           const char* code) {
  switch (status) {
    case 400: ++_rejected[0]; break;
    case 404: ++_rejected[1]; break;
    case 405: ++_rejected[2]; break;
    case 413: ++_rejected[3]; break;
    case 429: ++_rejected[4]; break;
    case 503: ++_rejected[5]; break;
    default: break;
  }
  std::string b = "{\"error\":{\"message\":\"";
  json_escape_append(b, msg);
  b += "\",\"type\":\"";
  b += type;
  b += "\",\"param\":null,\"code\":";
  if (code) {
    b += "\"";
    b += code;
    b += "\"";
  } else {
    b += std::to_string(status);
  }
  b += "}}";
  respond(c, status, "application/json", b,
          (status == 429 || status == 503) ? "retry-after: 1\r\n" : "");
}

void Server::handle_request(Conn* c) {
  int method = c->parser.method;
  std::string path = c->url.substr(0, c->url.find('?'));
  if (c->too_big) {
    c->close_after_flush = true;
    respond_error(c, 413, "invalid_request_error", "request body too large");
    return;
  }
  if (path == "/health") {
    respond(c, 200, "text/plain", "");
    return;
  }
  if (path == "/metrics") {
    respond(c, 200, "text/plain; version=0.0.4", metrics_text());
    return;
  }
  if (path == "/v1/models") {
    std::string b = "{\"object\":\"list\",\"data\":[";
    for (size_t i = 0; i < _o.models.size(); ++i) {
      if (i) b += ",";
      b += "{\"id\":\"";
      json_escape_append(b, _o.models[i]);
      b += "\",\"object\":\"model\",\"created\":" + std::to_string(_created) +
           ",\"owned_by\":\"gpu-emu\",\"root\":\"";
      json_escape_append(b, _prof.model);
      b += "\",\"max_model_len\":" + std::to_string(_prof.max_model_len) + "}";
    }
    b += "]}";
    respond(c, 200, "application/json", b);
    return;
  }
  bool chat = path == "/v1/chat/completions";
  if (chat || path == "/v1/completions") {
    if (method != HTTP_POST) {
      respond_error(c, 405, "invalid_request_error", "method not allowed");
      return;
    }
    handle_completion(c, chat);
    return;
  }
  respond_error(c, 404, "invalid_request_error", "no route for " + path, "not_found");
}

void Server::handle_completion(Conn* c, bool chat) {
  using namespace simdjson;
  dom::element doc;
  if (_json.parse(c->body.data(), c->body.size()).get(doc) != SUCCESS || !doc.is_object()) {
    respond_error(c, 400, "invalid_request_error", "request body is not a valid JSON object");
    return;
  }
  std::string_view model;
  if (doc["model"].get_string().get(model) != SUCCESS) {
    respond_error(c, 400, "invalid_request_error", "missing required field: model");
    return;
  }
  if (std::find(_o.models.begin(), _o.models.end(), model) == _o.models.end()) {
    respond_error(c, 404, "invalid_request_error",
                  "The model `" + std::string(model) + "` does not exist.", "model_not_found");
    return;
  }
  // Render the prompt the way a chat template would (role markers + contents).
  std::string text;
  bool token_prompt = false;
  uint32_t token_prompt_len = 0;
  if (chat) {
    dom::array msgs;
    if (doc["messages"].get_array().get(msgs) != SUCCESS || msgs.size() == 0) {
      respond_error(c, 400, "invalid_request_error", "messages must be a non-empty array");
      return;
    }
    for (dom::element m : msgs) {
      std::string_view role = "user", content;
      if (!m.is_object()) {
        respond_error(c, 400, "invalid_request_error", "each message must be an object");
        return;
      }
      if (m["role"].get_string().get(role) != simdjson::SUCCESS) role = "user";
      text += "<|";
      text += role;
      text += "|>\n";
      dom::element ce;
      if (m["content"].get(ce) == SUCCESS) {
        if (ce.get_string().get(content) == SUCCESS) {
          text += content;
        } else if (ce.is_array()) {
          for (dom::element part : ce.get_array()) {
            std::string_view t;
            if (part["text"].get_string().get(t) == SUCCESS) text += t;
          }
        } else if (!ce.is_null()) {
          respond_error(c, 400, "invalid_request_error", "message content must be a string or an array");
          return;
        }
      }
      text += "\n";
    }
    text += "<|assistant|>\n";
  } else {
    dom::element pe;
    if (doc["prompt"].get(pe) != SUCCESS) {
      respond_error(c, 400, "invalid_request_error", "missing required field: prompt");
      return;
    }
    std::string_view s;
    if (pe.get_string().get(s) == SUCCESS) {
      text = s;
    } else if (pe.is_array()) {
      for (dom::element x : pe.get_array()) {
        if (x.get_string().get(s) == SUCCESS) {
          text += s;
        } else if (x.is_int64() || x.is_uint64()) {
          token_prompt = true;
          ++token_prompt_len;
        } else {
          respond_error(c, 400, "invalid_request_error", "prompt must be a string, an array of strings or of token ids");
          return;
        }
      }
    } else {
      respond_error(c, 400, "invalid_request_error", "prompt must be a string or an array");
      return;
    }
  }
  int64_t max_tokens = -1, min_tokens = 0, n_choices = 1;
  {
    int64_t v;
    if (doc["max_completion_tokens"].get_int64().get(v) == SUCCESS) max_tokens = v;
    if (doc["max_tokens"].get_int64().get(v) == SUCCESS) max_tokens = v;
    if (doc["min_tokens"].get_int64().get(v) == SUCCESS) min_tokens = v;
    if (doc["n"].get_int64().get(v) == SUCCESS) n_choices = v;
    dom::element mt;
    if (doc["max_tokens"].get(mt) == SUCCESS && !mt.is_null() && !mt.is_int64()) {
      respond_error(c, 400, "invalid_request_error", "max_tokens must be an integer");
      return;
    }
  }
  if (n_choices != 1) {
    respond_error(c, 400, "invalid_request_error", "gpu-emu supports n=1 only");
    return;
  }
  bool stream = false, include_usage = false;
  if (doc["stream"].get_bool().get(stream) != SUCCESS) stream = false;
  dom::object so;
  if (doc["stream_options"].get_object().get(so) == SUCCESS)
    if (so["include_usage"].get_bool().get(include_usage) != SUCCESS) include_usage = false;

  auto a = std::make_unique<Active>();
  a->chat = chat;
  a->stream = stream;
  a->include_usage = include_usage;
  a->prompt_tokens = token_prompt ? token_prompt_len : count_tokens(text, &a->hashes);
  if (token_prompt && token_prompt_len == 0) a->prompt_tokens = 1;
  ++_req_seq;
  const uint32_t room = _prof.max_model_len > a->prompt_tokens
                            ? _prof.max_model_len - a->prompt_tokens
                            : 0;
  if (max_tokens == 0 || max_tokens < -1 || room == 0 ||
      (max_tokens > 0 && static_cast<uint64_t>(max_tokens) > room)) {
    respond_error(c, 400, "invalid_request_error",
                  "This model's maximum context length is " + std::to_string(_prof.max_model_len) +
                      " tokens. However, you requested " + std::to_string(a->prompt_tokens) +
                      " prompt tokens and max_tokens=" + std::to_string(max_tokens) + ".");
    return;
  }
  a->max_tokens = max_tokens > 0 ? static_cast<uint32_t>(max_tokens)
                                 : std::min<uint32_t>(room, _o.default_max_tokens);
  a->planned = _o.output_dist.sample(a->max_tokens, rand01(1), rand01(2));
  if (min_tokens > 0) a->planned = std::max<uint32_t>(a->planned, static_cast<uint32_t>(
                                                      std::min<int64_t>(min_tokens, a->max_tokens)));
  a->planned = std::clamp<uint32_t>(a->planned, 1, a->max_tokens);

  // Load shedding and injected faults (all decided deterministically from the seed).
  if (_o.max_waiting >= 0 && _engine->num_waiting() >= static_cast<uint32_t>(_o.max_waiting)) {
    respond_error(c, _o.shed_status, _o.shed_status == 429 ? "rate_limit_exceeded" : "server_error",
                  "server overloaded: " + std::to_string(_engine->num_waiting()) +
                      " requests waiting");
    return;
  }
  const FaultSpec& f = _o.faults;
  if (f.refuse > 0 && rand01(3) < f.refuse) {
    ++_faults_refuse;
    respond_error(c, f.refuse_status, "server_error", "injected fault: refused");
    return;
  }
  if (f.close > 0 && rand01(4) < f.close) {
    ++_faults_close;
    close_conn(c, false);
    return;
  }
  if (f.reset > 0 && rand01(5) < f.reset) {
    ++_faults_reset;
    close_conn(c, true);
    return;
  }
  if (f.reset_mid > 0 && rand01(6) < f.reset_mid) {
    ++_faults_reset_mid;
    a->reset_at = 1 + static_cast<uint32_t>(rand_u64(7) % std::max<uint32_t>(a->planned - 1, 1));
    if (a->reset_at >= a->planned && a->planned > 1) a->reset_at = a->planned - 1;
  }
  const double t = now();
  if (f.stall > 0 && rand01(8) < f.stall) {
    ++_faults_stall;
    c->hold_until = t + f.stall_s;
    _held.push_back(c);
  }
  if (f.stall_mid > 0 && rand01(9) < f.stall_mid) {
    ++_faults_stall_mid;
    a->stall_mid_s = f.stall_mid_s;
  }

  a->id = _next_req++;
  a->t_submit = t;
  a->wall_start = wall_now();
  a->resp_id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(_o.port) + "-" + std::to_string(a->id);
  std::string created = std::to_string(time(nullptr));
  a->chunk_prefix = "data: {\"id\":\"" + a->resp_id + "\",\"object\":\"" +
                    (chat ? "chat.completion.chunk" : "text_completion") +
                    "\",\"created\":" + created + ",\"model\":\"";
  json_escape_append(a->chunk_prefix, model);
  a->chunk_prefix += "\",\"choices\":[";

  Request r;
  r.id = a->id;
  r.prompt_tokens = a->prompt_tokens;
  r.output_tokens = a->planned;
  r.block_hashes = a->hashes;
  SubmitResult sr = _engine->submit(r, t);
  if (sr != SubmitResult::OK) {
    respond_error(c, 400, "invalid_request_error",
                  "request does not fit this server (prompt " + std::to_string(a->prompt_tokens) +
                      " tokens, KV capacity " + std::to_string(_prof.kv_capacity_tokens) + ")");
    return;
  }
  _by_req.emplace(a->id, c);
  c->act = std::move(a);
}

void Server::mark_dirty(Conn* c) {
  if (!c->dirty) {
    c->dirty = true;
    _dirty.push_back(c);
  }
}

void Server::flush(Conn* c) {
  if (c->dead) return;
  if (c->hold_until > 0) return;  // stalled by a fault
  while (c->out_off < c->out.size()) {
    ssize_t n = send(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!c->epollout) {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT;
        ev.data.u64 = c->serial;
        epoll_ctl(_ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->epollout = true;
      }
      return;
    }
    client_gone(c, "aborted_client_write_error");
    return;
  }
  c->out.clear();
  c->out_off = 0;
  c->last_active = now();
  if (c->epollout) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = c->serial;
    epoll_ctl(_ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->epollout = false;
  }
  if (c->close_after_flush && !c->act) {
    shutdown(c->fd, SHUT_WR);
    close_conn(c, false);
  }
}

void Server::on_writable(Conn* c) { flush(c); }

void append_chunk(std::string& out, std::string_view data) {
  char h[24];
  int n = std::snprintf(h, sizeof h, "%zx\r\n", data.size());
  out.append(h, static_cast<size_t>(n));
  out.append(data);
  out += "\r\n";
}

void Server::stream_token(Conn* c, Active& a) {
  std::string ev;
  ev.reserve(a.chunk_prefix.size() + 128);
  if (!a.headers_sent) {
    a.headers_sent = true;
    c->out +=
        "HTTP/1.1 200 OK\r\nserver: gpu-emu\r\ncontent-type: text/event-stream\r\n"
        "cache-control: no-cache\r\ntransfer-encoding: chunked\r\n";
    if (c->close_after_flush) c->out += "connection: close\r\n";
    c->out += "\r\n";
    if (a.chat) {
      ev = a.chunk_prefix;
      ev += "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
            "\"finish_reason\":null}]}\n\n";
      append_chunk(c->out, ev);
      ev.clear();
    }
  }
  ev = a.chunk_prefix;
  const char* w = word_at(a.id, a.gen - 1);
  if (a.chat) {
    ev += "{\"index\":0,\"delta\":{\"content\":\"";
    ev += w;
    ev += "\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
  } else {
    ev += "{\"index\":0,\"text\":\"";
    ev += w;
    ev += "\",\"logprobs\":null,\"finish_reason\":null}]}\n\n";
  }
  append_chunk(c->out, ev);
}

void Server::on_first_token(uint64_t id, double t) { on_tokens(id, t, 1); }

void Server::on_tokens(uint64_t id, double t, uint32_t n) {
  auto it = _by_req.find(id);
  if (it == _by_req.end()) return;
  Conn* c = it->second;
  Active& a = *c->act;
  for (uint32_t i = 0; i < n; ++i) {
    ++a.gen;
    if (a.stream) stream_token(c, a);
  }
  if (a.gen == 1 && a.stall_mid_s > 0) {
    if (c->hold_until == 0) _held.push_back(c);
    c->hold_until = t + a.stall_mid_s;
  }
  if (a.reset_at && a.gen >= a.reset_at) _pending_resets.push_back(id);
  mark_dirty(c);
}

void Server::on_finished(const RequestStats& s) {
  auto it = _by_req.find(s.id);
  if (it == _by_req.end()) return;
  Conn* c = it->second;
  Active& a = *c->act;
  if (a.reset_at) {  // a reset is pending for this request: it never completes for the client
    return;
  }
  const bool by_length = a.gen >= a.max_tokens;
  const char* fr = by_length ? "length" : "stop";
  if (by_length) ++_success_length; else ++_success_stop;
  std::string usage = "{\"prompt_tokens\":" + std::to_string(a.prompt_tokens) +
                      ",\"completion_tokens\":" + std::to_string(a.gen) +
                      ",\"total_tokens\":" + std::to_string(a.prompt_tokens + a.gen) +
                      ",\"prompt_tokens_details\":{\"cached_tokens\":" +
                      std::to_string(s.cached_tokens) + "}}";
  if (a.stream) {
    std::string ev = a.chunk_prefix;
    if (a.chat)
      ev += "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"";
    else
      ev += "{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"";
    ev += fr;
    ev += "\"}]}\n\n";
    append_chunk(c->out, ev);
    if (a.include_usage) {
      ev = a.chunk_prefix;
      ev += "],\"usage\":";
      ev += usage;
      ev += "}\n\n";
      append_chunk(c->out, ev);
    }
    append_chunk(c->out, "data: [DONE]\n\n");
    c->out += "0\r\n\r\n";
  } else {
    std::string text;
    text.reserve(a.gen * 7);
    for (uint32_t i = 0; i < a.gen; ++i) text += word_at(a.id, i);
    std::string b = "{\"id\":\"" + a.resp_id + "\",\"object\":\"" +
                    (a.chat ? "chat.completion" : "text_completion") + "\",\"created\":" +
                    std::to_string(time(nullptr)) + ",\"model\":\"";
    json_escape_append(b, _o.models[0]);
    b += "\",\"choices\":[{\"index\":0,";
    if (a.chat)
      b += "\"message\":{\"role\":\"assistant\",\"content\":\"" + text + "\"}";
    else
      b += "\"text\":\"" + text + "\"";
    b += ",\"logprobs\":null,\"finish_reason\":\"";
    b += fr;
    b += "\"}],\"usage\":" + usage + "}";
    respond(c, 200, "application/json", b);
  }
  _ttft.observe(s.first_token_time - s.submit_time);
  _e2e.observe(s.end_time - s.submit_time);
  _queue.observe(s.first_scheduled_time - s.submit_time);
  if (s.generated_tokens > 1)
    _tpot.observe((s.end_time - s.first_token_time) / (s.generated_tokens - 1));
  log_request(a, c, "finished", &s, 0);
  _by_req.erase(s.id);
  c->act.reset();
  mark_dirty(c);
  // Pipelined requests behind this one can go now (parsing does not re-enter the engine's
  // event delivery for this step: a new submit only queues work for the next step).
  if (c->in_off < c->in.size()) _pending_parse.push_back(c);
}

void Server::log_request(const Active& a, const Conn* c, const char* outcome,
                         const RequestStats* st, double abort_wall) {
  if (_o.quiet) return;
  double t = now();
  char line[768];
  int n = std::snprintf(
      line, sizeof line,
      "req ts=%.6f id=%s peer=%s outcome=%s stream=%d prompt_tokens=%u cached_tokens=%u "
      "completion_tokens=%u planned_tokens=%u max_tokens=%u ttft_ms=%.3f e2e_ms=%.3f",
      wall_now(), a.resp_id.c_str(), c->peer.c_str(), outcome, a.stream ? 1 : 0, a.prompt_tokens,
      st ? st->cached_tokens : 0u, a.gen, a.planned, a.max_tokens,
      st ? (st->first_token_time - st->submit_time) * 1e3 : -1.0,
      (st ? st->end_time - a.t_submit : t - a.t_submit) * 1e3);
  if (abort_wall > 0 && n > 0 && n < static_cast<int>(sizeof line))
    n += std::snprintf(line + n, sizeof line - n, " abort_ts=%.6f", abort_wall);
  std::fprintf(_log, "%s\n", line);
}

std::string Server::metrics_text() {
  const Counters& k = _engine->counters();
  std::string m;
  m.reserve(8192);
  std::string lbl = "{model_name=\"" + _o.models[0] + "\"}";
  auto gauge = [&](const char* name, const char* help, double v) {
    char b[256];
    std::snprintf(b, sizeof b, "# HELP %s %s\n# TYPE %s gauge\n%s%s %.17g\n", name, help, name,
                  name, lbl.c_str(), v);
    m += b;
  };
  auto counter = [&](const char* name, const char* help, double v) {
    char b[320];
    std::snprintf(b, sizeof b, "# HELP %s %s\n# TYPE %s counter\n%s%s %.17g\n", name, help, name,
                  name, lbl.c_str(), v);
    m += b;
  };
  auto hist = [&](const char* name, const char* help, const Histogram& h) {
    char b[256];
    std::snprintf(b, sizeof b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    m += b;
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      std::snprintf(b, sizeof b, "%s_bucket{model_name=\"%s\",le=\"%g\"} %llu\n", name,
                    _o.models[0].c_str(), h.bounds[i], static_cast<unsigned long long>(h.counts[i]));
      m += b;
    }
    std::snprintf(b, sizeof b, "%s_bucket{model_name=\"%s\",le=\"+Inf\"} %llu\n%s_sum%s %.17g\n%s_count%s %llu\n",
                  name, _o.models[0].c_str(), static_cast<unsigned long long>(h.n), name,
                  lbl.c_str(), h.sum, name, lbl.c_str(), static_cast<unsigned long long>(h.n));
    m += b;
  };
  _engine->advance(now());
  gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
        _engine->num_running());
  gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
        _engine->num_waiting());
  gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", _engine->kv_usage());
  gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage (legacy name).",
        _engine->kv_usage());
  counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.", double(k.prompt_tokens));
  counter("vllm:generation_tokens_total", "Number of generation tokens processed.",
          double(k.generation_tokens));
  counter("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.",
          double(k.prefix_cache_queries));
  counter("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.",
          double(k.prefix_cache_hits));
  counter("vllm:num_preemptions_total", "Cumulative number of preemptions from the engine.",
          double(k.preemptions));
  {
    char b[512];
    std::snprintf(b, sizeof b,
                  "# HELP vllm:request_success_total Count of successfully processed requests.\n"
                  "# TYPE vllm:request_success_total counter\n"
                  "vllm:request_success_total{finished_reason=\"length\",model_name=\"%s\"} %llu\n"
                  "vllm:request_success_total{finished_reason=\"stop\",model_name=\"%s\"} %llu\n",
                  _o.models[0].c_str(), static_cast<unsigned long long>(_success_length),
                  _o.models[0].c_str(), static_cast<unsigned long long>(_success_stop));
    m += b;
  }
  hist("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", _ttft);
  hist("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", _e2e);
  hist("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", _tpot);
  hist("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", _queue);
  counter("gpuemu_busy_gpu_seconds_total", "GPU-seconds the emulated engine spent in steps (busy time x GPUs).",
          _engine->busy_gpu_seconds());
  counter("gpuemu_busy_cost_usd_total", "Busy GPU-seconds times the profile's price.",
          _engine->busy_gpu_seconds() * _prof.cost_per_gpu_second());
  counter("gpuemu_aborted_requests_total", "Requests aborted because the client went away.",
          double(_aborted_client));
  counter("gpuemu_aborted_generation_tokens_total",
          "Tokens generated for requests whose client had gone (aborted before completion).",
          double(k.aborted_generation_tokens));
  counter("gpuemu_fault_resets_total", "Requests reset mid-stream by an injected fault.",
          double(_aborted_fault));
  counter("gpuemu_http_requests_total", "HTTP requests parsed.", double(_http_requests));
  counter("gpuemu_connections_total", "TCP connections accepted.", double(_conns_accepted));
  gauge("gpuemu_connections_open", "Open TCP connections.", double(_conns.size()));
  counter("gpuemu_engine_steps_total", "Engine steps executed.", double(k.steps));
  counter("gpuemu_idle_closed_connections_total", "Keep-alive connections closed by --idle-timeout.",
          double(_idle_closed));
  {
    static const int codes[6] = {400, 404, 405, 413, 429, 503};
    m += "# HELP gpuemu_http_errors_total Error responses sent, by status.\n"
         "# TYPE gpuemu_http_errors_total counter\n";
    for (int i = 0; i < 6; ++i)
      m += "gpuemu_http_errors_total{code=\"" + std::to_string(codes[i]) + "\"} " +
           std::to_string(_rejected[i]) + "\n";
    m += "# HELP gpuemu_faults_injected_total Faults injected by --fault, by kind.\n"
         "# TYPE gpuemu_faults_injected_total counter\n";
    const std::pair<const char*, uint64_t> fk[] = {
        {"refuse", _faults_refuse}, {"close", _faults_close}, {"reset", _faults_reset},
        {"reset-mid-stream", _faults_reset_mid}, {"stall", _faults_stall},
        {"stall-mid-stream", _faults_stall_mid}};
    for (auto& p : fk)
      m += std::string("gpuemu_faults_injected_total{kind=\"") + p.first + "\"} " +
           std::to_string(p.second) + "\n";
  }
  counter("gpuemu_event_lag_seconds_sum", "Sum over wake-ups of how late engine events were delivered.",
          _lag_sum);
  counter("gpuemu_event_lag_seconds_count", "Wake-ups that delivered engine events.", double(_lag_n));
  gauge("gpuemu_event_lag_seconds_max", "Largest event delivery delay seen.", _lag_max);
  gauge("gpuemu_kv_cached_blocks", "Unreferenced KV blocks still holding a cached prefix.",
        double(_engine->kv_cached_blocks()));
  gauge("gpuemu_kv_total_blocks", "KV blocks in the pool.", double(_engine->kv_total_blocks()));
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string err;
  int rc = parse_options(argc, argv, o, &err);
  if (rc != 0) {
    if (rc > 0) {
      std::fputs(usage_text(), stdout);
      return 0;
    }
    std::fprintf(stderr, "gpu-emu: %s\n%s", err.c_str(), usage_text());
    return 2;
  }
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  Server s(std::move(o));
  return s.run();
}
