#include "policy/policy.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

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

inline float load_tokens(const View& v, uint32_t b) { return v.queued[b] + v.remaining[b]; }

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
    uint64_t all = n == 64 ? ~0ull : (1ull << n) - 1;
    uint64_t m = f.model < scoreboard::MAX_MODELS ? v.model_mask[f.model] & all : 0;
    if (!m) { if (why) *why = Reason::NoModel; return 0; }
    const uint32_t need_ctx = static_cast<uint32_t>(
        std::min<uint64_t>(static_cast<uint64_t>(f.prompt_tokens) + f.max_tokens, UINT32_MAX));
    uint64_t fit = 0;
    for (uint64_t c = m; c; c &= c - 1) {
        uint32_t b = ctz(c);
        fit |= static_cast<uint64_t>(need_ctx <= v.max_context[b]) << b;
    }
    m = fit;
    if (!m) { if (why) *why = Reason::NoContextFit; return 0; }
    for (uint64_t t = f.required_tags; t && m; t &= t - 1) m &= v.tag_mask[ctz(t)];
    if (!m) { if (why) *why = Reason::NoTags; return 0; }
    if (f.allowed_zones != ~0u) {
        uint64_t zm = 0;
        for (uint32_t z = f.allowed_zones; z; z &= z - 1) zm |= v.zone_mask[__builtin_ctz(z)];
        m &= zm;
    }
    if (!m) { if (why) *why = Reason::NoTrustZone; return 0; }
    m &= v.available;
    if (!m) { if (why) *why = Reason::NoHealthy; return 0; }
    for (uint64_t t = f.preferred_tags; t; t &= t - 1) {
        uint64_t k = m & v.tag_mask[ctz(t)];
        if (k) m = k;
    }
    return m;
}

void set_prefix_points(RequestFeatures& f, const uint64_t* block_hashes, uint32_t n_blocks,
                       float tokens_per_block) {
    uint32_t blocks[MAX_PREFIX_POINTS];
    uint32_t n = prefix_point_blocks(n_blocks, blocks);
    for (uint32_t i = 0; i < n; ++i) {
        f.prefix_hash[i] = block_hashes[blocks[i] - 1];
        f.prefix_tokens[i] = static_cast<uint32_t>(static_cast<float>(blocks[i]) * tokens_per_block);
    }
    f.n_prefix = n;
}

uint32_t expected_output(const Params& p, const RequestFeatures& f, const View& v) {
    if (f.expected_output_tokens) return f.expected_output_tokens;
    float typical = f.model < scoreboard::MAX_MODELS ? v.typical_output[f.model] : 0.0f;
    uint32_t t = typical > 0 ? static_cast<uint32_t>(typical + 0.5f) : p.default_output_tokens;
    if (t == 0) t = 1;
    return f.max_tokens ? std::min(f.max_tokens, t) : t;
}

namespace {

// Predictions for backend b (docs/routing.md, "token_aware"):
//   step(n)  = (1 + slowdown * (n - 1)) * step1          engine step time with n decoding
//   work     = queued_prompt + prompt - cached           prompt tokens ahead of and incl. ours
//   ttft     = ratio * (work * prefill_s + (work / chunk + [running > 0] / 2) * step(running)
//                       + batch-full wait)
//   e2e      = ttft + out * step(running + 1)
// Written branch-free over structure-of-arrays fields so the loop over all backends vectorises.
struct Pred {
    float ttft, e2e;
};
inline Pred predict(const View& v, uint32_t b, float prompt_left, float out) {
    float running = v.running[b];
    float step_r = (1.0f + v.slowdown[b] * std::max(running - 1.0f, 0.0f)) * v.step1_s[b];
    float step_r1 = (1.0f + v.slowdown[b] * running) * v.step1_s[b];
    float work = v.queued[b] + prompt_left;
    float steps = work * v.inv_chunk[b] + (running > 0.0f ? 0.5f : 0.0f);
    float t = work * v.prefill_s[b] + steps * step_r;
    // A full batch admits us only when some sequence finishes: expected wait is the mean
    // remaining decode time of the outstanding ones, scaled by how far over the limit we are.
    float over = std::max(v.outstanding[b] + 1.0f - v.max_batch[b], 0.0f);
    float per_seq_left = v.remaining[b] / std::max(v.outstanding[b], 1.0f);
    t += over * v.inv_max_batch[b] * per_seq_left * step_r1;
    Pred p;
    p.ttft = v.ttft_ratio[b] * t;
    p.e2e = p.ttft + out * step_r1;
    return p;
}

Decision token_aware(const Params& p, const RequestFeatures& f, const View& v, uint64_t mask,
                     State& st) {
    const uint32_t n = std::min<uint32_t>(v.n, scoreboard::MAX_BACKENDS);
    PrefixMatch pm;
    if (st.prefix && f.n_prefix && p.prefix_bonus > 0)
        pm = st.prefix->lookup(f.prefix_hash, f.prefix_tokens, f.n_prefix, v);
    const float prompt = static_cast<float>(f.prompt_tokens);
    const uint32_t out_tokens = expected_output(p, f, v);
    const float out = static_cast<float>(out_tokens);
    const float budget = p.latency_budget_s;
    constexpr float INF = std::numeric_limits<float>::infinity();
    constexpr float OVER_BUDGET = 1e4f;

    // Pass 1 (vectorised): key of every backend without prefix bonus (eligibility is applied in
    // pass 3, so these loops have no branches).
    // Objective cost: cost within budget, else a penalty above any in-budget cost (1e4 + e2e;
    // small enough that float still resolves milliseconds of e2e)
    // so the fastest over-budget backend wins only when nothing fits.
    alignas(64) float key[scoreboard::MAX_BACKENDS];
    alignas(64) float ttft[scoreboard::MAX_BACKENDS];
    alignas(64) float e2e[scoreboard::MAX_BACKENDS];
    const Objective obj = p.objective;
    for (uint32_t b = 0; b < n; ++b) {
        Pred pr = predict(v, b, prompt, out);
        ttft[b] = pr.ttft;
        e2e[b] = pr.e2e;
    }
    auto key_of = [&](uint32_t b, float cached) {
        if (obj == Objective::Ttft) return ttft[b];
        if (obj == Objective::E2e) return e2e[b];
        float c = (prompt - cached + out) * v.cost_per_token[b];
        return e2e[b] <= budget ? c : OVER_BUDGET + e2e[b];
    };
    if (obj == Objective::Ttft) {
        for (uint32_t b = 0; b < n; ++b) key[b] = ttft[b];
    } else if (obj == Objective::E2e) {
        for (uint32_t b = 0; b < n; ++b) key[b] = e2e[b];
    } else {
        for (uint32_t b = 0; b < n; ++b) {
            float c = (prompt + out) * v.cost_per_token[b];
            float e = e2e[b];
            key[b] = e <= budget ? c : OVER_BUDGET + e;
        }
    }
    // Pass 2: backends holding a prefix of this prompt get it (partly) as cached work.
    float cached_of[PREFIX_MATCH_MAX] = {};
    for (uint32_t i = 0; i < pm.n; ++i) {
        uint32_t b = static_cast<uint32_t>(pm.backend[i]);
        if (b >= n || !((mask >> b) & 1)) continue;
        float cached = std::min(static_cast<float>(pm.tokens[i]) * p.prefix_bonus,
                                prompt > 0 ? prompt - 1 : 0.0f);
        cached_of[i] = cached;
        Pred pr = predict(v, b, prompt - cached, out);
        ttft[b] = pr.ttft;
        e2e[b] = pr.e2e;
        key[b] = key_of(b, cached);
    }
    // Pass 3: minimum over eligible backends, then the first eligible backend holding it from
    // a rotating start (ties spread).
    float best_key = INF;
    for (uint64_t m = mask; m; m &= m - 1) best_key = std::min(best_key, key[ctz(m)]);
    const uint32_t start = static_cast<uint32_t>(st.rr_next++ % n);
    uint64_t rot = rotate_mask(mask, start);
    int32_t best = NONE;
    for (; rot; rot &= rot - 1) {
        uint32_t b = (ctz(rot) + start) & 63;
        if (key[b] == best_key) { best = static_cast<int32_t>(b); break; }
    }
    Decision d;
    if (best == NONE) {  // NaN keys (corrupt view): fall back to the first eligible backend
        best = static_cast<int32_t>(ctz(mask));
    }
    d.backend = best;
    switch (obj) {
        case Objective::Ttft: d.reason = Reason::LowestTtft; break;
        case Objective::E2e: d.reason = Reason::LowestE2e; break;
        default:
            d.reason = e2e[best] <= budget ? Reason::CheapestInBudget : Reason::FastestOverBudget;
            break;
    }
    d.predicted_ttft_s = ttft[best];
    d.predicted_e2e_s = e2e[best];
    d.predicted_decode_tps = 1.0f / ((1.0f + v.slowdown[best] * v.running[best]) * v.step1_s[best]);
    for (uint32_t i = 0; i < pm.n; ++i)
        if (pm.backend[i] == best) d.cached_tokens = static_cast<uint32_t>(cached_of[i]);
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
    for (uint64_t m = mask; m; m &= m - 1) total += v.outstanding[ctz(m)];
    float bound = std::ceil(p.bounded_load * total / static_cast<float>(n));
    int32_t home = NONE, best = NONE;
    uint64_t home_w = 0, best_w = 0;
    for (uint64_t m = mask; m; m &= m - 1) {
        uint32_t b = ctz(m);
        uint64_t w = mix64(key ^ mix64(b + 1));
        if (home == NONE || w > home_w) { home = static_cast<int32_t>(b); home_w = w; }
        if (v.outstanding[b] + 1 <= bound && (best == NONE || w > best_w)) {
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
            d = pick(argmin(mask, start, [&](uint32_t b) { return v.outstanding[b]; }),
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
            int32_t c = v.outstanding[b] < v.outstanding[a] ? static_cast<int32_t>(b)
                                                                : static_cast<int32_t>(a);
            d = pick(c, Reason::PowerOfTwo);
            break;
        }
        case Kind::LeastTokens: {
            uint32_t start = static_cast<uint32_t>(st.rr_next++ % v.n);
            d = pick(argmin(mask, start, [&](uint32_t b) { return load_tokens(v, b); }),
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
    int best_pref = -1;
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
        float cost = (static_cast<float>(f.prompt_tokens - d.cached_tokens) +
                      static_cast<float>(d.expected_output_tokens)) * v.cost_per_token[d.backend];
        // Preferred tags across models too: a candidate whose chosen backend has more of them
        // wins before budget and cost (within a model, eligible() already kept those backends).
        const int pref = __builtin_popcountll(f.preferred_tags & v.b[d.backend].tags);
        bool better;
        if (best.model == NONE) better = true;
        else if (pref != best_pref) better = pref > best_pref;
        else if (in_budget != best_in_budget) better = in_budget;
        else if (in_budget) better = cost < best_cost;
        else better = d.predicted_e2e_s < best.decision.predicted_e2e_s;
        if (better) {
            best.model = static_cast<int32_t>(g.model);
            best.decision = d;
            best.decision.reason = in_budget ? Reason::CheapestInBudget : Reason::FastestOverBudget;
            best_cost = cost;
            best_in_budget = in_budget;
            best_pref = pref;
        }
    }
    if (best.model == NONE) best.decision = none(a.n ? first_why : Reason::NoModel);
    (void)rng;
    return best;
}

}  // namespace tlb::policy
