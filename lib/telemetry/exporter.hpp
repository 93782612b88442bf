// What tokenlb exports to Prometheus, in one place: metric names, help texts and the collect()
// that turns a Sample (filled by the app from its workers and ports) plus the worker telemetry
// and the scoreboard into families.
//
// lib/telemetry does not depend on lib/dataplane (dataplane is built after telemetry), so the app
// passes worker counters as spans of (name, value) pairs, e.g.
//   ws.dataplane = telemetry::named_values(w.counters(), dataplane::dp_counter_names());
//   ws.tcp       = telemetry::named_values(w.tcp_counters(), tcp::counter_names());
//
// Families (all prefixed tokenlb_; see docs/operations.md for the full table):
//   requests_total{status_class,model,backend,policy}                 counter
//   request_ttft_seconds{backend}, request_duration_seconds{backend}  histogram
//   prompt_tokens_estimate_relative_error{model}                     histogram
//   prompt_tokens_estimated_total, prompt_tokens_total, completion_tokens_total
//   retries_total{cause}, aborts_total{kind}, rejected_requests_total{reason}
//   flows, client_connections, backend_connections, request_buffers_in_use {worker}   gauge
//   backend_pool_connections{backend,state}                            gauge
//   backend_up / backend_draining / backend_weight / backend_outstanding_requests /
//   backend_queued_prompt_tokens / backend_running_requests / backend_kv_cache_usage_ratio /
//   backend_waiting_requests / backend_metrics_stale {backend}         gauge
//   port_{received,transmitted}_{packets,bytes}_total, port_missed_packets_total,
//   port_{receive,transmit}_errors_total, port_rx_nombuf_total {port}  counter
//   lcore_busy_ratio{worker} gauge, lcore_busy_seconds_total / lcore_poll_seconds_total
//   dataplane_<counter>_total{worker}, tcp_<counter>_total{worker}     every raw counter
//   requests_tagged_total{tag}, requests_sensitive_total                counter
//   understood_requests_total, understand_seconds_total{stage}         counter
//   access_log_records_total, access_log_dropped_total, observations_dropped_total,
//   backend_scrapes_total{backend,result}, info{version,policy}, start_time_seconds
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "scoreboard/scoreboard.hpp"
#include "telemetry/prometheus.hpp"
#include "telemetry/worker_telemetry.hpp"

namespace tlb::telemetry {

struct NamedValue {
    const char* name;
    uint64_t value;
};

// A struct made only of uint64_t counters (dataplane::Counters, tcp::Counters) + its name table.
template <typename T>
std::vector<NamedValue> named_values(const T& s, const char* const* names) {
    static_assert(sizeof(T) % sizeof(uint64_t) == 0);
    const uint64_t* v = reinterpret_cast<const uint64_t*>(&s);
    std::vector<NamedValue> out(sizeof(T) / sizeof(uint64_t));
    for (size_t i = 0; i < out.size(); ++i) out[i] = {names[i], v[i]};
    return out;
}
uint64_t find_value(const std::vector<NamedValue>& v, const char* name);  // 0 if absent

struct PoolSample {
    uint32_t idle = 0, total = 0;  // backend connections of one worker to one backend
};

struct WorkerSample {
    uint32_t id = 0;
    std::vector<NamedValue> dataplane;  // dataplane::Counters
    std::vector<NamedValue> tcp;        // tcp::Counters
    uint64_t flows = 0, client_conns = 0, backend_conns = 0, buffers_in_use = 0;
    std::vector<PoolSample> pool;       // by backend index
    std::vector<NamedValue> tagged;     // requests per content tag (classify tag name -> count)
    uint64_t tsc_hz = 0;                // converts the *_cycles dataplane counters to seconds
};

struct PortSample {
    std::string name;
    uint64_t ipackets = 0, opackets = 0, ibytes = 0, obytes = 0;
    uint64_t imissed = 0, ierrors = 0, oerrors = 0, rx_nombuf = 0;
};

// Filled by the app's sampler callback on each scrape / telemetry command (control plane).
struct Sample {
    std::vector<WorkerSample> workers;
    std::vector<PortSample> ports;
};

// Things the exporter reads besides the Sample.
struct ExportContext {
    const scoreboard::Scoreboard* scoreboard = nullptr;
    const WorkerTelemetry* const* workers = nullptr;  // per worker id, may be null entries
    uint32_t n_workers = 0;
    const double* busy_ratio = nullptr;               // per worker, last interval
    std::string version = "0.1.0";
    std::string policy;                               // current policy name
    double start_time_s = 0;
    uint64_t access_log_written = 0;
    std::vector<uint64_t> scrapes_ok, scrapes_failed;  // per backend (may be empty)
};

// Rejected-input reasons: dataplane counter name -> reason label.
struct ReasonMap {
    const char* counter;
    const char* reason;
};
extern const ReasonMap REJECT_REASONS[];
extern const size_t REJECT_REASON_COUNT;

void collect(Writer& w, const Sample& s, const ExportContext& ctx);

}  // namespace tlb::telemetry
