// The scoreboard as routing policies see it: one flat, aggregated, process-local copy.
//
// Policies never walk the shared segment themselves: summing backends x workers cache lines on
// every request would cost more than the whole decision budget (300 ns for 64 backends). A worker
// refreshes its View from the segment every few tens of microseconds (Scoreboard::snapshot) and
// applies its own routing deltas to it immediately (apply_route / apply_first_byte /
// apply_complete), so it always knows what it itself sent and sees other workers' load with a
// small lag. The simulator does exactly the same with one worker.
#pragma once

#include <cstdint>

#include "scoreboard/layout.hpp"

namespace tlb::scoreboard {

struct BackendState {
    uint64_t models = 0;
    uint64_t tags = 0;
    uint32_t zone_bit = 0;     // 1u << trust_zone
    uint32_t max_context = 0;
    // Live load, summed over workers.
    float outstanding = 0;
    float queued_prompt_tokens = 0;
    float running = 0;
    float remaining_decode_tokens = 0;
    // Rates: static profile corrected by what the control plane learned.
    float prefill_s_per_token = 0;  // 1 / prefill_tps
    float decode_tps = 0;           // per sequence at batch 1 (learned-corrected)
    float batch_slowdown = 0;
    float max_batch = 1;
    float cost_per_token = 0;
    float inv_chunk_tokens = 1.0f / 8192;  // 1 / tokens per engine step
    float kv_capacity_tokens = 0;   // 0 = unknown
    float ttft_ratio = 1;           // learned observed/predicted TTFT correction
    float kv_usage = 0;             // 0..1 from /metrics, 0 if unknown
    float waiting = 0;              // from /metrics (lagged)
    uint32_t weight = 0;
};

struct View {
    uint32_t n = 0;                 // backends [0, n) exist
    uint32_t n_models = 0;
    uint64_t available = 0;         // bit b: configured, healthy, circuit not open, not drained, weight > 0
    uint64_t generation = 0;
    uint64_t snapshot_ns = 0;
    BackendState b[MAX_BACKENDS];
    float typical_output[MAX_MODELS] = {};  // learned mean output tokens per model, 0 = unknown

    // A worker's own deltas, applied between snapshots (mirrors Scoreboard worker hooks).
    void apply_route(uint32_t i, float uncached_prompt, float expected_out) {
        b[i].outstanding += 1;
        b[i].queued_prompt_tokens += uncached_prompt;
        b[i].remaining_decode_tokens += expected_out;
    }
    void apply_first_byte(uint32_t i, float uncached_prompt) {
        b[i].queued_prompt_tokens -= uncached_prompt;
        b[i].running += 1;
    }
    void apply_complete(uint32_t i, float expected_out, bool had_first_byte, float uncached_prompt) {
        b[i].outstanding -= 1;
        b[i].remaining_decode_tokens -= expected_out;
        if (had_first_byte) b[i].running -= 1;
        else b[i].queued_prompt_tokens -= uncached_prompt;
    }
};

}  // namespace tlb::scoreboard
