#include "telemetry/http_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

namespace tlb::telemetry {

const char* http_reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

namespace {

uint64_t now_ms() {
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
}

struct Conn {
    int fd = -1;
    std::string in;
    std::string out;
    size_t sent = 0;
    bool writing = false;
    uint64_t deadline = 0;
};

std::string make_response(const HttpResponse& r, bool head) {
    std::string s = "HTTP/1.1 " + std::to_string(r.status) + " " + http_reason(r.status) + "\r\n";
    s += "Content-Type: " + r.content_type + "\r\n";
    s += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    s += "Connection: close\r\nCache-Control: no-store\r\n";
    if (r.status == 405) s += "Allow: GET, HEAD\r\n";
    s += "\r\n";
    if (!head) s += r.body;
    return s;
}

}  // namespace

bool HttpServer::start(uint32_t addr, uint16_t port, HttpHandler handler, std::string* err) {
    auto fail = [&](const char* what) {
        if (err) *err = std::string("metrics endpoint: ") + what + ": " + std::strerror(errno);
        if (_listen >= 0) ::close(_listen);
        _listen = -1;
        return false;
    };
    _handler = std::move(handler);
    _listen = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (_listen < 0) return fail("socket");
    int one = 1;
    setsockopt(_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(addr);
    if (::bind(_listen, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) return fail("bind");
    if (::listen(_listen, 64) < 0) return fail("listen");
    socklen_t len = sizeof sa;
    getsockname(_listen, reinterpret_cast<sockaddr*>(&sa), &len);
    _port = ntohs(sa.sin_port);
    if (::pipe2(_wake, O_NONBLOCK | O_CLOEXEC) < 0) return fail("pipe");
    _stop.store(false);
    _thread = std::thread([this] { run(); });
    return true;
}

void HttpServer::stop() {
    if (!_thread.joinable()) return;
    _stop.store(true);
    char c = 1;
    (void)!::write(_wake[1], &c, 1);
    _thread.join();
    ::close(_listen);
    ::close(_wake[0]);
    ::close(_wake[1]);
    _listen = _wake[0] = _wake[1] = -1;
}

void HttpServer::run() {
    std::vector<Conn> conns;
    std::vector<pollfd> pfds;
    auto respond = [&](Conn& c, const HttpResponse& r, bool head) {
        c.out = make_response(r, head);
        c.sent = 0;
        c.writing = true;
        c.deadline = now_ms() + write_timeout_ms;
        shutdown(c.fd, SHUT_RD);
    };
    auto error = [&](Conn& c, int status, const char* msg) {
        HttpResponse r;
        r.status = status;
        r.body = msg;
        respond(c, r, false);
    };
    while (!_stop.load()) {
        pfds.clear();
        pfds.push_back({_wake[0], POLLIN, 0});
        pfds.push_back({_listen, POLLIN, 0});
        uint64_t now = now_ms();
        int timeout = 1000;
        for (auto& c : conns) {
            pfds.push_back({c.fd, short(c.writing ? POLLOUT : POLLIN), 0});
            timeout = std::min<int64_t>(timeout, c.deadline > now ? int64_t(c.deadline - now) : 0);
        }
        int n = ::poll(pfds.data(), pfds.size(), timeout);
        if (n < 0 && errno != EINTR) break;
        if (_stop.load()) break;
        now = now_ms();
        // Existing connections first (pfds[2 + i] matches conns[i] as built above).
        for (size_t i = 0; i < conns.size(); ++i) {
            Conn& c = conns[i];
            short re = pfds[2 + i].revents;
            if (!c.writing && (re & (POLLIN | POLLHUP | POLLERR))) {
                char buf[4096];
                ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
                if (r <= 0) {
                    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                    ::close(c.fd);
                    c.fd = -1;
                    continue;
                }
                c.in.append(buf, size_t(r));
                size_t end = c.in.find("\r\n\r\n");
                if (end == std::string::npos) end = c.in.find("\n\n");
                if (end == std::string::npos) {
                    if (c.in.size() > MAX_REQUEST) {
                        _stats.too_large++;
                        error(c, 431, "request header too large\n");
                    }
                    continue;
                }
                // Request line: METHOD SP target SP HTTP/x.y
                size_t eol = c.in.find_first_of("\r\n");
                std::string_view line(c.in.data(), eol);
                size_t sp1 = line.find(' ');
                size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
                if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
                    line.substr(sp2 + 1).rfind("HTTP/1.", 0) != 0) {
                    _stats.bad_requests++;
                    error(c, 400, "bad request\n");
                    continue;
                }
                std::string_view method = line.substr(0, sp1);
                std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
                size_t q = target.find('?');
                std::string_view path = target.substr(0, q);
                bool head = method == "HEAD";
                if (method != "GET" && !head) {
                    _stats.bad_requests++;
                    error(c, 405, "only GET and HEAD\n");
                    continue;
                }
                _stats.requests++;
                HttpResponse resp;
                try {
                    _handler(path, resp);
                } catch (const std::exception& e) {
                    resp = HttpResponse{};
                    resp.status = 500;
                    resp.body = std::string(e.what()) + "\n";
                }
                respond(c, resp, head);
            } else if (c.writing && (re & (POLLOUT | POLLHUP | POLLERR))) {
                ssize_t w = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
                if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                if (w <= 0 || (c.sent += size_t(w)) == c.out.size()) {
                    ::close(c.fd);
                    c.fd = -1;
                }
            }
            if (c.fd >= 0 && now >= c.deadline) {
                if (c.writing) {
                    _stats.timeouts++;
                    ::close(c.fd);
                    c.fd = -1;
                } else {
                    _stats.timeouts++;
                    error(c, 408, "request timeout\n");
                    // One non-blocking attempt; the write deadline then closes it.
                }
            }
        }
        std::erase_if(conns, [](const Conn& c) { return c.fd < 0; });
        if (pfds[1].revents & POLLIN) {
            for (;;) {
                int fd = ::accept4(_listen, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) break;
                if (conns.size() >= size_t(MAX_CONNS)) {
                    _stats.refused++;
                    ::close(fd);
                    continue;
                }
                Conn c;
                c.fd = fd;
                c.deadline = now + header_timeout_ms;
                conns.push_back(std::move(c));
            }
        }
    }
    for (auto& c : conns) ::close(c.fd);
}

}  // namespace tlb::telemetry
