// Backend /metrics scraping (control plane): every scrape_interval_ms, GET each backend's metrics
// URL over plain kernel sockets — all backends concurrently with non-blocking sockets and poll(2),
// one deadline per round — parse the Prometheus text, and report per backend:
//   vllm:num_requests_running, vllm:num_requests_waiting     (summed over label sets/engines)
//   vllm:kv_cache_usage_perc (vLLM >= 0.9; 0..1), else vllm:gpu_cache_usage_perc (older vLLM)
// A failed scrape (connect/timeout/non-200/no vLLM series) is reported as not ok; the Service
// then marks the backend stale in the scoreboard (Scoreboard::set_stale), and policies ignore
// stale metrics. Staleness by age (older than 3 intervals) is also applied per round.
//
// Lab limitation: backends live in namespace tlb-gpu behind the DPDK port, so the kernel of the
// root namespace cannot reach them; the exception path (tap) that would carry this traffic is not
// built yet. The scraper works against any URL the kernel can reach (tested against gpu-emu on
// 127.0.0.1). See docs/operations.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace tlb::telemetry {

struct BackendMetrics {
    bool have_running = false, have_waiting = false, have_kv = false;
    uint32_t running = 0, waiting = 0;
    float kv_usage = 0;  // 0..1
    bool any() const { return have_running || have_waiting || have_kv; }
};

// Extracts the vLLM series from a /metrics body. Returns false when none is present.
bool extract_vllm_metrics(std::string_view body, BackendMetrics& out);

struct Url {
    std::string host;  // as written
    uint32_t ipv4 = 0; // host order, resolved
    uint16_t port = 80;
    std::string path = "/metrics";
};
// http://host[:port][/path]; host is an IPv4 literal or a name resolved with getaddrinfo (IPv4).
bool parse_url(const std::string& url, Url& out, std::string* err);

// Splits a complete HTTP/1.x response (Content-Length, chunked or close-delimited body).
// Returns the status code (>0), 0 when more bytes are needed (complete=false only), -1 malformed.
int parse_http_response(std::string_view raw, bool complete, std::string& body);

struct ScrapeTarget {
    uint32_t backend = 0;  // scoreboard index
    Url url;
};

class Scraper {
public:
    using Result = std::function<void(uint32_t backend, bool ok, const BackendMetrics& m)>;
    static constexpr size_t MAX_BODY = 4u << 20;

    Scraper(std::vector<ScrapeTarget> targets, uint32_t interval_ms, Result on_result);
    ~Scraper() { stop(); }
    void start();  // thread: scrape_round() every interval
    void stop();
    // One concurrent round over all targets; blocks up to timeout_ms. Calls on_result per target.
    void scrape_round();

    uint32_t timeout_ms;
    const std::vector<ScrapeTarget>& targets() const { return _targets; }
    uint64_t ok(size_t i) const { return _ok[i].load(std::memory_order_relaxed); }
    uint64_t failed(size_t i) const { return _failed[i].load(std::memory_order_relaxed); }
    const std::string& last_error(size_t i) const { return _last_error[i]; }  // scraper thread only

private:
    std::vector<ScrapeTarget> _targets;
    uint32_t _interval_ms;
    Result _on_result;
    std::unique_ptr<std::atomic<uint64_t>[]> _ok, _failed;
    std::vector<std::string> _last_error;
    std::thread _thread;
    std::atomic<bool> _stop{false};
    int _wake[2] = {-1, -1};
};

}  // namespace tlb::telemetry
