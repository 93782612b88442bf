// Scoreboard: owner/reader handle on the shared backend table (layout in scoreboard/layout.hpp).
//
// Roles:
//   control plane  create(), add_*(), set_*(), learn*()      may allocate, may fail with a message
//   worker w       on_route / on_first_byte / on_complete    a few relaxed stores, never blocks
//   any reader     attach(), read_config(), read_control(),  lock-free (seqlock copy / atomics)
//                  snapshot()
//
// Anchors: Envoy keeps per-worker load stats that a main thread aggregates, HAProxy keeps
// per-server counters updated by the thread that owns the stream; both avoid a shared lock on
// the request path. We follow the same split: per-(backend, worker) single-writer cache lines
// and seqlocked control blocks written by one control-plane thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "scoreboard/layout.hpp"
#include "scoreboard/view.hpp"

namespace tlb::scoreboard {

struct BackendSpec {
    std::string name;
    uint32_t ipv4 = 0;  // host order
    uint16_t port = 0;
    std::vector<std::string> models;
    std::vector<std::string> tags;
    std::string trust_zone = "default";
    uint32_t max_context = 8192;
    Profile profile{10000.f, 50.f, 0.01f, 1.f, 256, 0, 8192, 0};
    uint16_t weight = 100;
};

// What a worker remembers about one routed request so that later hooks undo exactly what
// on_route added. Plain data, lives in the worker's per-request state.
struct Ticket {
    uint32_t backend = 0;
    uint32_t worker = 0;
    uint32_t uncached_prompt_tokens = 0;
    uint32_t expected_output_tokens = 0;
    bool first_byte = false;
};

// One response observed by the data plane, for the control plane to learn from.
struct Observation {
    uint32_t backend = 0;
    uint32_t model = 0;
    double ttft_s = 0;               // route -> first response byte
    double predicted_ttft_s = 0;     // what the policy predicted at routing (0 = none)
    double decode_s = 0;             // first byte -> end of response
    double predicted_decode_tps = 0; // per-sequence rate assumed at routing (0 = none)
    uint32_t uncached_prompt_tokens = 0;
    uint32_t output_tokens = 0;      // true usage.completion_tokens
};

class Scoreboard {
public:
    ~Scoreboard();
    Scoreboard(const Scoreboard&) = delete;
    Scoreboard& operator=(const Scoreboard&) = delete;

    // Create a named POSIX shm segment ("/name"), replacing any old one. The creator unlinks it
    // on destruction unless keep() was called. Returns nullptr and sets *err on failure.
    static std::unique_ptr<Scoreboard> create(const std::string& shm_name, uint32_t n_workers,
                                              std::string* err);
    // Process-private segment (anonymous mmap) with the same layout: simulator and tests.
    static std::unique_ptr<Scoreboard> create_private(uint32_t n_workers);
    // Map an existing segment. Refuses a bad magic, a different LAYOUT_VERSION or size.
    static std::unique_ptr<Scoreboard> attach(const std::string& shm_name, bool writable,
                                              std::string* err);

    Segment* segment() { return _seg; }
    const Segment* segment() const { return _seg; }
    void keep() { _unlink_on_close = false; }

    // ---- control plane ----
    int model_id(const std::string& name, bool add);  // -1 if absent (or full)
    int tag_id(const std::string& name, bool add);
    int zone_id(const std::string& name, bool add);
    uint64_t tag_mask(const std::vector<std::string>& tags, bool add);
    // Returns the backend index, or -1 (and *err) when full or names do not fit the tables.
    int add_backend(const BackendSpec& spec, std::string* err);
    void set_health(uint32_t b, Health h);
    void set_circuit(uint32_t b, Circuit c);
    void set_drain(uint32_t b, bool drain);
    void set_weight(uint32_t b, uint16_t w);
    void set_metrics(uint32_t b, float kv_usage, uint32_t waiting, uint32_t running, bool stale,
                     uint64_t now_ns);
    void set_stale(uint32_t b, bool stale);
    // EWMA update from one completed response (alpha ~ 0.1, clamped ratios).
    void learn(const Observation& o, uint64_t now_ns);
    void learn_output(uint32_t model, uint32_t output_tokens);

    // ---- workers (single writer per (backend, worker)) ----
    Ticket on_route(uint32_t worker, uint32_t backend, uint32_t uncached_prompt_tokens,
                    uint32_t expected_output_tokens);
    void on_first_byte(Ticket& t);
    // true usage from the response; call exactly once per ticket (also for failures/cancels:
    // then usage is what was actually processed, possibly 0).
    void on_complete(Ticket& t, uint32_t true_prompt_tokens, uint32_t true_output_tokens);

    // ---- readers ----
    uint32_t n_backends() const;
    uint32_t n_workers() const { return _seg->header.n_workers; }
    bool read_config(uint32_t b, BackendConfig& out) const;  // consistent copy (seqlock)
    bool read_control(uint32_t b, ControlLive& out) const;
    std::string model_name(uint32_t m) const;
    std::string tag_name(uint32_t t) const;
    std::string zone_name(uint32_t z) const;
    // Sum over workers of one backend's gauges.
    void read_load(uint32_t b, int64_t& outstanding, int64_t& queued_prompt, int64_t& running,
                   int64_t& remaining_decode) const;
    // Build the flat View policies read. Lock-free; cost O(backends x workers).
    void snapshot(View& v, uint64_t now_ns) const;

private:
    Scoreboard() = default;
    static void init_header(Segment* seg, uint32_t n_workers);
    int name_id(char (*table)[NAME_LEN], uint32_t& count, uint32_t cap, const std::string& name,
                bool add);

    Segment* _seg = nullptr;
    size_t _size = 0;
    std::string _shm_name;  // empty for private segments
    bool _unlink_on_close = false;
};

// Seqlock helpers (single writer). Exposed for tests and for other shm readers.
void seq_write_begin(std::atomic<uint32_t>& seq);
void seq_write_end(std::atomic<uint32_t>& seq);

}  // namespace tlb::scoreboard
