// DPDK telemetry commands under /tokenlb/ (socket /var/run/dpdk/<file-prefix>/dpdk_telemetry.v2,
// SOCK_SEQPACKET, JSON replies; `dpdk-telemetry.py -f tokenlb` and tokenlb-ctl speak it).
//
//   /tokenlb/status                      version, pid, uptime, policy, workers, request totals, gauges
//   /tokenlb/stats                       every data-plane, TCP and port counter (summed over workers)
//   /tokenlb/backends                    one column (array) per field, one row per backend
//   /tokenlb/backend_drain,NAME          stop new requests to NAME (in-flight ones finish)
//   /tokenlb/backend_undrain,NAME
//   /tokenlb/backend_weight,NAME W       W in 0..1000 (0 = no new requests); "NAME,W" also accepted
//   /tokenlb/policy                      current policy
//   /tokenlb/policy_set,NAME             switch the routing policy of every worker
//
// Handlers run on DPDK's telemetry thread. They read counters and the scoreboard lock-free, write
// the scoreboard only through ControlWriter (mutex shared with the other control-plane writers)
// and change the policy through Controls (an atomic the workers read). Errors are replies
// {"error": "..."} rather than a bare null, so tokenlb-ctl can print why.
//
// rte_tel_data limits shape the replies: a top-level dict of at most 256 entries whose values
// are scalars (string, int, u64) or arrays of one scalar type; keys are [A-Za-z0-9_/]. Hence the
// column form of /tokenlb/backends, integers in fixed units (permille, microseconds) instead of
// floats. The handlers fill a Reply (testable without EAL), the adapter converts it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "telemetry/control.hpp"
#include "telemetry/exporter.hpp"
#include "telemetry/worker_telemetry.hpp"

namespace tlb::telemetry {

class Reply {
public:
    using Value = std::variant<std::string, int64_t, uint64_t, std::vector<std::string>,
                               std::vector<int64_t>, std::vector<uint64_t>>;
    void add(std::string_view key, std::string v) { _e.emplace_back(sanitize_key(key), Value(std::move(v))); }
    void add(std::string_view key, const char* v) { add(key, std::string(v)); }
    void add_int(std::string_view key, int64_t v) { _e.emplace_back(sanitize_key(key), Value(v)); }
    void add_u64(std::string_view key, uint64_t v) { _e.emplace_back(sanitize_key(key), Value(v)); }
    void add(std::string_view key, std::vector<std::string> v) { _e.emplace_back(sanitize_key(key), Value(std::move(v))); }
    void add(std::string_view key, std::vector<int64_t> v) { _e.emplace_back(sanitize_key(key), Value(std::move(v))); }
    void add(std::string_view key, std::vector<uint64_t> v) { _e.emplace_back(sanitize_key(key), Value(std::move(v))); }
    void error(std::string msg) { add("error", std::move(msg)); }

    const std::vector<std::pair<std::string, Value>>& entries() const { return _e; }
    const Value* find(std::string_view key) const {
        for (const auto& [k, v] : _e)
            if (k == key) return &v;
        return nullptr;
    }
    std::string to_json() const;  // what the DPDK socket would carry for this dict
    static std::string sanitize_key(std::string_view k);  // invalid characters -> '_'

private:
    std::vector<std::pair<std::string, Value>> _e;
};

struct CommandContext {
    ControlWriter* writer = nullptr;
    Controls* controls = nullptr;
    const WorkerTelemetry* const* workers = nullptr;
    uint32_t n_workers = 0;
    std::function<void(Sample&)> sampler;            // app: counters, gauges, ports
    std::function<double(uint32_t worker)> busy_ratio;  // last-interval busy fraction
    std::string version = "0.1.0";
    double start_time_s = 0;                        // unix seconds
    std::function<uint64_t()> access_log_written;
};

// Runs one command (cmd without params, params as given). Unknown command -> error reply.
void run_command(const CommandContext& ctx, std::string_view cmd, std::string_view params, Reply& out);
// The registered command names and their help texts.
struct CommandInfo {
    const char* name;
    const char* help;
};
const std::vector<CommandInfo>& commands();

// Registers every /tokenlb/ command with rte_telemetry (after rte_eal_init). ctx must outlive EAL.
// Returns false with *err when a registration fails.
bool register_dpdk_commands(const CommandContext* ctx, std::string* err);

}  // namespace tlb::telemetry
