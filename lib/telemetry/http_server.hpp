// A small HTTP/1.1 server for the management endpoint (/metrics, /health), on one control-plane
// thread with plain kernel sockets and poll(2) — never on a worker lcore.
//
// Robustness (what Prometheus' own client libraries and HAProxy's stats socket guard against):
// at most MAX_CONNS connections (further accepts are closed at once), a request header larger than
// MAX_REQUEST bytes gets 431, a request not complete within header_timeout_ms gets 408 and is
// closed (slowloris), a response not drained by the client within write_timeout_ms is abandoned.
// Every response closes the connection (Prometheus reconnects per scrape; keeping it simple keeps
// it safe). Only GET and HEAD are served.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

namespace tlb::telemetry {

struct HttpResponse {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

// Called on the server thread for each well-formed GET/HEAD request.
using HttpHandler = std::function<void(std::string_view path, HttpResponse& out)>;

struct HttpServerStats {
    std::atomic<uint64_t> requests{0}, bad_requests{0}, timeouts{0}, too_large{0}, refused{0};
};

class HttpServer {
public:
    static constexpr int MAX_CONNS = 32;
    static constexpr size_t MAX_REQUEST = 8192;

    ~HttpServer() { stop(); }
    // addr/port in host byte order; port 0 picks a free port (see port()).
    bool start(uint32_t addr, uint16_t port, HttpHandler handler, std::string* err);
    void stop();
    uint16_t port() const { return _port; }
    const HttpServerStats& stats() const { return _stats; }
    uint32_t header_timeout_ms = 5000;
    uint32_t write_timeout_ms = 10000;

private:
    void run();
    int _listen = -1;
    int _wake[2] = {-1, -1};
    uint16_t _port = 0;
    HttpHandler _handler;
    std::thread _thread;
    std::atomic<bool> _stop{false};
    HttpServerStats _stats;
};

const char* http_reason(int status);

}  // namespace tlb::telemetry
