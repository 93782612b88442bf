// tlb::gpumodel — the GPU-server time model shared by gpu-emu (real time) and tokenlb-sim
// (virtual time).
//
// What it models (vLLM V1-like continuous batching):
//  - Every engine step schedules, in this order: every running request (a decode needs 1 token,
//    a request still prefilling needs its next chunk), then waiting requests in FCFS order while
//    running < max_num_seqs, the step's token budget (max_num_batched_tokens) is not spent, and
//    the KV pool can hold the admitted request's prompt (chunked prefill: a prompt longer than the
//    remaining budget is split over several steps).
//  - Step time (seconds), with P = prefill chunks (start c0, length k) in the step, D = decoding
//    requests, ctx(r) = tokens currently held by r:
//        t = decode.base_s
//          + [P non-empty] * prefill.overhead_s
//          + prefill.per_token_s   * sum_P k
//          + prefill.attn_s_per_token2 * sum_P ((c0+k)^2 - c0^2)
//          + decode.per_seq_s       * |D|
//          + decode.per_ctx_token_s * sum_D ctx(r)
//    i.e. a single prompt of n tokens alone costs base + overhead + a*n + b*n^2 (linear weight
//    FLOPs + quadratic attention) and a decode step grows with batch size and total context (KV
//    bytes read). The sum is a simplification of roofline max(memory, compute); see
//    docs/gpu-emu.md for the calibration of each profile.
//  - The step that finishes a request's prefill samples its first token (vLLM behaviour): TTFT of
//    a lone request = one prefill step. Each later step emits one token per decoding request.
//  - KV memory is a pool of blocks of `block_tokens` tokens. Blocks are allocated as a request's
//    context grows; when a decode step cannot get a block the most recently admitted running
//    request is preempted (blocks freed, later recomputed, as vLLM's recompute preemption).
//    Requests whose prompt does not fit wait in the queue.
//  - Prefix cache (vLLM automatic prefix caching): full blocks carry a chained hash; a block whose
//    last user finishes stays in the pool as "cached" and is reused by a later request whose
//    leading block hashes match (those prompt tokens are not recomputed), or evicted LRU-first
//    when a fresh block is needed. Query/hit counters are in tokens, as vLLM V1 reports them.
//
// Determinism: no wall clock, no randomness; the same submit/abort/advance sequence gives the
// same events bit for bit. Time is a double in seconds chosen by the caller (simulated time in
// tokenlb-sim, CLOCK_MONOTONIC seconds in gpu-emu).
//
// Cost: a step is O(running + admitted); per-token callbacks can be switched off
// (EngineOptions::token_events) so a simulator only pays for first-token / finished events.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace tlb::gpumodel {

constexpr double NEVER = std::numeric_limits<double>::infinity();

struct Profile {
  std::string name;   // e.g. "h100-8b"
  std::string gpu;    // e.g. "H100-SXM5-80GB"
  std::string model;  // served model name, e.g. "meta-llama/Llama-3.1-8B-Instruct"
  uint32_t gpus = 1;  // GPUs behind one engine (tensor parallel); busy GPU-seconds = busy s * gpus
  double cost_per_gpu_hour = 0.0;  // USD per GPU-hour

  // [scheduler]
  uint32_t max_num_seqs = 256;
  uint32_t max_num_batched_tokens = 8192;
  uint32_t max_model_len = 32768;  // prompt + output limit; longer requests are rejected

  // [kv]
  uint64_t kv_capacity_tokens = 0;  // must be > 0
  uint32_t block_tokens = 16;       // KV block size = prefix-cache block size
  bool prefix_caching = true;
  uint64_t prefix_cache_blocks = 0;  // cap on cached-but-unused blocks kept; 0 = no cap (vLLM)
  double kv_watermark = 0.01;        // fraction of blocks kept free at admission (vLLM default)

  // [prefill]
  double prefill_overhead_s = 0.0;
  double prefill_per_token_s = 0.0;
  double prefill_attn_s_per_token2 = 0.0;

  // [decode]
  double decode_base_s = 0.0;  // every step pays this (weights read once per step)
  double decode_per_seq_s = 0.0;
  double decode_per_ctx_token_s = 0.0;

  double cost_per_gpu_second() const { return cost_per_gpu_hour / 3600.0; }
  uint64_t kv_blocks() const { return block_tokens ? kv_capacity_tokens / block_tokens : 0; }

  // Analytic helpers (the same formula the engine uses), for routers and tests.
  // Time of one step that prefills `tokens` tokens starting at context `start`, with no decodes.
  double prefill_step_time(uint32_t tokens, uint32_t start = 0) const;
  // Time of a step with `batch` decoding requests holding `sum_ctx` tokens and no prefill.
  double decode_step_time(uint32_t batch, uint64_t sum_ctx) const;
  // TTFT of a lone request on an idle engine with `cached` prompt tokens already in the prefix
  // cache (chunked over max_num_batched_tokens).
  double lone_ttft(uint32_t prompt_tokens, uint32_t cached = 0) const;
};

// Parses a profile from TOML text / a file. Returns false and sets *err on any missing or
// out-of-range key. Layout: see conf/profiles/h100-8b.toml.
bool parse_profile(std::string_view toml_text, Profile& out, std::string* err);
bool load_profile(const std::string& path, Profile& out, std::string* err);
// "h100-8b" -> "<dir>/h100-8b.toml"; a value containing '/' or ending in ".toml" is a path.
std::string profile_path(const std::string& name_or_file, const std::string& profiles_dir);

// Chained block hash used for prefix identity: hash_i = block_hash(hash_{i-1}, content_i).
// Callers hash each full block of `block_tokens` prompt tokens (token ids or text bytes).
uint64_t block_hash(uint64_t prev, const void* data, size_t len);
uint64_t block_hash_u64(uint64_t prev, uint64_t v);

struct Request {
  uint64_t id = 0;              // unique among live requests of one engine
  uint32_t prompt_tokens = 0;   // >= 1
  uint32_t output_tokens = 1;   // tokens the engine will generate (>= 1), known to the emulator
  // Prefix identity, either form (explicit hashes win when non-empty):
  //  - block_hashes: chained hash of each full leading prompt block (copied at submit);
  //  - prefix_group/prefix_tokens: the first prefix_tokens prompt tokens are identical for all
  //    requests with the same non-zero prefix_group (the engine derives the block hashes).
  std::span<const uint64_t> block_hashes{};
  uint64_t prefix_group = 0;
  uint32_t prefix_tokens = 0;
};

enum class SubmitResult : uint8_t {
  OK = 0,
  TOO_LONG,   // prompt + output > max_model_len, or the prompt can never fit the KV pool
  DUPLICATE,  // id already live
  INVALID,    // prompt_tokens == 0 or output_tokens == 0
};

// Per-request summary delivered with on_finished / on_aborted.
struct RequestStats {
  uint64_t id = 0;
  uint32_t prompt_tokens = 0;
  uint32_t cached_tokens = 0;   // prompt tokens served from the prefix cache at first admission
  uint32_t generated_tokens = 0;
  uint32_t preemptions = 0;
  double submit_time = 0.0;
  double first_scheduled_time = NEVER;  // start of the first step that included it
  double first_token_time = NEVER;
  double end_time = NEVER;  // finished or aborted
};

// Event sink. Calls happen inside submit/abort/advance, in time order; times are step end times.
// on_first_token delivers token #1; on_tokens delivers later tokens (n per call, n = 1 today).
// Callbacks must not call back into the engine.
class Listener {
 public:
  virtual ~Listener() = default;
  virtual void on_first_token(uint64_t /*id*/, double /*t*/) {}
  virtual void on_tokens(uint64_t /*id*/, double /*t*/, uint32_t /*n*/) {}
  virtual void on_finished(const RequestStats& /*s*/) {}
  virtual void on_aborted(const RequestStats& /*s*/) {}
};

struct EngineOptions {
  bool token_events = true;  // false: no on_tokens calls (simulators that only need TTFT/E2E)
};

struct Counters {
  double busy_seconds = 0.0;  // sum of step durations (engine busy wall time)
  uint64_t steps = 0;
  uint64_t submitted = 0;
  uint64_t rejected = 0;  // SubmitResult != OK
  uint64_t finished = 0;
  uint64_t aborted = 0;
  uint64_t preemptions = 0;
  uint64_t prompt_tokens = 0;              // prompt tokens of admitted requests (once each)
  uint64_t prefill_tokens_computed = 0;    // prompt tokens actually computed (incl. recompute)
  uint64_t generation_tokens = 0;          // all tokens emitted
  uint64_t aborted_generation_tokens = 0;  // tokens emitted for requests that were later aborted
  uint64_t prefix_cache_queries = 0;       // prompt tokens looked up (vLLM V1: in tokens)
  uint64_t prefix_cache_hits = 0;          // prompt tokens found
};

class Engine {
 public:
  explicit Engine(const Profile& profile, Listener* listener = nullptr, EngineOptions opt = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;

  // All calls take the caller's current time; it must not go backwards. Each call first
  // completes every step ending at or before `now`.
  // A request submitted while a step runs joins the next step; on an idle engine a step starts
  // at `now`. A step is planned lazily: everything submitted at or before its start instant
  // (several submits at one time, or a submit exactly at the previous step's end) joins it, and
  // the plan is made by the first advance(t >= start) or by a submit/abort at a later time.
  // So after submitting at t, call advance(t) (or advance(next_event_time())) to start work.
  SubmitResult submit(const Request& r, double now);
  // Removes a waiting or running request at once (its batch slot and KV blocks are free for the
  // next step). Returns false when the id is not live. Calls on_aborted.
  bool abort(uint64_t id, double now);
  // Completes every step that ends at or before `now`, emitting events.
  void advance(double now);
  // Start of the pending step (not planned yet), else end of the running step, or NEVER when
  // idle. Drive with: while ((t = next_event_time()) <= horizon) advance(t);
  double next_event_time() const;

  const Profile& profile() const;
  const Counters& counters() const;
  double busy_gpu_seconds() const;  // busy_seconds * gpus
  uint32_t num_running() const;     // admitted (prefilling or decoding)
  uint32_t num_waiting() const;
  uint64_t kv_used_blocks() const;  // blocks referenced by live requests
  uint64_t kv_cached_blocks() const;  // unreferenced blocks still holding a cached prefix
  uint64_t kv_total_blocks() const;
  double kv_usage() const;          // used / total, 0..1 (vllm:kv_cache_usage_perc)
  // Outstanding work, for routers that read the backend model directly (simulator oracle).
  uint64_t pending_prefill_tokens() const;  // prompt tokens not yet computed (waiting+running)
  uint64_t pending_decode_tokens() const;   // tokens still to generate (waiting+running)
  bool live(uint64_t id) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> _impl;
};

}  // namespace tlb::gpumodel
