#include "telemetry/dpdk_telemetry.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include <rte_telemetry.h>

#include "policy/policy.hpp"
#include "telemetry/access_log.hpp"

namespace tlb::telemetry {

std::string Reply::sanitize_key(std::string_view k) {
    std::string r(k.substr(0, 63));
    for (char& c : r)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '/'))
            c = '_';
    return r;
}

std::string Reply::to_json() const {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : _e) {
        if (!first) out += ',';
        first = false;
        append_json_string(out, k);
        out += ':';
        std::visit(
            [&](const auto& x) {
                using T = std::decay_t<decltype(x)>;
                if constexpr (std::is_same_v<T, std::string>) append_json_string(out, x);
                else if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, uint64_t>) out += std::to_string(x);
                else {
                    out += '[';
                    for (size_t i = 0; i < x.size(); ++i) {
                        if (i) out += ',';
                        if constexpr (std::is_same_v<T, std::vector<std::string>>) append_json_string(out, x[i]);
                        else out += std::to_string(x[i]);
                    }
                    out += ']';
                }
            },
            v);
    }
    out += '}';
    return out;
}

namespace {

std::string trim(std::string_view s) {
    size_t a = 0, b = s.size();
    while (a < b && (s[a] == ' ' || s[a] == ',')) ++a;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\n')) --b;
    return std::string(s.substr(a, b - a));
}

// "NAME" or "NAME,W" or "NAME W"
void split_params(std::string_view params, std::string& a, std::string& b) {
    std::string p = trim(params);
    size_t sep = p.find_first_of(", ");
    a = p.substr(0, sep);
    b = sep == std::string::npos ? "" : trim(std::string_view(p).substr(sep + 1));
}

uint64_t sum_named(const Sample& s, const char* name) {
    uint64_t t = 0;
    for (const auto& w : s.workers) t += find_value(w.dataplane, name);
    return t;
}

double now_unix_s() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const char* health_name(uint8_t h) {
    switch (scoreboard::Health(h)) {
    case scoreboard::Health::Up: return "up";
    case scoreboard::Health::Down: return "down";
    default: return "unknown";
    }
}
const char* circuit_name(uint8_t c) {
    switch (scoreboard::Circuit(c)) {
    case scoreboard::Circuit::Closed: return "closed";
    case scoreboard::Circuit::HalfOpen: return "half_open";
    default: return "open";
    }
}

std::string ipv4_str(uint32_t a, uint16_t port) {
    return std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 255) + "." + std::to_string(a >> 8 & 255) +
           "." + std::to_string(a & 255) + ":" + std::to_string(port);
}

void cmd_status(const CommandContext& ctx, Reply& r) {
    Sample s;
    if (ctx.sampler) ctx.sampler(s);
    r.add("version", ctx.version);
    r.add_u64("pid", uint64_t(::getpid()));
    double up = ctx.start_time_s > 0 ? now_unix_s() - ctx.start_time_s : 0;
    r.add_u64("uptime_s", uint64_t(up > 0 ? up : 0));
    r.add("policy", ctx.controls ? policy::kind_name(policy::Kind(ctx.controls->policy.load())) : "?");
    r.add_u64("workers", ctx.n_workers);
    const auto* sb = ctx.writer ? ctx.writer->scoreboard() : nullptr;
    uint32_t nb = sb ? sb->n_backends() : 0, avail = 0, drained = 0;
    for (uint32_t b = 0; b < nb; ++b) {
        scoreboard::BackendConfig c;
        if (!sb->read_config(b, c)) continue;
        if (c.drain) ++drained;
        if (c.configured && !c.drain && c.weight > 0 && c.health != uint8_t(scoreboard::Health::Down) &&
            c.circuit != uint8_t(scoreboard::Circuit::Open))
            ++avail;
    }
    r.add_u64("backends", nb);
    r.add_u64("backends_available", avail);
    r.add_u64("backends_draining", drained);
    // Finished requests by status class, from the worker telemetry tables.
    uint64_t by_class[6] = {};
    uint64_t log_dropped = 0;
    for (uint32_t i = 0; i < ctx.n_workers; ++i) {
        const WorkerTelemetry* t = ctx.workers ? ctx.workers[i] : nullptr;
        if (!t) continue;
        t->requests().for_each([&](uint32_t k, uint64_t v) {
            uint8_t sc, pol;
            uint16_t m, b;
            RequestCounters::unpack(k, sc, pol, m, b);
            by_class[sc < 6 ? sc : 0] += v;
        });
        log_dropped += t->log_ring().dropped();
    }
    uint64_t total = 0;
    for (uint64_t v : by_class) total += v;
    r.add_u64("requests_finished", total);
    r.add_u64("requests_2xx", by_class[STATUS_2XX]);
    r.add_u64("requests_4xx", by_class[STATUS_4XX]);
    r.add_u64("requests_5xx", by_class[STATUS_5XX]);
    r.add_u64("requests_reset", by_class[STATUS_NONE]);
    r.add_u64("requests_framed", sum_named(s, "requests"));
    r.add_u64("requests_routed", sum_named(s, "requests_routed"));
    r.add_u64("retries", sum_named(s, "retries"));
    r.add_u64("client_aborts", sum_named(s, "client_aborts"));
    r.add_u64("no_backend", sum_named(s, "no_backend"));
    uint64_t flows = 0, cc = 0, bc = 0, bufs = 0, rx = 0, tx = 0;
    for (const auto& w : s.workers) {
        flows += w.flows;
        cc += w.client_conns;
        bc += w.backend_conns;
        bufs += w.buffers_in_use;
    }
    for (const auto& p : s.ports) {
        rx += p.ipackets;
        tx += p.opackets;
    }
    r.add_u64("flows", flows);
    r.add_u64("client_connections", cc);
    r.add_u64("backend_connections", bc);
    r.add_u64("request_buffers_in_use", bufs);
    r.add_u64("port_rx_packets", rx);
    r.add_u64("port_tx_packets", tx);
    std::vector<uint64_t> busy;
    for (uint32_t i = 0; i < ctx.n_workers; ++i)
        busy.push_back(ctx.busy_ratio ? uint64_t(ctx.busy_ratio(i) * 1000 + 0.5) : 0);
    r.add("busy_permille", std::move(busy));
    r.add_u64("access_log_written", ctx.access_log_written ? ctx.access_log_written() : 0);
    r.add_u64("access_log_dropped", log_dropped);
}

void cmd_stats(const CommandContext& ctx, Reply& r) {
    Sample s;
    if (ctx.sampler) ctx.sampler(s);
    auto sum_list = [&](bool tcp, const char* prefix) {
        if (s.workers.empty()) return;
        const auto& first = tcp ? s.workers[0].tcp : s.workers[0].dataplane;
        for (size_t i = 0; i < first.size(); ++i) {
            uint64_t t = 0;
            for (const auto& w : s.workers) {
                const auto& v = tcp ? w.tcp : w.dataplane;
                if (i < v.size()) t += v[i].value;
            }
            r.add_u64(std::string(prefix) + first[i].name, t);
        }
    };
    sum_list(false, "");
    sum_list(true, "tcp_");
    for (const auto& p : s.ports) {
        std::string k = "port_" + p.name + "_";
        r.add_u64(k + "ipackets", p.ipackets);
        r.add_u64(k + "opackets", p.opackets);
        r.add_u64(k + "ibytes", p.ibytes);
        r.add_u64(k + "obytes", p.obytes);
        r.add_u64(k + "imissed", p.imissed);
        r.add_u64(k + "ierrors", p.ierrors);
        r.add_u64(k + "oerrors", p.oerrors);
        r.add_u64(k + "rx_nombuf", p.rx_nombuf);
    }
}

void cmd_backends(const CommandContext& ctx, Reply& r) {
    const auto* sb = ctx.writer ? ctx.writer->scoreboard() : nullptr;
    uint32_t nb = sb ? sb->n_backends() : 0;
    std::vector<std::string> name, addr, health, circuit;
    std::vector<uint64_t> drain, weight, stale, kv, waiting, sc_running, routed, completed, ttft_p50, ttft_p99,
        e2e_p50, e2e_p99, samples;
    std::vector<int64_t> outstanding, queued, running;
    for (uint32_t b = 0; b < nb; ++b) {
        scoreboard::BackendConfig c;
        scoreboard::ControlLive l;
        sb->read_config(b, c);
        sb->read_control(b, l);
        int64_t o, q, ru, rem;
        sb->read_load(b, o, q, ru, rem);
        uint64_t rt = 0, ct = 0;
        for (uint32_t w = 0; w < scoreboard::MAX_WORKERS; ++w) {
            rt += sb->segment()->load[b][w].routed_total.load(std::memory_order_relaxed);
            ct += sb->segment()->load[b][w].completed_total.load(std::memory_order_relaxed);
        }
        HistogramSum ht, he;
        ht.b = he.b = &LATENCY_SECONDS;
        for (uint32_t i = 0; i < ctx.n_workers; ++i)
            if (ctx.workers && ctx.workers[i]) {
                ht.add(ctx.workers[i]->ttft(b));
                he.add(ctx.workers[i]->e2e(b));
            }
        name.push_back(c.name);
        addr.push_back(ipv4_str(c.ipv4, c.port));
        health.push_back(health_name(c.health));
        circuit.push_back(circuit_name(c.circuit));
        drain.push_back(c.drain);
        weight.push_back(c.weight);
        outstanding.push_back(o);
        queued.push_back(q);
        running.push_back(ru);
        stale.push_back(l.stale || !l.metrics_valid);
        kv.push_back(l.metrics_valid ? uint64_t(l.kv_usage * 1000 + 0.5f) : 0);
        waiting.push_back(l.metrics_valid ? l.waiting : 0);
        sc_running.push_back(l.metrics_valid ? l.running : 0);
        samples.push_back(l.samples);
        routed.push_back(rt);
        completed.push_back(ct);
        auto ms = [](double s) { return uint64_t(s * 1000 + 0.5); };
        ttft_p50.push_back(ms(ht.quantile(0.5)));
        ttft_p99.push_back(ms(ht.quantile(0.99)));
        e2e_p50.push_back(ms(he.quantile(0.5)));
        e2e_p99.push_back(ms(he.quantile(0.99)));
    }
    r.add_u64("count", nb);
    r.add("name", std::move(name));
    r.add("address", std::move(addr));
    r.add("health", std::move(health));
    r.add("circuit", std::move(circuit));
    r.add("drain", std::move(drain));
    r.add("weight", std::move(weight));
    r.add("outstanding", std::move(outstanding));
    r.add("queued_prompt_tokens", std::move(queued));
    r.add("running", std::move(running));
    r.add("routed", std::move(routed));
    r.add("completed", std::move(completed));
    r.add("metrics_stale", std::move(stale));
    r.add("kv_usage_permille", std::move(kv));
    r.add("scraped_waiting", std::move(waiting));
    r.add("scraped_running", std::move(sc_running));
    r.add("learned_samples", std::move(samples));
    r.add("ttft_p50_ms", std::move(ttft_p50));
    r.add("ttft_p99_ms", std::move(ttft_p99));
    r.add("e2e_p50_ms", std::move(e2e_p50));
    r.add("e2e_p99_ms", std::move(e2e_p99));
}

void cmd_drain(const CommandContext& ctx, std::string_view params, bool drain, Reply& r) {
    std::string name, rest;
    split_params(params, name, rest);
    if (name.empty()) return r.error("usage: backend name required");
    int b = ctx.writer ? ctx.writer->find_backend(name) : -1;
    if (b < 0) return r.error("no backend named '" + name + "'");
    ctx.writer->set_drain(uint32_t(b), drain);
    r.add("backend", name);
    r.add_u64("drain", drain);
    r.add("result", "ok");
}

void cmd_weight(const CommandContext& ctx, std::string_view params, Reply& r) {
    std::string name, w;
    split_params(params, name, w);
    if (name.empty() || w.empty()) return r.error("usage: NAME,WEIGHT (0..1000)");
    char* end = nullptr;
    unsigned long v = std::strtoul(w.c_str(), &end, 10);
    if (*end || v > 1000) return r.error("weight must be an integer 0..1000, got '" + w + "'");
    int b = ctx.writer ? ctx.writer->find_backend(name) : -1;
    if (b < 0) return r.error("no backend named '" + name + "'");
    ctx.writer->set_weight(uint32_t(b), uint16_t(v));
    r.add("backend", name);
    r.add_u64("weight", v);
    r.add("result", "ok");
}

void cmd_policy(const CommandContext& ctx, std::string_view params, bool set, Reply& r) {
    if (!ctx.controls) return r.error("policy control not available");
    if (set) {
        std::string name = trim(params);
        policy::Kind k;
        if (!policy::parse_kind(name, k)) {
            std::string all;
            for (int i = 0; i < int(policy::Kind::COUNT); ++i)
                all += std::string(i ? ", " : "") + policy::kind_name(policy::Kind(i));
            return r.error("unknown policy '" + name + "' (one of: " + all + ")");
        }
        ctx.controls->policy.store(uint8_t(k));
        ctx.controls->policy_changes.fetch_add(1);
        r.add("result", "ok");
    }
    r.add("policy", policy::kind_name(policy::Kind(ctx.controls->policy.load())));
    std::vector<std::string> all;
    for (int i = 0; i < int(policy::Kind::COUNT); ++i) all.emplace_back(policy::kind_name(policy::Kind(i)));
    r.add("available", std::move(all));
}

}  // namespace

const std::vector<CommandInfo>& commands() {
    static const std::vector<CommandInfo> C = {
        {"/tokenlb/status", "tokenlb status: version, uptime, policy, request totals, gauges. No parameters"},
        {"/tokenlb/stats", "tokenlb counters (data plane, TCP, ports), summed over workers. No parameters"},
        {"/tokenlb/backends", "tokenlb backends, one array per field. No parameters"},
        {"/tokenlb/backend_drain", "Drain a backend (no new requests). Parameter: NAME"},
        {"/tokenlb/backend_undrain", "Undrain a backend. Parameter: NAME"},
        {"/tokenlb/backend_weight", "Set a backend's weight 0..1000. Parameters: NAME,WEIGHT"},
        {"/tokenlb/policy", "Current routing policy. No parameters"},
        {"/tokenlb/policy_set", "Switch the routing policy. Parameter: NAME"},
    };
    return C;
}

void run_command(const CommandContext& ctx, std::string_view cmd, std::string_view params, Reply& out) {
    if (cmd == "/tokenlb/status") cmd_status(ctx, out);
    else if (cmd == "/tokenlb/stats") cmd_stats(ctx, out);
    else if (cmd == "/tokenlb/backends") cmd_backends(ctx, out);
    else if (cmd == "/tokenlb/backend_drain") cmd_drain(ctx, params, true, out);
    else if (cmd == "/tokenlb/backend_undrain") cmd_drain(ctx, params, false, out);
    else if (cmd == "/tokenlb/backend_weight") cmd_weight(ctx, params, out);
    else if (cmd == "/tokenlb/policy") cmd_policy(ctx, params, false, out);
    else if (cmd == "/tokenlb/policy_set") cmd_policy(ctx, params, true, out);
    else out.error("unknown command " + std::string(cmd));
}

namespace {

const CommandContext* g_ctx = nullptr;

int fill(const Reply& r, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    for (const auto& [k, v] : r.entries()) {
        const char* key = k.c_str();
        int rc = 0;
        if (auto* s = std::get_if<std::string>(&v)) {
            std::string t = s->substr(0, RTE_TEL_MAX_STRING_LEN - 1);
            rc = rte_tel_data_add_dict_string(d, key, t.c_str());
        } else if (auto* i = std::get_if<int64_t>(&v)) {
            rc = rte_tel_data_add_dict_int(d, key, int(*i));
        } else if (auto* u = std::get_if<uint64_t>(&v)) {
            rc = rte_tel_data_add_dict_u64(d, key, *u);
        } else {
            rte_tel_data* a = rte_tel_data_alloc();
            if (!a) return -ENOMEM;
            if (auto* vs = std::get_if<std::vector<std::string>>(&v)) {
                rte_tel_data_start_array(a, RTE_TEL_STRING_VAL);
                for (const auto& x : *vs) {
                    std::string t = x.substr(0, RTE_TEL_MAX_STRING_LEN - 1);
                    rte_tel_data_add_array_string(a, t.c_str());
                }
            } else if (auto* vi = std::get_if<std::vector<int64_t>>(&v)) {
                rte_tel_data_start_array(a, RTE_TEL_INT_VAL);
                for (int64_t x : *vi) rte_tel_data_add_array_int(a, int(x));
            } else if (auto* vu = std::get_if<std::vector<uint64_t>>(&v)) {
                rte_tel_data_start_array(a, RTE_TEL_U64_VAL);
                for (uint64_t x : *vu) rte_tel_data_add_array_u64(a, x);
            }
            rc = rte_tel_data_add_dict_container(d, key, a, 0);
            if (rc) rte_tel_data_free(a);
        }
        (void)rc;  // entries past RTE_TEL_MAX_DICT_ENTRIES are dropped by DPDK
    }
    return 0;
}

int handler(const char* cmd, const char* params, rte_tel_data* d) {
    if (!g_ctx) return -EINVAL;
    Reply r;
    try {
        run_command(*g_ctx, cmd, params ? params : "", r);
    } catch (const std::exception& e) {
        r = Reply{};
        r.error(e.what());
    }
    return fill(r, d);
}

}  // namespace

bool register_dpdk_commands(const CommandContext* ctx, std::string* err) {
    g_ctx = ctx;
    for (const auto& c : commands()) {
        int rc = rte_telemetry_register_cmd(c.name, handler, c.help);
        if (rc != 0) {
            if (err) *err = std::string("rte_telemetry_register_cmd ") + c.name + ": " + std::strerror(-rc);
            return false;
        }
    }
    return true;
}

}  // namespace tlb::telemetry
