// The telemetry service: everything observability and operator-facing that runs beside the data
// plane, on control-plane threads only (never on a worker lcore).
//
//   thread "tlb-metrics"  HttpServer: GET /metrics (Prometheus), GET /health
//   thread "tlb-telemetry" every 20 ms: drains each worker's access-log ring (JSON lines to the
//                          [telemetry] access_log target) and observation ring (Scoreboard::learn
//                          through ControlWriter); every second: per-lcore busy ratio
//   thread "tlb-scraper"  Scraper: backends' /metrics -> Scoreboard::set_metrics / set_stale
//   DPDK telemetry thread /tokenlb/ commands (register_dpdk_commands, after rte_eal_init)
//
// Wiring in the app (see docs/operations.md "Wiring"):
//   telemetry::Service tel(opts);                 // after the scoreboard exists
//   env.telemetry = &tel.worker(w); env.controls = &tel.controls();   // per worker
//   tel.set_sampler([&](telemetry::Sample& s) { ...workers' counters, gauges, port stats... });
//   tel.start(&err); tel.register_dpdk_commands(&err);
//   ... tel.stop() before the workers' state is destroyed.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "scoreboard/scoreboard.hpp"
#include "telemetry/access_log.hpp"
#include "telemetry/control.hpp"
#include "telemetry/dpdk_telemetry.hpp"
#include "telemetry/exporter.hpp"
#include "telemetry/http_server.hpp"
#include "telemetry/scraper.hpp"
#include "telemetry/worker_telemetry.hpp"

namespace tlb::telemetry {

struct ServiceOptions {
    const config::Config* cfg = nullptr;           // [telemetry], [policy] name, backends' metrics_url
    scoreboard::Scoreboard* scoreboard = nullptr;  // backend index = index in cfg->backends
    uint32_t n_workers = 1;
    int64_t unix_offset_us = 0;  // wall-clock µs = AccessRecord::t_request_us + this
    uint64_t tsc_hz = 0;         // worker BusyMeter cycles per second
    std::string version = "0.1.0";
    bool serve_metrics = true;   // false: no HTTP listener (tests of other parts)
    bool scrape_backends = true;
    // Tag names for the access log (bit t), e.g. classify's rule tags; empty: scoreboard tag names.
    std::vector<std::string> tag_names;
};

class Service {
public:
    explicit Service(const ServiceOptions& o);
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    // Worker w's telemetry block (give the pointer to the worker before launching it).
    WorkerTelemetry& worker(uint32_t w) { return *_workers[w]; }
    Controls& controls() { return _controls; }
    ControlWriter& writer() { return _writer; }

    // The app's sampler: fills counters, gauges and port stats. Called on control-plane threads
    // (metrics server, DPDK telemetry), possibly concurrently: it must only read.
    void set_sampler(std::function<void(Sample&)> fn);

    bool start(std::string* err);                  // HTTP server, service thread, scraper
    bool register_dpdk_commands(std::string* err); // needs rte_eal_init done
    void stop();                                   // joins threads, flushes the access log

    // Prometheus text of the current state (what GET /metrics returns).
    std::string metrics_text();
    uint16_t metrics_port() const { return _http.port(); }
    // One drain pass (also run by the service thread): returns records written.
    size_t drain_once();
    uint64_t access_log_written() const { return _log_written.load(); }
    uint64_t observations_learned() const { return _learned.load(); }
    double busy_ratio(uint32_t w) const;
    const CommandContext& command_context() const { return _cmd; }
    const Scraper* scraper() const { return _scraper.get(); }

private:
    void loop();
    void check_scrape_age();
    NameTables names() const;

    ServiceOptions _o;
    std::vector<std::unique_ptr<WorkerTelemetry>> _workers;
    std::vector<const WorkerTelemetry*> _worker_ptrs;
    Controls _controls;
    ControlWriter _writer;
    std::function<void(Sample&)> _sampler;
    HttpServer _http;
    std::unique_ptr<Scraper> _scraper;
    AccessLogFile _log;
    std::mutex _drain_mu;
    std::atomic<uint64_t> _log_written{0}, _learned{0};
    std::unique_ptr<std::atomic<double>[]> _busy;
    // Per backend: monotonic ns of the last successful scrape (0 = never); the service thread
    // marks a backend stale when this is older than 3 scrape intervals (scraper stalled or slow).
    std::unique_ptr<std::atomic<uint64_t>[]> _last_scrape_ok;
    std::vector<uint8_t> _stale_by_age;
    std::thread _thread;
    std::atomic<bool> _stop{false};
    double _start_time_s = 0;
    CommandContext _cmd;
};

}  // namespace tlb::telemetry
