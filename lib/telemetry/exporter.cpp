#include "telemetry/exporter.hpp"

#include <cstring>
#include <map>
#include <tuple>

#include "policy/policy.hpp"

namespace tlb::telemetry {

using scoreboard::MAX_BACKENDS;
using scoreboard::MAX_MODELS;

const ReasonMap REJECT_REASONS[] = {
    {"http_errors", "http_framing"},       {"openai_errors", "bad_body"},
    {"not_found", "not_found"},            {"method_not_allowed", "method_not_allowed"},
    {"unknown_model", "unknown_model"},    {"no_backend", "no_backend"},
    {"buffers_exhausted", "no_buffer"},    {"header_timeouts", "header_timeout"},
    {"body_timeouts", "body_timeout"},
};
const size_t REJECT_REASON_COUNT = sizeof REJECT_REASONS / sizeof REJECT_REASONS[0];

uint64_t find_value(const std::vector<NamedValue>& v, const char* name) {
    for (const auto& nv : v)
        if (std::strcmp(nv.name, name) == 0) return nv.value;
    return 0;
}

namespace {

uint64_t sum_dp(const Sample& s, const char* name) {
    uint64_t t = 0;
    for (const auto& w : s.workers) t += find_value(w.dataplane, name);
    return t;
}

// "#<id>" for ids without a name (built by append: GCC 12 warns -Wrestrict on "#" + to_string).
std::string hash_id(uint32_t id) {
    std::string s(1, '#');
    s += std::to_string(id);
    return s;
}

std::string backend_name(const scoreboard::Scoreboard* sb, uint32_t b) {
    if (sb && b < MAX_BACKENDS) {
        scoreboard::BackendConfig c;
        if (sb->read_config(b, c) && c.configured) return c.name;
    }
    return hash_id(b);
}

std::string model_name(const scoreboard::Scoreboard* sb, uint32_t m) {
    if (sb && m < sb->segment()->header.n_models) return sb->model_name(m);
    return hash_id(m);
}

void per_worker_counters(Writer& w, const Sample& s, bool tcp) {
    if (s.workers.empty()) return;
    const auto& first = tcp ? s.workers[0].tcp : s.workers[0].dataplane;
    for (size_t i = 0; i < first.size(); ++i) {
        std::string name = std::string(tcp ? "tcp_" : "dataplane_") + first[i].name + "_total";
        std::string help = std::string(tcp ? "TCP counter " : "Data-plane counter ") + first[i].name +
                           (tcp ? " (lib/tcp/counters.hpp)." : " (lib/dataplane/counters.hpp).");
        w.family(name, help, MetricType::Counter);
        for (const auto& ws : s.workers) {
            const auto& v = tcp ? ws.tcp : ws.dataplane;
            if (i >= v.size()) continue;
            std::string id = std::to_string(ws.id);
            w.sample_u64({{"worker", id}}, v[i].value);
        }
    }
}

}  // namespace

void collect(Writer& w, const Sample& s, const ExportContext& ctx) {
    const auto* sb = ctx.scoreboard;
    uint32_t nb = sb ? sb->n_backends() : 0;

    w.family("info", "Build and configuration of this appliance (value is always 1).", MetricType::Gauge);
    w.sample({{"version", ctx.version}, {"policy", ctx.policy}}, 1);
    w.family("start_time_seconds", "Unix time the appliance started.", MetricType::Gauge);
    w.sample({}, ctx.start_time_s);

    // ---- requests, summed over workers ----
    std::map<std::tuple<uint8_t, uint8_t, uint16_t, uint16_t>, uint64_t> req;
    uint64_t overflow = 0;
    for (uint32_t i = 0; i < ctx.n_workers; ++i) {
        const WorkerTelemetry* t = ctx.workers[i];
        if (!t) continue;
        t->requests().for_each([&](uint32_t k, uint64_t v) {
            uint8_t sc, pol;
            uint16_t m, b;
            RequestCounters::unpack(k, sc, pol, m, b);
            req[{sc, pol, m, b}] += v;
        });
        overflow += t->requests().overflow();
    }
    w.family("requests_total",
             "Finished requests by response status class, model, backend (none = answered by the "
             "appliance) and routing policy.",
             MetricType::Counter);
    for (const auto& [k, v] : req) {
        auto [sc, pol, m, b] = k;
        std::string model = m == (NO_MODEL & 0x7ff) ? "none" : model_name(sb, m);
        std::string backend = b == (NO_BACKEND & 0xfff) ? "none" : backend_name(sb, b);
        w.sample_u64({{"status_class", status_class_name(sc)},
                      {"model", model},
                      {"backend", backend},
                      {"policy", policy::kind_name(policy::Kind(pol))}},
                     v);
    }
    if (overflow)
        w.sample_u64({{"status_class", "other"}, {"model", "other"}, {"backend", "other"}, {"policy", "other"}},
                     overflow);

    // ---- latency histograms per backend ----
    auto backend_hist = [&](const char* name, const char* help, bool ttft) {
        w.family(name, help, MetricType::Histogram);
        for (uint32_t b = 0; b < nb; ++b) {
            HistogramSum h;
            h.b = &LATENCY_SECONDS;
            for (uint32_t i = 0; i < ctx.n_workers; ++i)
                if (ctx.workers[i]) h.add(ttft ? ctx.workers[i]->ttft(b) : ctx.workers[i]->e2e(b));
            std::string bn = backend_name(sb, b);
            w.histogram({{"backend", bn}}, h);
        }
    };
    backend_hist("request_ttft_seconds",
                 "Time from the complete request to the first response byte, per backend.", true);
    backend_hist("request_duration_seconds",
                 "Time from the complete request to the end of the response, per backend "
                 "(client-aborted requests excluded).",
                 false);

    // ---- token estimate quality ----
    uint32_t nm = sb ? sb->segment()->header.n_models : 0;
    w.family("prompt_tokens_estimate_relative_error",
             "(estimated - actual) / actual prompt tokens, for responses that reported usage.",
             MetricType::Histogram);
    for (uint32_t m = 0; m < nm && m < MAX_MODELS; ++m) {
        HistogramSum h;
        h.b = &RELATIVE_ERROR;
        for (uint32_t i = 0; i < ctx.n_workers; ++i)
            if (ctx.workers[i]) h.add(ctx.workers[i]->estimate_error(m));
        std::string mn = model_name(sb, m);
        w.histogram({{"model", mn}}, h);
    }
    uint64_t est = 0, act = 0, comp = 0, retried = 0, log_dropped = 0, obs_dropped = 0;
    for (uint32_t i = 0; i < ctx.n_workers; ++i) {
        const WorkerTelemetry* t = ctx.workers[i];
        if (!t) continue;
        est += t->estimated_prompt_tokens();
        act += t->actual_prompt_tokens();
        comp += t->completion_tokens();
        retried += t->retried_requests();
        log_dropped += t->log_ring().dropped();
        obs_dropped += t->obs_ring().dropped();
    }
    w.family("prompt_tokens_estimated_total",
             "Estimated prompt tokens of requests whose response reported usage.", MetricType::Counter);
    w.sample_u64({}, est);
    w.family("prompt_tokens_total", "Prompt tokens reported by backends (usage.prompt_tokens).",
             MetricType::Counter);
    w.sample_u64({}, act);
    w.family("completion_tokens_total", "Completion tokens reported by backends (usage.completion_tokens).",
             MetricType::Counter);
    w.sample_u64({}, comp);

    // ---- retries, aborts, rejections ----
    w.family("retries_total", "Request re-sends to another backend, by cause.", MetricType::Counter);
    uint64_t retry_status = sum_dp(s, "retry_status");
    uint64_t retries = sum_dp(s, "retries");
    w.sample_u64({{"cause", "retry_status"}}, retry_status);
    w.sample_u64({{"cause", "backend_failure"}}, retries >= retry_status ? retries - retry_status : 0);
    w.family("retried_requests_total", "Requests that needed more than one attempt.", MetricType::Counter);
    w.sample_u64({}, retried);
    w.family("aborts_total",
             "Responses cut short: the client went away (backend reset) or the backend failed "
             "after the first byte (client reset).",
             MetricType::Counter);
    w.sample_u64({{"kind", "client"}}, sum_dp(s, "client_aborts"));
    w.sample_u64({{"kind", "backend"}}, sum_dp(s, "backend_fail_after_first_byte"));
    w.family("rejected_requests_total", "Requests the appliance answered itself with an error, by reason.",
             MetricType::Counter);
    for (size_t i = 0; i < REJECT_REASON_COUNT; ++i)
        w.sample_u64({{"reason", REJECT_REASONS[i].reason}}, sum_dp(s, REJECT_REASONS[i].counter));

    // ---- content tags (lib/classify) ----
    {
        std::map<std::string, uint64_t> tagged;  // name order; workers share the classifier
        for (const auto& ws : s.workers)
            for (const auto& nv : ws.tagged) tagged[nv.name] += nv.value;
        if (!tagged.empty()) {
            w.family("requests_tagged_total",
                     "Chat/completions requests whose text carried this content tag (tokens.rules_dir).",
                     MetricType::Counter);
            for (const auto& [name, v] : tagged) w.sample_u64({{"tag", name}}, v);
        }
        w.family("requests_sensitive_total",
                 "Requests with a policy.sensitive_tags tag, routed only to policy.sensitive_zones.",
                 MetricType::Counter);
        w.sample_u64({}, sum_dp(s, "requests_sensitive"));
    }

    // ---- the understand step's cost on the workers ----
    {
        w.family("understood_requests_total",
                 "Chat/completions requests that went through the whole understand step.",
                 MetricType::Counter);
        w.sample_u64({}, sum_dp(s, "understood"));
        double all = 0, cls = 0;
        for (const auto& ws : s.workers)
            if (ws.tsc_hz) {
                all += double(find_value(ws.dataplane, "understand_cycles")) / double(ws.tsc_hz);
                cls += double(find_value(ws.dataplane, "classify_cycles")) / double(ws.tsc_hz);
            }
        w.family("understand_seconds_total",
                 "Worker time in the understand step (stage=all: extraction, classify, token "
                 "estimate, prefix fingerprint; stage=classify: the content tags alone).",
                 MetricType::Counter);
        w.sample({{"stage", "all"}}, all);
        w.sample({{"stage", "classify"}}, cls);
    }

    // ---- worker gauges ----
    auto worker_gauge = [&](const char* name, const char* help, uint64_t WorkerSample::*f) {
        w.family(name, help, MetricType::Gauge);
        for (const auto& ws : s.workers) {
            std::string id = std::to_string(ws.id);
            w.sample_u64({{"worker", id}}, ws.*f);
        }
    };
    worker_gauge("flows", "Entries in the worker's flow table.", &WorkerSample::flows);
    worker_gauge("client_connections", "Established client connections.", &WorkerSample::client_conns);
    worker_gauge("backend_connections", "Backend connections (pooled and bound).", &WorkerSample::backend_conns);
    worker_gauge("request_buffers_in_use", "Request buffers in use.", &WorkerSample::buffers_in_use);
    w.family("backend_pool_connections", "Backend pool connections per backend, idle or total.",
             MetricType::Gauge);
    for (uint32_t b = 0; b < nb; ++b) {
        uint64_t idle = 0, total = 0;
        for (const auto& ws : s.workers)
            if (b < ws.pool.size()) {
                idle += ws.pool[b].idle;
                total += ws.pool[b].total;
            }
        std::string bn = backend_name(sb, b);
        w.sample_u64({{"backend", bn}, {"state", "idle"}}, idle);
        w.sample_u64({{"backend", bn}, {"state", "total"}}, total);
    }

    // ---- scoreboard per backend ----
    if (sb) {
        struct Row {
            scoreboard::BackendConfig cfg;
            scoreboard::ControlLive live;
            int64_t outstanding, queued, running, remaining;
            uint64_t routed, completed;
        };
        std::vector<Row> rows(nb);
        for (uint32_t b = 0; b < nb; ++b) {
            Row& r = rows[b];
            sb->read_config(b, r.cfg);
            sb->read_control(b, r.live);
            sb->read_load(b, r.outstanding, r.queued, r.running, r.remaining);
            r.routed = r.completed = 0;
            for (uint32_t wk = 0; wk < scoreboard::MAX_WORKERS; ++wk) {
                r.routed += sb->segment()->load[b][wk].routed_total.load(std::memory_order_relaxed);
                r.completed += sb->segment()->load[b][wk].completed_total.load(std::memory_order_relaxed);
            }
        }
        auto g = [&](const char* name, const char* help, MetricType t, auto get) {
            w.family(name, help, t);
            for (uint32_t b = 0; b < nb; ++b) w.sample({{"backend", rows[b].cfg.name}}, double(get(rows[b])));
        };
        g("backend_up", "1 when the backend is healthy (health up or not yet known and not ejected).",
          MetricType::Gauge, [](const Row& r) {
              return r.cfg.health != uint8_t(scoreboard::Health::Down) &&
                     r.cfg.circuit != uint8_t(scoreboard::Circuit::Open);
          });
        g("backend_draining", "1 when an operator drained the backend (no new requests).", MetricType::Gauge,
          [](const Row& r) { return r.cfg.drain; });
        g("backend_weight", "Routing weight 0..1000 (0 = no new requests).", MetricType::Gauge,
          [](const Row& r) { return r.cfg.weight; });
        g("backend_outstanding_requests", "Requests routed to the backend and not yet complete.",
          MetricType::Gauge, [](const Row& r) { return r.outstanding; });
        g("backend_queued_prompt_tokens", "Prompt tokens routed to the backend still waiting for a first byte.",
          MetricType::Gauge, [](const Row& r) { return r.queued; });
        g("backend_running_requests", "Requests streaming from the backend (first byte seen).",
          MetricType::Gauge, [](const Row& r) { return r.running; });
        g("backend_kv_cache_usage_ratio", "KV-cache usage 0..1 scraped from the backend's /metrics.",
          MetricType::Gauge, [](const Row& r) { return r.live.metrics_valid ? r.live.kv_usage : 0.f; });
        g("backend_waiting_requests", "Requests waiting in the backend's queue (scraped).", MetricType::Gauge,
          [](const Row& r) { return r.live.metrics_valid ? r.live.waiting : 0u; });
        g("backend_metrics_stale", "1 when the backend's scraped metrics are missing or too old.",
          MetricType::Gauge, [](const Row& r) { return r.live.stale || !r.live.metrics_valid; });
        g("backend_routed_total", "Requests routed to the backend (all attempts).", MetricType::Counter,
          [](const Row& r) { return r.routed; });
        g("backend_completed_total", "Attempts on the backend that ended (any outcome).", MetricType::Counter,
          [](const Row& r) { return r.completed; });
        if (!ctx.scrapes_ok.empty()) {
            w.family("backend_scrapes_total", "Scrapes of the backend's /metrics by result.", MetricType::Counter);
            for (uint32_t b = 0; b < nb && b < ctx.scrapes_ok.size(); ++b) {
                w.sample_u64({{"backend", rows[b].cfg.name}, {"result", "ok"}}, ctx.scrapes_ok[b]);
                w.sample_u64({{"backend", rows[b].cfg.name}, {"result", "error"}},
                             b < ctx.scrapes_failed.size() ? ctx.scrapes_failed[b] : 0);
            }
        }
    }

    // ---- ports ----
    auto port_counter = [&](const char* name, const char* help, uint64_t PortSample::*f) {
        w.family(name, help, MetricType::Counter);
        for (const auto& p : s.ports) w.sample_u64({{"port", p.name}}, p.*f);
    };
    port_counter("port_received_packets_total", "Packets received by the port (rte_eth_stats ipackets).",
                 &PortSample::ipackets);
    port_counter("port_transmitted_packets_total", "Packets sent by the port (opackets).", &PortSample::opackets);
    port_counter("port_received_bytes_total", "Bytes received by the port (ibytes).", &PortSample::ibytes);
    port_counter("port_transmitted_bytes_total", "Bytes sent by the port (obytes).", &PortSample::obytes);
    port_counter("port_missed_packets_total", "Packets dropped by the NIC: rx queue full (imissed).",
                 &PortSample::imissed);
    port_counter("port_receive_errors_total", "Erroneous received packets (ierrors).", &PortSample::ierrors);
    port_counter("port_transmit_errors_total", "Failed transmissions (oerrors).", &PortSample::oerrors);
    port_counter("port_rx_nombuf_total", "Receive mbuf allocation failures (rx_nombuf).", &PortSample::rx_nombuf);

    // ---- lcores ----
    w.family("lcore_busy_ratio", "Fraction of poll-loop time spent on iterations that did work, last second.",
             MetricType::Gauge);
    for (uint32_t i = 0; i < ctx.n_workers; ++i)
        if (ctx.workers[i]) w.sample({{"worker", std::to_string(i)}}, ctx.busy_ratio ? ctx.busy_ratio[i] : 0);
    auto cycles = [&](const char* name, const char* help, bool busy) {
        w.family(name, help, MetricType::Counter);
        for (uint32_t i = 0; i < ctx.n_workers; ++i) {
            const WorkerTelemetry* t = ctx.workers[i];
            if (!t) continue;
            double hz = t->busy.hz ? double(t->busy.hz) : 1e9;
            uint64_t c = busy ? t->busy.busy_cycles.load(std::memory_order_relaxed)
                              : t->busy.total_cycles.load(std::memory_order_relaxed);
            w.sample({{"worker", std::to_string(i)}}, double(c) / hz);
        }
    };
    cycles("lcore_busy_seconds_total", "Poll-loop time spent on iterations that did work.", true);
    cycles("lcore_poll_seconds_total", "Poll-loop time in total.", false);

    // ---- telemetry plumbing ----
    w.family("access_log_records_total", "Access-log lines written.", MetricType::Counter);
    w.sample_u64({}, ctx.access_log_written);
    w.family("access_log_dropped_total", "Access-log records dropped because the worker's ring was full.",
             MetricType::Counter);
    w.sample_u64({}, log_dropped);
    w.family("observations_dropped_total",
             "Response observations (for learned rates) dropped because the worker's ring was full.",
             MetricType::Counter);
    w.sample_u64({}, obs_dropped);

    // ---- every raw counter ----
    per_worker_counters(w, s, false);
    per_worker_counters(w, s, true);
}

}  // namespace tlb::telemetry
