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

    // ---- derived by finalize(): what the hot loops read ----
    // Masks turn the model / tag / zone filters into a few ANDs, and structure-of-arrays copies
    // of the load and rate fields let the per-backend prediction loop run vectorised. A View
    // built by hand must call finalize() after editing b[]; Scoreboard::snapshot does it.
    uint64_t model_mask[MAX_MODELS] = {};  // bit b: backend b serves model m
    uint64_t tag_mask[MAX_TAGS] = {};      // bit b: backend b has tag t
    uint64_t zone_mask[32] = {};           // bit b: backend b is in trust zone z
    alignas(64) uint32_t max_context[MAX_BACKENDS] = {};
    alignas(64) float outstanding[MAX_BACKENDS] = {};
    alignas(64) float queued[MAX_BACKENDS] = {};
    alignas(64) float running[MAX_BACKENDS] = {};
    alignas(64) float remaining[MAX_BACKENDS] = {};
    alignas(64) float prefill_s[MAX_BACKENDS] = {};   // seconds per prompt token
    alignas(64) float step1_s[MAX_BACKENDS] = {};     // 1 / decode_tps: step time at batch 1
    alignas(64) float slowdown[MAX_BACKENDS] = {};
    alignas(64) float max_batch[MAX_BACKENDS] = {};
    alignas(64) float inv_max_batch[MAX_BACKENDS] = {};
    alignas(64) float inv_chunk[MAX_BACKENDS] = {};
    alignas(64) float ttft_ratio[MAX_BACKENDS] = {};
    alignas(64) float cost_per_token[MAX_BACKENDS] = {};

    // The learned observed/predicted TTFT ratio corrects profiles that are plainly wrong (a GPU
    // twice as slow as its profile says); within a factor RATIO_DEAD_BAND it is mostly queueing
    // noise, and following it makes identical backends look different. So: 1 inside the band,
    // continuous outside it.
    static constexpr float RATIO_DEAD_BAND = 1.5f;
    static float ratio_dead_band(float r) {
        if (!(r > 0)) return 1.0f;
        if (r > RATIO_DEAD_BAND) return r / RATIO_DEAD_BAND;
        if (r < 1.0f / RATIO_DEAD_BAND) return r * RATIO_DEAD_BAND;
        return 1.0f;
    }

    void finalize() {
        for (auto& m : model_mask) m = 0;
        for (auto& m : tag_mask) m = 0;
        for (auto& m : zone_mask) m = 0;
        for (uint32_t i = 0; i < n && i < MAX_BACKENDS; ++i) {
            const BackendState& s = b[i];
            uint64_t bit = 1ull << i;
            for (uint64_t m = s.models; m; m &= m - 1) model_mask[__builtin_ctzll(m)] |= bit;
            for (uint64_t t = s.tags; t; t &= t - 1) tag_mask[__builtin_ctzll(t)] |= bit;
            for (uint32_t z = s.zone_bit; z; z &= z - 1) zone_mask[__builtin_ctz(z)] |= bit;
            max_context[i] = s.max_context;
            outstanding[i] = s.outstanding;
            queued[i] = s.queued_prompt_tokens;
            running[i] = s.running;
            remaining[i] = s.remaining_decode_tokens;
            prefill_s[i] = s.prefill_s_per_token;
            step1_s[i] = s.decode_tps > 0 ? 1.0f / s.decode_tps : 1e3f;
            slowdown[i] = s.batch_slowdown;
            max_batch[i] = s.max_batch > 0 ? s.max_batch : 1.0f;
            inv_max_batch[i] = 1.0f / max_batch[i];
            inv_chunk[i] = s.inv_chunk_tokens;
            ttft_ratio[i] = ratio_dead_band(s.ttft_ratio);
            cost_per_token[i] = s.cost_per_token;
        }
    }

    // A worker's own deltas, applied between snapshots (mirrors Scoreboard worker hooks).
    void apply_route(uint32_t i, float uncached_prompt, float expected_out) {
        b[i].outstanding += 1;
        b[i].queued_prompt_tokens += uncached_prompt;
        b[i].remaining_decode_tokens += expected_out;
        sync_load(i);
    }
    void apply_first_byte(uint32_t i, float uncached_prompt) {
        b[i].queued_prompt_tokens -= uncached_prompt;
        b[i].running += 1;
        sync_load(i);
    }
    void apply_complete(uint32_t i, float expected_out, bool had_first_byte, float uncached_prompt) {
        b[i].outstanding -= 1;
        b[i].remaining_decode_tokens -= expected_out;
        if (had_first_byte) b[i].running -= 1;
        else b[i].queued_prompt_tokens -= uncached_prompt;
        sync_load(i);
    }

private:
    void sync_load(uint32_t i) {
        outstanding[i] = b[i].outstanding;
        queued[i] = b[i].queued_prompt_tokens;
        running[i] = b[i].running;
        remaining[i] = b[i].remaining_decode_tokens;
    }
};

}  // namespace tlb::scoreboard
