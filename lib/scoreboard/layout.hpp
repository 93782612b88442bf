// Scoreboard shared-memory layout: the ONE place that defines the bytes other processes read.
//
// The scoreboard is a POSIX shared-memory object (shm_open + mmap, default name
// "/tokenlb-scoreboard"), not a DPDK memzone: readers such as tokenlb-ctl, monitoring agents and
// the simulator must be able to map it without being DPDK secondary processes, and the lab runs
// without hugepages. Everything in the segment is fixed-size, position-independent (no pointers)
// and made of trivially-copyable types, so a reader built from this header can interpret it.
//
// Writers and what they write (the single-writer rule is what makes lock-free reads work):
//   - control plane (one thread): SegmentHeader, name tables, BackendConfig[b], ControlLive[b],
//     ModelLive[m]. Each of these blocks is guarded by its own seqlock (`seq`: odd while being
//     written). A reader copies the block, then re-reads `seq`; if it changed or was odd it
//     retries. Config and control blocks are multi-word records whose fields must agree with
//     each other (e.g. the profile numbers, or kv usage with waiting/running from the same
//     scrape), so a torn read would be wrong, and they change rarely (config reload, one scrape
//     per second), so reader retries are practically never taken.
//   - worker w (one lcore): WorkerLoad[b][w], one 64-byte cache line per (backend, worker).
//     These are plain gauges updated on every routed request, first byte and completion. Each
//     word is written with a relaxed atomic store by its single owner (no read-modify-write, no
//     lock prefix, no fence: the hot path stays at a few plain stores) and read with relaxed
//     atomic loads. We deliberately do NOT put a seqlock here: a reader summing the four gauges
//     can see them one update apart (e.g. outstanding already incremented, queued tokens not
//     yet), an error of at most one request per worker, which routing tolerates, whereas a
//     seqlock would add two release stores per update and reader retry loops over
//     backends x workers cache lines. Each word is naturally aligned and lock-free
//     (static_asserts below), so no value is ever torn. Monotonic totals (routed, completed,
//     tokens) are kept beside the gauges for rate computation by readers.
//   - Nothing else writes. Workers never wait for the control plane and vice versa.
//
// Versioning: LAYOUT_VERSION changes on any change of this file's structs. attach() refuses a
// segment whose magic, version or total size differs from what it was built with, so a stale
// reader never misinterprets a newer layout. Capacities (MAX_*) are part of the layout.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace tlb::scoreboard {

constexpr uint32_t MAGIC = 0x53424c54;  // "TLBS" little-endian
constexpr uint32_t LAYOUT_VERSION = 1;

// Capacities. Backends, models and tags are addressed by bit in uint64_t masks, hence 64.
constexpr uint32_t MAX_BACKENDS = 64;
constexpr uint32_t MAX_WORKERS = 16;
constexpr uint32_t MAX_MODELS = 64;
constexpr uint32_t MAX_TAGS = 64;
constexpr uint32_t MAX_ZONES = 32;
constexpr uint32_t NAME_LEN = 48;  // NUL-terminated, truncated if longer
constexpr uint32_t CACHE_LINE = 64;

enum class Health : uint8_t { Unknown = 0, Up = 1, Down = 2 };
// Circuit breaker state as in Envoy outlier detection / Hystrix: Open = ejected, HalfOpen =
// probing with a trickle of traffic.
enum class Circuit : uint8_t { Closed = 0, HalfOpen = 1, Open = 2 };

// Static per-backend performance profile (from conf/profiles or the backend's [profile] keys).
// Decode speed per sequence at batch n: decode_tps / (1 + decode_batch_slowdown * (n - 1)).
struct Profile {
    float prefill_tps;            // prompt tokens per second (one request alone)
    float decode_tps;             // output tokens per second per sequence at batch 1
    float decode_batch_slowdown;  // fractional per-sequence slowdown per extra running sequence
    float cost_per_mtok;          // cost units per million tokens (prompt + output)
    uint32_t max_batch;           // max running sequences (vLLM max_num_seqs)
    uint32_t kv_capacity_tokens;  // KV cache capacity in tokens, 0 = unknown
    uint32_t chunk_tokens;        // token budget per engine step (vLLM max_num_batched_tokens)
    uint32_t reserved;
};
static_assert(sizeof(Profile) == 32);

struct alignas(CACHE_LINE) SegmentHeader {
    uint32_t magic;
    uint32_t version;
    uint64_t total_size;  // bytes of the whole segment
    uint32_t max_backends, max_workers, max_models, max_tags;
    uint32_t header_size, backend_config_size, control_live_size, worker_load_size;
    std::atomic<uint32_t> seq;         // seqlock over n_* and the name tables
    uint32_t n_backends;               // backends [0, n_backends) are configured
    uint32_t n_workers;                // worker slots in use
    uint32_t n_models;
    uint32_t n_tags;
    uint32_t n_zones;
    uint64_t created_unix_ns;
    std::atomic<uint64_t> generation;  // bumped by the control plane on every config change
    char model_names[MAX_MODELS][NAME_LEN];
    char tag_names[MAX_TAGS][NAME_LEN];
    char zone_names[MAX_ZONES][NAME_LEN];
};

// Written by the control plane on config load/reload and health/circuit/drain changes.
struct alignas(CACHE_LINE) BackendConfig {
    std::atomic<uint32_t> seq;  // seqlock: odd while the control plane writes
    uint32_t ipv4;              // host byte order
    uint16_t port;
    uint8_t health;             // Health
    uint8_t circuit;            // Circuit
    uint8_t drain;              // 1 = take no new requests (operator drain)
    uint8_t configured;         // 1 = slot in use
    uint16_t weight;            // 0..1000, 0 = no new requests
    uint32_t max_context;       // tokens (prompt + max_tokens must fit)
    uint32_t trust_zone;        // index into zone_names
    uint64_t models;            // bit m = serves model_names[m]
    uint64_t tags;              // bit t = has capability tag_names[t]
    Profile profile;
    char name[NAME_LEN];
};

// Written by the control plane: scraped /metrics and learned rates. Lagged by design.
struct alignas(CACHE_LINE) ControlLive {
    std::atomic<uint32_t> seq;  // seqlock
    uint8_t stale;              // 1 = last scrape failed or is older than 3 intervals
    uint8_t metrics_valid;      // 1 = kv/waiting/running below come from a real scrape
    uint16_t pad0;
    float kv_usage;             // 0..1 (vllm:kv_cache_usage_perc)
    uint32_t waiting;           // vllm:num_requests_waiting
    uint32_t running;           // vllm:num_requests_running
    // Learned from forwarded responses (EWMA); 0 = nothing learned yet, use the profile.
    float ewma_ttft_per_prompt_token_s;  // observed TTFT / uncached prompt tokens
    float ewma_decode_tps;               // observed per-sequence output tokens per second
    float ewma_ttft_ratio;               // observed TTFT / predicted-at-routing TTFT
    float ewma_decode_ratio;             // observed decode tok/s / predicted-at-routing tok/s
    uint32_t samples;                    // responses learned from
    uint64_t updated_ns;                 // monotonic ns of the last update
};

// Per-model learned values (control plane): typical output length for requests that do not say.
struct alignas(CACHE_LINE) ModelLive {
    std::atomic<uint32_t> seq;
    float ewma_output_tokens;
    uint32_t samples;
};

// One cache line per (backend, worker): written only by that worker.
struct alignas(CACHE_LINE) WorkerLoad {
    // Gauges (single writer, relaxed stores).
    std::atomic<int64_t> outstanding;            // routed, not yet completed
    std::atomic<int64_t> queued_prompt_tokens;   // uncached prompt tokens routed, no first byte yet
    std::atomic<int64_t> running_decode;         // first byte seen, not yet completed
    std::atomic<int64_t> remaining_decode_tokens;  // expected output tokens of outstanding requests
    // Monotonic totals.
    std::atomic<uint64_t> routed_total;
    std::atomic<uint64_t> completed_total;
    std::atomic<uint64_t> prompt_tokens_total;   // true usage.prompt_tokens
    std::atomic<uint64_t> output_tokens_total;   // true usage.completion_tokens
};

static_assert(std::atomic<int64_t>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(WorkerLoad) == CACHE_LINE, "one cache line per worker slot");
static_assert(alignof(WorkerLoad) == CACHE_LINE);
static_assert(sizeof(BackendConfig) == 2 * CACHE_LINE);
static_assert(sizeof(ControlLive) == CACHE_LINE);
static_assert(sizeof(ModelLive) == CACHE_LINE);
static_assert(std::is_standard_layout_v<SegmentHeader>);
static_assert(std::is_standard_layout_v<BackendConfig>);
static_assert(std::is_standard_layout_v<WorkerLoad>);

struct Segment {
    SegmentHeader header;
    BackendConfig config[MAX_BACKENDS];
    ControlLive control[MAX_BACKENDS];
    ModelLive model_live[MAX_MODELS];
    WorkerLoad load[MAX_BACKENDS][MAX_WORKERS];
};

static_assert(std::is_standard_layout_v<Segment>);
static_assert(offsetof(Segment, config) % CACHE_LINE == 0);
static_assert(offsetof(Segment, load) % CACHE_LINE == 0);
constexpr size_t SEGMENT_SIZE = sizeof(Segment);
// Pinned sizes: a change here is a layout change (bump LAYOUT_VERSION, then update these).
static_assert(sizeof(SegmentHeader) == 7808);
static_assert(SEGMENT_SIZE == 89728);
static_assert(SEGMENT_SIZE == sizeof(SegmentHeader) + 2 * CACHE_LINE * MAX_BACKENDS + CACHE_LINE * MAX_BACKENDS +
                                  CACHE_LINE * MAX_MODELS + CACHE_LINE * MAX_BACKENDS * MAX_WORKERS,
              "layout changed: bump LAYOUT_VERSION and update this check");

}  // namespace tlb::scoreboard
