// Routing policies: pure functions of (request features, scoreboard view, per-worker state, rng)
// -> decision. The same code runs in the data plane (one call per request on a worker lcore) and
// in tokenlb-sim, so every function here follows the worker-path rules: no allocation, no
// exceptions, no locks, no syscalls. Formulas and rationale: docs/routing.md.
//
// "Pure" here means: the result depends only on the arguments. The only mutable inputs are the
// caller-owned State (round-robin cursor, read-only pointer to the worker's prefix directory)
// and Rng, both passed explicitly so tests and the simulator are reproducible.
#pragma once

#include <cstdint>
#include <string_view>

#include "policy/prefix.hpp"
#include "scoreboard/view.hpp"

namespace tlb::policy {

using scoreboard::View;

constexpr int32_t NONE = -1;
constexpr uint32_t MAX_ALIAS_CANDIDATES = 8;

enum class Kind : uint8_t {
    RoundRobin,
    Random,
    LeastRequests,
    PowerOfTwo,
    LeastTokens,
    PrefixHash,
    TokenAware,
    COUNT
};

enum class Objective : uint8_t { Ttft, E2e, Cost };

enum class Reason : uint8_t {
    // A backend was chosen.
    RoundRobin,
    Random,
    LeastRequests,
    PowerOfTwo,
    LeastTokens,
    PrefixHome,        // prefix_hash: the key's first choice had room
    PrefixSpill,       // prefix_hash: first choices over the load bound, next in hash order
    LowestTtft,        // token_aware, objective ttft
    LowestE2e,         // token_aware, objective e2e
    CheapestInBudget,  // token_aware, objective cost: cheapest whose predicted e2e fits the budget
    FastestOverBudget, // token_aware, objective cost: nothing fits the budget, fastest e2e instead
    // No backend: the first filter (in this order) that left nothing.
    NoBackends,        // the view holds no backend at all
    NoModel,           // no backend serves the requested model
    NoContextFit,      // prompt + max_tokens exceeds every candidate's max context
    NoTags,            // no candidate has all required capability tags
    NoTrustZone,       // no candidate is in an allowed trust zone
    NoHealthy,         // candidates exist but all are down, ejected, draining or weight 0
    COUNT
};

const char* reason_text(Reason r);  // short, stable, for logs and the access log
const char* kind_name(Kind k);
bool parse_kind(std::string_view s, Kind& out);
const char* objective_name(Objective o);
bool parse_objective(std::string_view s, Objective& out);

// What the data plane (or the simulator) knows about one request before routing it.
struct RequestFeatures {
    uint32_t model = 0;                  // id in the scoreboard model table
    uint32_t prompt_tokens = 0;          // estimate
    uint32_t max_tokens = 0;             // 0 = not given by the client
    uint32_t expected_output_tokens = 0; // 0 = unknown: min(max_tokens, learned typical length)
    uint64_t required_tags = 0;          // every bit must be a capability tag of the backend
    // Soft: among the backends every filter left (healthy ones included), keep those with tag t for
    // each bit t in turn (lowest first) when at least one of them has it; never empties the set.
    uint64_t preferred_tags = 0;
    uint32_t allowed_zones = ~0u;        // bit z: may be served in trust zone z
    uint32_t n_prefix = 0;               // prefix points used, <= MAX_PREFIX_POINTS
    uint64_t request_hash = 0;           // fallback key for prefix_hash (e.g. connection hash)
    uint64_t prefix_hash[MAX_PREFIX_POINTS] = {};    // cumulative hash of the first ... tokens
    uint32_t prefix_tokens[MAX_PREFIX_POINTS] = {};  // ... tokens, strictly ascending
};

// Fill f's prefix points from a prompt's chained block hashes (block_hashes[i] covers the first
// i+1 blocks, as the understand step's prefix fingerprint produces them): points at the blocks
// chosen by prefix_point_blocks(), each covering (block count x tokens_per_block) tokens.
void set_prefix_points(RequestFeatures& f, const uint64_t* block_hashes, uint32_t n_blocks,
                       float tokens_per_block);

struct Params {
    Kind kind = Kind::TokenAware;
    Objective objective = Objective::Ttft;
    float latency_budget_s = 10.0f;   // objective cost: max predicted e2e
    float prefix_bonus = 1.0f;        // 0..1: fraction of matched prefix tokens assumed cached
    float bounded_load = 1.25f;       // prefix_hash: max load = ceil(bounded_load * mean)
    uint32_t default_output_tokens = 256;  // when neither max_tokens nor a learned value exists
};

// xoshiro-style small rng; deterministic for a seed.
struct Rng {
    uint64_t s = 0x9e3779b97f4a7c15ull;
    explicit Rng(uint64_t seed = 1) : s(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull) {}
    uint64_t next() {  // splitmix64
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    uint32_t below(uint32_t n) { return static_cast<uint32_t>((next() >> 32) * n >> 32); }
};

struct State {
    uint64_t rr_next = 0;                      // round-robin / tie-break cursor
    const PrefixDirectory* prefix = nullptr;   // worker's prefix directory, may be null
};

struct Decision {
    int32_t backend = NONE;
    Reason reason = Reason::NoBackends;
    float predicted_ttft_s = 0;       // token_aware only (0 for baselines)
    float predicted_e2e_s = 0;
    float predicted_decode_tps = 0;   // per-sequence rate assumed for this request
    uint32_t cached_tokens = 0;       // prompt tokens assumed cached on the chosen backend
    uint32_t expected_output_tokens = 0;
    bool ok() const { return backend != NONE; }
    const char* text() const { return reason_text(reason); }
};

// Bitmask of backends passing every filter (model, context fit, tags, trust zone, available).
// When the result is 0, *why (if non-null) says which filter left nothing.
uint64_t eligible(const RequestFeatures& f, const View& v, Reason* why);

// Expected output tokens the policies assume for f.
uint32_t expected_output(const Params& p, const RequestFeatures& f, const View& v);

Decision decide(const Params& p, const RequestFeatures& f, const View& v, State& st, Rng& rng);

// Racing baseline support: up to n distinct eligible backends chosen uniformly at random.
// Returns how many were written to out (0 = no backend; *why says why).
uint32_t race_candidates(const RequestFeatures& f, const View& v, Rng& rng, uint32_t n,
                         int32_t* out, Reason* why);

// `model: "auto"`-style aliases: pick a concrete model among candidates.
struct Alias {
    uint32_t n = 0;
    uint32_t candidates[MAX_ALIAS_CANDIDATES] = {};
};
struct ModelChoice {
    int32_t model = NONE;
    Decision decision;  // routing decision for the chosen model (token_aware with p's objective)
};
// For each candidate model: filters (tags, context fit, zone, health) and a token_aware e2e
// prediction. Among the candidates whose chosen backend has the most of f.preferred_tags, picks
// the cheapest whose predicted e2e <= p.latency_budget_s; when none fits, the fastest. Candidate
// order breaks ties (list the preferred model first).
ModelChoice select_model(const Alias& a, const Params& p, const RequestFeatures& f, const View& v,
                         State& st, Rng& rng);

}  // namespace tlb::policy
