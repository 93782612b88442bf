#include "policy/policy.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace tlb::policy {

namespace {

const char* const REASON_TEXT[] = {
    "round robin",
    "random",
    "least outstanding requests",
    "power of two choices",
    "least outstanding tokens",
    "prefix hash home",
    "prefix hash spill (home over load bound)",
    "lowest predicted ttft",
    "lowest predicted e2e",
    "cheapest within latency budget",
    "nothing within budget: fastest e2e",
    "no backend: none configured",
    "no backend: model not served",
    "no backend: prompt + max_tokens exceeds max context",
    "no backend: required capability tags missing",
    "no backend: trust zone not allowed",
    "no backend: all candidates down, ejected, draining or weight 0",
};
static_assert(sizeof(REASON_TEXT) / sizeof(REASON_TEXT[0]) == static_cast<size_t>(Reason::COUNT));

const char* const KIND_NAME[] = {"round_robin",  "random",      "least_requests", "power_of_two",
                                 "least_tokens", "prefix_hash", "token_aware"};
static_assert(sizeof(KIND_NAME) / sizeof(KIND_NAME[0]) == static_cast<size_t>(Kind::COUNT));

inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

inline uint32_t popcount(uint64_t m) { return static_cast<uint32_t>(__builtin_popcountll(m)); }
inline uint32_t ctz(uint64_t m) { return static_cast<uint32_t>(__builtin_ctzll(m)); }

// Rotate the scan start so equal scores spread over backends instead of always picking the
// lowest index (HAProxy's leastconn does the same with its tree position).
inline uint64_t rotate_mask(uint64_t m, uint32_t start) {
    return start == 0 ? m : (m >> start) | (m << (64 - start));
}

// Index of the k-th set bit of m (k < popcount(m)).
inline uint32_t nth_bit(uint64_t m, uint32_t k) {
    while (k--) m &= m - 1;
    return ctz(m);
}

Decision none(Reason why) {
    Decision d;
    d.reason = why;
    return d;
}

Decision pick(int32_t b, Reason r) {
    Decision d;
    d.backend = b;
    d.reason = r;
    return d;
}

// Generic argmin over the eligible mask with a rotated start. score(b) returns a float.
template <typename Score>
int32_t argmin(uint64_t mask, uint32_t start, Score score) {
    uint64_t rot = rotate_mask(mask, start);
    int32_t best = NONE;
    float best_s = 0;
    while (rot) {
        uint32_t b = (ctz(rot) + start) & 63;
        rot &= rot - 1;
        float s = score(b);
        if (best == NONE || s < best_s) {
            best = static_cast<int32_t>(b);
            best_s = s;
        }
    }
    return best;
}

inline float load_tokens(const scoreboard::BackendState& s) {
    return s.queued_prompt_tokens + s.remaining_decode_tokens;
}

}  // namespace

const char* reason_text(Reason r) {
    auto i = static_cast<size_t>(r);
    return i < static_cast<size_t>(Reason::COUNT) ? REASON_TEXT[i] : "?";
}
const char* kind_name(Kind k) {
    auto i = static_cast<size_t>(k);
    return i < static_cast<size_t>(Kind::COUNT) ? KIND_NAME[i] : "?";
}
bool parse_kind(std::string_view s, Kind& out) {
    for (size_t i = 0; i < static_cast<size_t>(Kind::COUNT); ++i)
        if (s == KIND_NAME[i]) {
            out = static_cast<Kind>(i);
            return true;
        }
    return false;
}
const char* objective_name(Objective o) {
    switch (o) {
        case Objective::Ttft: return "ttft";
        case Objective::E2e: return "e2e";
        case Objective::Cost: return "cost";
    }
    return "?";
}
bool parse_objective(std::string_view s, Objective& out) {
    if (s == "ttft") out = Objective::Ttft;
    else if (s == "e2e") out = Objective::E2e;
    else if (s == "cost") out = Objective::Cost;
    else return false;
    return true;
}

uint64_t eligible(const RequestFeatures& f, const View& v, Reason* why) {
    uint32_t n = std::min<uint32_t>(v.n, scoreboard::MAX_BACKENDS);
    if (n == 0) {
        if (why) *why = Reason::NoBackends;
        return 0;
    }
    uint64_t model_bit = f.model < 64 ? (1ull << f.model) : 0;
    uint64_t need_ctx = static_cast<uint64_t>(f.prompt_tokens) + f.max_tokens;
    uint64_t m_model = 0, m_ctx = 0, m_tags = 0, m_zone = 0;
    for (uint32_t b = 0; b < n; ++b) {
        const auto& s = v.b[b];
        uint64_t bit = 1ull << b;
        m_model |= (s.models & model_bit) ? bit : 0;
        m_ctx |= (need_ctx <= s.max_context) ? bit : 0;
        m_tags |= ((s.tags & f.required_tags) == f.required_tags) ? bit : 0;
        m_zone |= (s.zone_bit & f.allowed_zones) ? bit : 0;
    }
    uint64_t m = m_model;
    if (!m) { if (why) *why = Reason::NoModel; return 0; }
    m &= m_ctx;
    if (!m) { if (why) *why = Reason::NoContextFit; return 0; }
    m &= m_tags;
    if (!m) { if (why) *why = Reason::NoTags; return 0; }
    m &= m_zone;
    if (!m) { if (why) *why = Reason::NoTrustZone; return 0; }
    m &= v.available;
    if (!m) { if (why) *why = Reason::NoHealthy; return 0; }
    return m;
}

uint32_t expected_output(const Params& p, const RequestFeatures& f, const View& v) {
    if (f.expected_output_tokens) return f.expected_output_tokens;
    float typical = f.model < scoreboard::MAX_MODELS ? v.typical_output[f.model] : 0.0f;
    uint32_t t = typical > 0 ? static_cast<uint32_t>(typical + 0.5f) : p.default_output_tokens;
    if (t == 0) t = 1;
    return f.max_tokens ? std::min(f.max_tokens, t) : t;
}

namespace {

Decision token_aware(const Params& p, const RequestFeatures& f, const View& v, uint64_t mask,
                     State& st) {
    PrefixMatch pm;
    if (st.prefix && f.n_prefix && p.prefix_bonus > 0)
        pm = st.prefix->lookup(f.prefix_hash, f.prefix_tokens, f.n_prefix, v);
    const float prompt = static_cast<float>(f.prompt_tokens);
    const uint32_t out_tokens = expected_output(p, f, v);
    const float out = static_cast<float>(out_tokens);

    // Predictions for one backend (docs/routing.md, "token_aware"):
    //   step(n)  = (1 + slowdown * (n - 1)) / decode_tps      engine step time with n decoding
    //   work     = queued_prompt + (prompt - bonus * cached)  prompt tokens ahead of and incl. ours
    //   ttft     = ratio * (work * s_per_token + (work / chunk + [running > 0] * 0.5) * step(running))
    //              + batch-full wait
    //   e2e      = ttft + out * step(running + 1)
    auto predict = [&](uint32_t b, float& ttft, float& e2e, float& cached) {
        const auto& s = v.b[b];
        cached = 0;
        for (uint32_t i = 0; i < pm.n; ++i)
            if (pm.backend[i] == static_cast<int32_t>(b)) cached = static_cast<float>(pm.tokens[i]);
        cached = std::min(cached * p.prefix_bonus, prompt > 0 ? prompt - 1 : 0.0f);
        float running = s.running;
        float inv_tps = 1.0f / s.decode_tps;
        float step_r = (1.0f + s.batch_slowdown * std::max(running - 1.0f, 0.0f)) * inv_tps;
        float step_r1 = (1.0f + s.batch_slowdown * running) * inv_tps;
        float work = s.queued_prompt_tokens + prompt - cached;
        float steps = work * s.inv_chunk_tokens + (running > 0 ? 0.5f : 0.0f);
        float t = work * s.prefill_s_per_token + steps * step_r;
        // A full batch admits us only when some sequence finishes: expected wait is the mean
        // remaining decode time of the running ones, scaled by how far over the limit we are.
        float over = s.outstanding + 1.0f - s.max_batch;
        if (over > 0) {
            float per_seq_left = s.remaining_decode_tokens / std::max(s.outstanding, 1.0f);
            t += over / s.max_batch * per_seq_left * step_r1;
        }
        ttft = s.ttft_ratio * t;
        e2e = ttft + out * step_r1;
    };

    Decision d;
    uint32_t start = static_cast<uint32_t>(st.rr_next++ % v.n);
    uint64_t rot = rotate_mask(mask, start);
    float best_key = 0;
    float best_ttft = 0, best_e2e = 0, best_cached = 0;
    int32_t best = NONE;
    bool best_in_budget = false;
    const bool cost = p.objective == Objective::Cost;
    while (rot) {
        uint32_t b = (ctz(rot) + start) & 63;
        rot &= rot - 1;
        float ttft, e2e, cached;
        predict(b, ttft, e2e, cached);
        float key;
        bool in_budget = true;
        switch (p.objective) {
            case Objective::Ttft: key = ttft; break;
            case Objective::E2e: key = e2e; break;
            default:
                in_budget = e2e <= p.latency_budget_s;
                key = in_budget ? (prompt - cached + out) * v.b[b].cost_per_token : e2e;
                break;
        }
        bool better;
        if (best == NONE) better = true;
        else if (cost && in_budget != best_in_budget) better = in_budget;
        else better = key < best_key;
        if (better) {
            best = static_cast<int32_t>(b);
            best_key = key;
            best_ttft = ttft;
            best_e2e = e2e;
            best_cached = cached;
            best_in_budget = in_budget;
        }
    }
    d.backend = best;
    switch (p.objective) {
        case Objective::Ttft: d.reason = Reason::LowestTtft; break;
        case Objective::E2e: d.reason = Reason::LowestE2e; break;
        default: d.reason = best_in_budget ? Reason::CheapestInBudget : Reason::FastestOverBudget; break;
    }
    d.predicted_ttft_s = best_ttft;
    d.predicted_e2e_s = best_e2e;
    if (best != NONE) {
        const auto& s = v.b[best];
        d.predicted_decode_tps = s.decode_tps / (1.0f + s.batch_slowdown * s.running);
    }
    d.cached_tokens = static_cast<uint32_t>(best_cached);
    d.expected_output_tokens = out_tokens;
    return d;
}

Decision prefix_hash(const Params& p, const RequestFeatures& f, const View& v, uint64_t mask) {
    // Consistent hashing with bounded load (Mirrokni, Thorup, Zadimoghaddam 2018; HAProxy
    // hash-balance-factor): rendezvous (highest-random-weight) order of backends for the key; the
    // first one whose outstanding count is below ceil(c * (total + 1) / n) takes the request.
    // Rendezvous needs no ring to rebuild when the backend set changes, and only the keys of a
    // removed backend move.
    uint64_t key = f.n_prefix ? f.prefix_hash[0] : f.request_hash;
    uint32_t n = popcount(mask);
    float total = 1;
    for (uint64_t m = mask; m; m &= m - 1) total += v.b[ctz(m)].outstanding;
    float bound = std::ceil(p.bounded_load * total / static_cast<float>(n));
    int32_t home = NONE, best = NONE;
    uint64_t home_w = 0, best_w = 0;
    for (uint64_t m = mask; m; m &= m - 1) {
        uint32_t b = ctz(m);
        uint64_t w = mix64(key ^ mix64(b + 1));
        if (home == NONE || w > home_w) { home = static_cast<int32_t>(b); home_w = w; }
        if (v.b[b].outstanding + 1 <= bound && (best == NONE || w > best_w)) {
            best = static_cast<int32_t>(b);
            best_w = w;
        }
    }
    if (best == NONE) best = home;  // cannot happen (someone is at or below the mean), be safe
    Decision d = pick(best, best == home ? Reason::PrefixHome : Reason::PrefixSpill);
    return d;
}

}  // namespace

Decision decide(const Params& p, const RequestFeatures& f, const View& v, State& st, Rng& rng) {
    Reason why = Reason::NoBackends;
    uint64_t mask = eligible(f, v, &why);
    if (!mask) return none(why);
    Decision d;
    switch (p.kind) {
        case Kind::RoundRobin: {
            // Cursor over backend indices; skips ineligible ones.
            uint32_t start = static_cast<uint32_t>(st.rr_next % v.n);
            uint64_t rot = rotate_mask(mask, start);
            uint32_t b = (ctz(rot) + start) & 63;
            st.rr_next = b + 1;
            d = pick(static_cast<int32_t>(b), Reason::RoundRobin);
            break;
        }
        case Kind::Random:
            d = pick(static_cast<int32_t>(nth_bit(mask, rng.below(popcount(mask)))), Reason::Random);
            break;
        case Kind::LeastRequests: {
            uint32_t start = static_cast<uint32_t>(st.rr_next++ % v.n);
            d = pick(argmin(mask, start, [&](uint32_t b) { return v.b[b].outstanding; }),
                     Reason::LeastRequests);
            break;
        }
        case Kind::PowerOfTwo: {
            uint32_t n = popcount(mask);
            uint32_t a = nth_bit(mask, rng.below(n));
            uint32_t b = a;
            if (n > 1) {
                uint32_t k = rng.below(n - 1);
                b = nth_bit(mask & ~(1ull << a), k);
            }
            int32_t c = v.b[b].outstanding < v.b[a].outstanding ? static_cast<int32_t>(b)
                                                                : static_cast<int32_t>(a);
            d = pick(c, Reason::PowerOfTwo);
            break;
        }
        case Kind::LeastTokens: {
            uint32_t start = static_cast<uint32_t>(st.rr_next++ % v.n);
            d = pick(argmin(mask, start, [&](uint32_t b) { return load_tokens(v.b[b]); }),
                     Reason::LeastTokens);
            break;
        }
        case Kind::PrefixHash:
            d = prefix_hash(p, f, v, mask);
            break;
        case Kind::TokenAware:
        default:
            return token_aware(p, f, v, mask, st);
    }
    d.expected_output_tokens = expected_output(p, f, v);
    return d;
}

uint32_t race_candidates(const RequestFeatures& f, const View& v, Rng& rng, uint32_t n,
                         int32_t* out, Reason* why) {
    uint64_t mask = eligible(f, v, why);
    uint32_t k = 0;
    while (mask && k < n) {
        uint32_t b = nth_bit(mask, rng.below(popcount(mask)));
        out[k++] = static_cast<int32_t>(b);
        mask &= ~(1ull << b);
    }
    return k;
}

ModelChoice select_model(const Alias& a, const Params& p, const RequestFeatures& f, const View& v,
                         State& st, Rng& rng) {
    ModelChoice best;
    float best_cost = 0;
    bool best_in_budget = false;
    Reason first_why = Reason::NoModel;
    Params tp = p;
    tp.kind = Kind::TokenAware;
    tp.objective = Objective::E2e;
    for (uint32_t i = 0; i < a.n && i < MAX_ALIAS_CANDIDATES; ++i) {
        RequestFeatures g = f;
        g.model = a.candidates[i];
        Decision d = decide(tp, g, v, st, rng);
        if (!d.ok()) {
            if (i == 0) first_why = d.reason;
            continue;
        }
        bool in_budget = d.predicted_e2e_s <= p.latency_budget_s;
        const auto& s = v.b[d.backend];
        float cost = (static_cast<float>(f.prompt_tokens - d.cached_tokens) +
                      static_cast<float>(d.expected_output_tokens)) * s.cost_per_token;
        bool better;
        if (best.model == NONE) better = true;
        else if (in_budget != best_in_budget) better = in_budget;
        else if (in_budget) better = cost < best_cost;
        else better = d.predicted_e2e_s < best.decision.predicted_e2e_s;
        if (better) {
            best.model = static_cast<int32_t>(g.model);
            best.decision = d;
            best.decision.reason = in_budget ? Reason::CheapestInBudget : Reason::FastestOverBudget;
            best_cost = cost;
            best_in_budget = in_budget;
        }
    }
    if (best.model == NONE) best.decision = none(a.n ? first_why : Reason::NoModel);
    (void)rng;
    return best;
}

}  // namespace tlb::policy
