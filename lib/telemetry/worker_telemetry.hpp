// What a data-plane worker records for telemetry: one WorkerTelemetry per worker lcore,
// preallocated by the control plane, written only by its worker (single writer), read by the
// control-plane threads without locks.
//
// Worker-side calls (no allocation, no locks, no syscalls, never block):
//   request_done(rec)   once per finished request (proxied or answered locally): bumps the
//                       labelled request counters, the TTFT / end-to-end histograms of the backend
//                       and the estimate-error histogram, and queues rec for the access log.
//   observe(obs)        once per response the scoreboard should learn from; the control plane
//                       calls Scoreboard::learn() (control-plane-only) from the queue.
//   busy.poll(...)      once per poll-loop iteration: cycles spent on iterations that did work.
// Queues are SpscRing (ring.hpp): when full the record is dropped and counted, never waited for.
#pragma once

#include <atomic>
#include <cstdint>

#include "scoreboard/layout.hpp"
#include "scoreboard/scoreboard.hpp"
#include "telemetry/histogram.hpp"
#include "telemetry/ring.hpp"

namespace tlb::telemetry {

constexpr uint16_t NO_BACKEND = 0xffff;
constexpr uint16_t NO_MODEL = 0xffff;

// One finished request. Fixed size, trivially copyable: copied into the SPSC ring by value.
struct AccessRecord {
    uint64_t t_request_us = 0;   // worker clock (µs) when the request was complete; the control
                                 // plane adds Options::unix_offset_us to print wall time
    uint64_t tags = 0;           // classify tag bitset (bit t = tag t)
    uint32_t client_ip = 0;      // network byte order
    uint16_t client_port = 0;    // network byte order
    uint16_t status = 0;         // HTTP status sent to the client (0 = none: connection reset)
    uint16_t model = NO_MODEL;   // scoreboard model id (after alias resolution)
    uint16_t backend = NO_BACKEND;  // scoreboard backend index of the last attempt
    uint32_t estimated_prompt_tokens = 0;
    uint32_t prompt_tokens = 0;      // usage.prompt_tokens (valid when usage_known)
    uint32_t completion_tokens = 0;  // usage.completion_tokens
    uint32_t ttft_us = 0;        // request complete -> first response byte (0 = none)
    uint32_t e2e_us = 0;         // request complete -> response complete
    uint8_t policy = 0;          // policy::Kind used
    uint8_t reason = 0;          // policy::Reason of the decision
    uint8_t attempts = 0;        // send attempts (1 = no retry)
    uint8_t flags = 0;           // FLAG_*
    uint8_t worker = 0;
    uint8_t pad[7] = {};

    static constexpr uint8_t FLAG_USAGE = 1;      // prompt/completion tokens are from usage
    static constexpr uint8_t FLAG_LOCAL = 2;      // answered by the appliance itself
    static constexpr uint8_t FLAG_STREAM = 4;     // SSE response
    static constexpr uint8_t FLAG_ABORTED = 8;    // client went away mid-response
    static constexpr uint8_t FLAG_ROUTED = 16;    // a policy decision was made (reason valid)
};
static_assert(sizeof(AccessRecord) == 64, "one cache line per record");

// Requests by (status class, model, backend, policy): a small open-addressing table with a fixed
// capacity. The worker inserts a key the first time it sees it (key published with release after
// the counter slot is zero) and bumps its value; readers walk the table. Overflow goes to one
// counter so the total stays exact.
class RequestCounters {
public:
    static constexpr uint32_t CAPACITY = 1024;  // power of two
    static uint32_t key(uint8_t status_class, uint8_t policy, uint16_t model, uint16_t backend) {
        // +1 so that 0 marks an empty slot.
        return ((uint32_t(status_class) & 7) << 27 | (uint32_t(policy) & 15) << 23 |
                (uint32_t(model) & 0x7ff) << 12 | (uint32_t(backend) & 0xfff)) + 1;
    }
    static void unpack(uint32_t k, uint8_t& status_class, uint8_t& policy, uint16_t& model,
                       uint16_t& backend) {
        k -= 1;
        status_class = uint8_t(k >> 27 & 7);
        policy = uint8_t(k >> 23 & 15);
        model = uint16_t(k >> 12 & 0x7ff);
        backend = uint16_t(k & 0xfff);
    }
    void add(uint32_t k, uint64_t n = 1) {
        uint32_t h = (k * 2654435761u) >> 22;  // top 10 bits
        for (uint32_t probe = 0; probe < CAPACITY; ++probe) {
            Slot& s = _slots[(h + probe) & (CAPACITY - 1)];
            uint32_t cur = s.key.load(std::memory_order_relaxed);
            if (cur == k) {
                s.value.store(s.value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
                return;
            }
            if (cur == 0) {
                s.value.store(n, std::memory_order_relaxed);
                s.key.store(k, std::memory_order_release);
                return;
            }
        }
        _overflow.store(_overflow.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    // Reader: fn(key, value) for every used slot.
    template <typename F>
    void for_each(F&& fn) const {
        for (const Slot& s : _slots) {
            uint32_t k = s.key.load(std::memory_order_acquire);
            if (k) fn(k, s.value.load(std::memory_order_relaxed));
        }
    }
    uint64_t overflow() const { return _overflow.load(std::memory_order_relaxed); }

private:
    struct Slot {
        std::atomic<uint32_t> key{0};
        std::atomic<uint64_t> value{0};
    };
    Slot _slots[CAPACITY];
    std::atomic<uint64_t> _overflow{0};
};

// Status classes used in labels.
enum StatusClass : uint8_t { STATUS_NONE = 0, STATUS_1XX, STATUS_2XX, STATUS_3XX, STATUS_4XX, STATUS_5XX };
inline uint8_t status_class(uint16_t status) {
    return status >= 100 && status < 600 ? uint8_t(status / 100) : uint8_t(STATUS_NONE);
}
const char* status_class_name(uint8_t c);  // "1xx".."5xx", "none" (reset, no response)

// Poll-loop busy accounting (DPDK's "busy" = iterations that received or sent something).
struct BusyMeter {
    std::atomic<uint64_t> busy_cycles{0};
    std::atomic<uint64_t> total_cycles{0};
    uint64_t hz = 0;  // TSC frequency, set by the control plane before launch

    // Worker: after each loop iteration with its start and end TSC.
    void poll(uint64_t start_tsc, uint64_t end_tsc, bool did_work) {
        uint64_t d = end_tsc - start_tsc;
        total_cycles.store(total_cycles.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
        if (did_work)
            busy_cycles.store(busy_cycles.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
    }
};

class WorkerTelemetry {
public:
    static constexpr size_t LOG_RING = 8192;
    static constexpr size_t OBS_RING = 4096;

    WorkerTelemetry() {
        for (auto& h : _err) h.set_buckets(RELATIVE_ERROR);
    }

    // ---- worker side ----
    void request_done(const AccessRecord& r) {
        uint8_t sc = status_class(r.status);
        _requests.add(RequestCounters::key(sc, r.policy, r.model, r.backend));
        if (r.backend < scoreboard::MAX_BACKENDS) {
            if (r.ttft_us) _ttft[r.backend].observe(r.ttft_us * 1e-6);
            if (r.e2e_us && !(r.flags & AccessRecord::FLAG_ABORTED)) _e2e[r.backend].observe(r.e2e_us * 1e-6);
        }
        if ((r.flags & AccessRecord::FLAG_USAGE) && r.prompt_tokens > 0) {
            double rel = (double(r.estimated_prompt_tokens) - double(r.prompt_tokens)) / double(r.prompt_tokens);
            _err[r.model < scoreboard::MAX_MODELS ? r.model : 0].observe(rel);
            bump(_est_tokens, r.estimated_prompt_tokens);
            bump(_actual_tokens, r.prompt_tokens);
        }
        if (r.flags & AccessRecord::FLAG_USAGE) bump(_completion_tokens, r.completion_tokens);
        if (r.attempts > 1) bump(_retried_requests, 1);
        if (_log_enabled.load(std::memory_order_relaxed)) _log.try_push(r);
    }
    void observe(const scoreboard::Observation& o) { _obs.try_push(o); }
    BusyMeter busy;

    // ---- control-plane side ----
    void enable_access_log(bool on) { _log_enabled.store(on, std::memory_order_relaxed); }
    bool access_log_enabled() const { return _log_enabled.load(std::memory_order_relaxed); }
    SpscRing<AccessRecord, LOG_RING>& log_ring() { return _log; }
    SpscRing<scoreboard::Observation, OBS_RING>& obs_ring() { return _obs; }
    const SpscRing<AccessRecord, LOG_RING>& log_ring() const { return _log; }
    const SpscRing<scoreboard::Observation, OBS_RING>& obs_ring() const { return _obs; }
    const RequestCounters& requests() const { return _requests; }
    const Histogram& ttft(uint32_t b) const { return _ttft[b]; }
    const Histogram& e2e(uint32_t b) const { return _e2e[b]; }
    const Histogram& estimate_error(uint32_t model) const { return _err[model]; }
    uint64_t estimated_prompt_tokens() const { return _est_tokens.load(std::memory_order_relaxed); }
    uint64_t actual_prompt_tokens() const { return _actual_tokens.load(std::memory_order_relaxed); }
    uint64_t completion_tokens() const { return _completion_tokens.load(std::memory_order_relaxed); }
    uint64_t retried_requests() const { return _retried_requests.load(std::memory_order_relaxed); }

private:
    static void bump(std::atomic<uint64_t>& a, uint64_t d) {
        a.store(a.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
    }
    RequestCounters _requests;
    Histogram _ttft[scoreboard::MAX_BACKENDS];
    Histogram _e2e[scoreboard::MAX_BACKENDS];
    Histogram _err[scoreboard::MAX_MODELS];
    std::atomic<uint64_t> _est_tokens{0}, _actual_tokens{0}, _completion_tokens{0}, _retried_requests{0};
    std::atomic<bool> _log_enabled{false};
    SpscRing<AccessRecord, LOG_RING> _log;
    SpscRing<scoreboard::Observation, OBS_RING> _obs;
};

}  // namespace tlb::telemetry
