#include "telemetry/scraper.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <strings.h>

#include "telemetry/prometheus.hpp"

namespace tlb::telemetry {

bool extract_vllm_metrics(std::string_view body, BackendMetrics& out) {
    out = BackendMetrics{};
    double running = 0, waiting = 0, kv_new = 0, kv_old = 0;
    uint32_t n_kv_new = 0, n_kv_old = 0;
    parse_exposition(body, [&](const ParsedSample& s) {
        if (!(s.value == s.value)) return;  // NaN
        if (s.name == "vllm:num_requests_running") {
            out.have_running = true;
            running += s.value;
        } else if (s.name == "vllm:num_requests_waiting") {
            out.have_waiting = true;
            waiting += s.value;
        } else if (s.name == "vllm:kv_cache_usage_perc") {
            kv_new = std::max(kv_new, s.value);  // several engines: the fullest one limits admission
            ++n_kv_new;
        } else if (s.name == "vllm:gpu_cache_usage_perc") {
            kv_old = std::max(kv_old, s.value);
            ++n_kv_old;
        }
    });
    auto clamp_u32 = [](double v) { return v <= 0 ? 0u : v >= 4e9 ? 4000000000u : uint32_t(v + 0.5); };
    out.running = clamp_u32(running);
    out.waiting = clamp_u32(waiting);
    if (n_kv_new || n_kv_old) {
        double kv = n_kv_new ? kv_new : kv_old;
        out.have_kv = true;
        out.kv_usage = float(kv < 0 ? 0 : kv > 1 ? 1 : kv);
    }
    return out.any();
}

bool parse_url(const std::string& url, Url& out, std::string* err) {
    auto bad = [&](const char* why) {
        if (err) *err = "metrics_url '" + url + "': " + why;
        return false;
    };
    const std::string scheme = "http://";
    if (url.compare(0, scheme.size(), scheme) != 0) return bad("only http:// is supported");
    std::string rest = url.substr(scheme.size());
    size_t slash = rest.find('/');
    std::string hostport = rest.substr(0, slash);
    out.path = slash == std::string::npos ? "/" : rest.substr(slash);
    size_t colon = hostport.rfind(':');
    out.host = hostport.substr(0, colon);
    out.port = 80;
    if (colon != std::string::npos) {
        std::string p = hostport.substr(colon + 1);
        char* end = nullptr;
        unsigned long v = std::strtoul(p.c_str(), &end, 10);
        if (p.empty() || *end || v == 0 || v > 65535) return bad("bad port");
        out.port = uint16_t(v);
    }
    if (out.host.empty()) return bad("no host");
    in_addr a{};
    if (inet_pton(AF_INET, out.host.c_str(), &a) == 1) {
        out.ipv4 = ntohl(a.s_addr);
        return true;
    }
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(out.host.c_str(), nullptr, &hints, &res) != 0 || !res) return bad("cannot resolve host");
    out.ipv4 = ntohl(reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr.s_addr);
    freeaddrinfo(res);
    return true;
}

static bool decode_chunked(std::string_view in, std::string& out, bool& done) {
    done = false;
    size_t p = 0;
    while (true) {
        size_t eol = in.find("\r\n", p);
        if (eol == std::string_view::npos) return true;  // need more
        std::string sz(in.substr(p, eol - p));
        size_t semi = sz.find(';');
        if (semi != std::string::npos) sz.resize(semi);
        char* end = nullptr;
        unsigned long n = std::strtoul(sz.c_str(), &end, 16);
        if (sz.empty() || (end && *end && *end != ' ')) return false;
        if (n > Scraper::MAX_BODY) return false;
        p = eol + 2;
        if (n == 0) {
            done = true;
            return true;
        }
        if (in.size() < p + n + 2) return true;
        out.append(in.substr(p, n));
        p += n + 2;
    }
}

int parse_http_response(std::string_view raw, bool complete, std::string& body) {
    size_t hend = raw.find("\r\n\r\n");
    if (hend == std::string_view::npos) return complete ? -1 : 0;
    std::string_view head = raw.substr(0, hend);
    if (head.rfind("HTTP/1.", 0) != 0 || head.size() < 12) return -1;
    int status = std::atoi(std::string(head.substr(9, 3)).c_str());
    if (status < 100 || status > 599) return -1;
    long content_length = -1;
    bool chunked = false;
    size_t p = head.find("\r\n");
    while (p != std::string_view::npos && p < head.size()) {
        size_t q = head.find("\r\n", p + 2);
        std::string_view line = head.substr(p + 2, (q == std::string_view::npos ? head.size() : q) - p - 2);
        size_t c = line.find(':');
        if (c != std::string_view::npos) {
            std::string name(line.substr(0, c));
            std::string val(line.substr(c + 1));
            while (!val.empty() && val.front() == ' ') val.erase(val.begin());
            if (strcasecmp(name.c_str(), "content-length") == 0) content_length = std::atol(val.c_str());
            if (strcasecmp(name.c_str(), "transfer-encoding") == 0 && strcasestr(val.c_str(), "chunked"))
                chunked = true;
        }
        p = q;
    }
    std::string_view rest = raw.substr(hend + 4);
    body.clear();
    if (chunked) {
        bool done = false;
        if (!decode_chunked(rest, body, done)) return -1;
        if (!done) return complete ? -1 : 0;
        return status;
    }
    if (content_length >= 0) {
        if (rest.size() < size_t(content_length)) return complete ? -1 : 0;
        body.assign(rest.substr(0, size_t(content_length)));
        return status;
    }
    if (!complete) return 0;
    body.assign(rest);
    return status;
}

namespace {

uint64_t now_ms() {
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
}

}  // namespace

Scraper::Scraper(std::vector<ScrapeTarget> targets, uint32_t interval_ms, Result on_result)
    : timeout_ms(std::min<uint32_t>(std::max<uint32_t>(interval_ms * 8 / 10, 100), 5000)),
      _targets(std::move(targets)),
      _interval_ms(interval_ms ? interval_ms : 1000),
      _on_result(std::move(on_result)),
      _ok(new std::atomic<uint64_t>[_targets.size()]()),
      _failed(new std::atomic<uint64_t>[_targets.size()]()),
      _last_error(_targets.size()) {}

void Scraper::start() {
    if (_thread.joinable() || _targets.empty()) return;
    if (::pipe2(_wake, O_NONBLOCK | O_CLOEXEC) < 0) return;
    _stop.store(false);
    _thread = std::thread([this] {
        while (!_stop.load()) {
            uint64_t t0 = now_ms();
            scrape_round();
            uint64_t spent = now_ms() - t0;
            int wait = spent >= _interval_ms ? 0 : int(_interval_ms - spent);
            pollfd p{_wake[0], POLLIN, 0};
            ::poll(&p, 1, wait);
        }
    });
}

void Scraper::stop() {
    if (!_thread.joinable()) return;
    _stop.store(true);
    char c = 1;
    (void)!::write(_wake[1], &c, 1);
    _thread.join();
    ::close(_wake[0]);
    ::close(_wake[1]);
    _wake[0] = _wake[1] = -1;
}

void Scraper::scrape_round() {
    struct Job {
        int fd = -1;
        std::string req;
        size_t sent = 0;
        std::string resp;
        bool connected = false;
        bool done = false;
        std::string err;
    };
    size_t n = _targets.size();
    std::vector<Job> jobs(n);
    for (size_t i = 0; i < n; ++i) {
        Job& j = jobs[i];
        const Url& u = _targets[i].url;
        j.req = "GET " + u.path + " HTTP/1.1\r\nHost: " + u.host + ":" + std::to_string(u.port) +
                "\r\nUser-Agent: tokenlb-scraper\r\nAccept: text/plain\r\nConnection: close\r\n\r\n";
        j.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (j.fd < 0) {
            j.done = true;
            j.err = std::string("socket: ") + std::strerror(errno);
            continue;
        }
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(u.port);
        sa.sin_addr.s_addr = htonl(u.ipv4);
        int r = ::connect(j.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
        if (r == 0) j.connected = true;
        else if (errno != EINPROGRESS) {
            j.done = true;
            j.err = std::string("connect: ") + std::strerror(errno);
        }
    }
    uint64_t deadline = now_ms() + timeout_ms;
    std::vector<pollfd> pfds;
    std::vector<size_t> idx;
    for (;;) {
        pfds.clear();
        idx.clear();
        for (size_t i = 0; i < n; ++i) {
            Job& j = jobs[i];
            if (j.done) continue;
            short ev = (!j.connected || j.sent < j.req.size()) ? POLLOUT : POLLIN;
            pfds.push_back({j.fd, ev, 0});
            idx.push_back(i);
        }
        if (pfds.empty()) break;
        uint64_t now = now_ms();
        if (now >= deadline) {
            for (size_t i : idx) {
                jobs[i].done = true;
                jobs[i].err = "timeout";
            }
            break;
        }
        int pr = ::poll(pfds.data(), pfds.size(), int(deadline - now));
        if (pr < 0 && errno != EINTR) break;
        for (size_t k = 0; k < pfds.size(); ++k) {
            Job& j = jobs[idx[k]];
            short re = pfds[k].revents;
            if (!re) continue;
            if (!j.connected) {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                getsockopt(j.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                if (soerr) {
                    j.done = true;
                    j.err = std::string("connect: ") + std::strerror(soerr);
                    continue;
                }
                j.connected = true;
            }
            if (j.sent < j.req.size()) {
                ssize_t w = ::send(j.fd, j.req.data() + j.sent, j.req.size() - j.sent, MSG_NOSIGNAL);
                if (w > 0) j.sent += size_t(w);
                else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    j.done = true;
                    j.err = std::string("send: ") + std::strerror(errno);
                }
                continue;
            }
            char buf[16384];
            ssize_t r = ::recv(j.fd, buf, sizeof buf, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (r < 0) {
                j.done = true;
                j.err = std::string("recv: ") + std::strerror(errno);
                continue;
            }
            if (r > 0) j.resp.append(buf, size_t(r));
            if (j.resp.size() > MAX_BODY) {
                j.done = true;
                j.err = "response too large";
                continue;
            }
            std::string body;
            int st = parse_http_response(j.resp, r == 0, body);
            if (st != 0 || r == 0) j.done = true;  // complete (or the peer closed)
        }
    }
    for (size_t i = 0; i < n; ++i) {
        Job& j = jobs[i];
        if (j.fd >= 0) ::close(j.fd);
        BackendMetrics m;
        bool ok = false;
        if (j.err.empty()) {
            std::string body;
            int st = parse_http_response(j.resp, true, body);
            if (st == 200) {
                ok = extract_vllm_metrics(body, m);
                if (!ok) j.err = "no vllm: metrics in response";
            } else {
                j.err = st < 0 ? "malformed HTTP response" : "HTTP status " + std::to_string(st);
            }
        }
        _last_error[i] = j.err;
        (ok ? _ok[i] : _failed[i]).fetch_add(1, std::memory_order_relaxed);
        if (_on_result) _on_result(_targets[i].backend, ok, m);
    }
}

}  // namespace tlb::telemetry
