// Control-plane writes to the scoreboard, and the few atomics workers read for operator changes.
//
// Threading: the scoreboard's control blocks are seqlocked with ONE writer at a time
// (scoreboard/layout.hpp). Several control-plane threads write them: the telemetry service thread
// (learn() from observations), the scraper thread (set_metrics/set_stale), DPDK's telemetry
// thread (operator drain/weight) and the app's main thread (health). ControlWriter serialises
// them with one mutex — the control plane may lock; workers never touch it (they only read the
// segment lock-free and write their own WorkerLoad lines). Every control-plane scoreboard write
// in the app must go through the same ControlWriter.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "scoreboard/scoreboard.hpp"

namespace tlb::telemetry {

class ControlWriter {
public:
    explicit ControlWriter(scoreboard::Scoreboard* sb) : _sb(sb) {}
    scoreboard::Scoreboard* scoreboard() const { return _sb; }

    // Backend index by name (-1 if none). Lock-free read.
    int find_backend(const std::string& name) const {
        if (!_sb) return -1;
        for (uint32_t b = 0; b < _sb->n_backends(); ++b) {
            scoreboard::BackendConfig c;
            if (_sb->read_config(b, c) && c.configured && name == c.name) return int(b);
        }
        return -1;
    }
    void set_drain(uint32_t b, bool d) { std::lock_guard g(_mu); _sb->set_drain(b, d); }
    void set_weight(uint32_t b, uint16_t w) { std::lock_guard g(_mu); _sb->set_weight(b, w); }
    void set_health(uint32_t b, scoreboard::Health h) { std::lock_guard g(_mu); _sb->set_health(b, h); }
    void set_metrics(uint32_t b, float kv, uint32_t waiting, uint32_t running, uint64_t now_ns) {
        std::lock_guard g(_mu);
        _sb->set_metrics(b, kv, waiting, running, false, now_ns);
    }
    void set_stale(uint32_t b, bool stale) { std::lock_guard g(_mu); _sb->set_stale(b, stale); }
    void learn(const scoreboard::Observation& o, uint64_t now_ns) {
        std::lock_guard g(_mu);
        _sb->learn(o, now_ns);
        if (o.output_tokens) _sb->learn_output(o.model, o.output_tokens);
    }

private:
    scoreboard::Scoreboard* _sb;
    std::mutex _mu;
};

// Operator changes a worker applies itself (read with relaxed loads in housekeeping).
struct Controls {
    std::atomic<uint8_t> policy{0};         // policy::Kind the workers must use
    std::atomic<uint64_t> policy_changes{0};
};

}  // namespace tlb::telemetry
