// lib/policy: golden request -> decision tables on hand-built scoreboard views, filters and their
// "no backend" reasons, ties, prefix directory, model aliases, race candidates.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "policy/policy.hpp"
#include "scoreboard/scoreboard.hpp"

using namespace tlb::policy;
using tlb::scoreboard::BackendState;

namespace {

// One backend row of a hand-built view.
struct Row {
    float outstanding = 0, queued = 0, running = 0, remaining = 0;
    float prefill_tps = 10000, decode_tps = 50;
    float cost_per_mtok = 1;
    uint64_t models = 1, tags = 0;
    uint32_t zone = 0, max_context = 8192;
    bool available = true;
};

View make_view(const std::vector<Row>& rows) {
    View v;
    v.n = static_cast<uint32_t>(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        BackendState& s = v.b[i];
        s.models = r.models;
        s.tags = r.tags;
        s.zone_bit = 1u << r.zone;
        s.max_context = r.max_context;
        s.outstanding = r.outstanding;
        s.queued_prompt_tokens = r.queued;
        s.running = r.running;
        s.remaining_decode_tokens = r.remaining;
        s.prefill_s_per_token = 1.0f / r.prefill_tps;
        s.decode_tps = r.decode_tps;
        s.batch_slowdown = 0.01f;
        s.max_batch = 256;
        s.cost_per_token = r.cost_per_mtok * 1e-6f;
        s.inv_chunk_tokens = 1.0f / 8192;
        s.kv_capacity_tokens = 100000;
        s.weight = 100;
        if (r.available) v.available |= 1ull << i;
    }
    v.finalize();
    return v;
}

RequestFeatures req(uint32_t prompt, uint32_t max_tokens = 256) {
    RequestFeatures f;
    f.model = 0;
    f.prompt_tokens = prompt;
    f.max_tokens = max_tokens;
    return f;
}

Decision run(Kind k, const RequestFeatures& f, const View& v, uint64_t seed = 1,
             Objective o = Objective::Ttft) {
    Params p;
    p.kind = k;
    p.objective = o;
    State st;
    Rng rng(seed);
    return decide(p, f, v, st, rng);
}

}  // namespace

TEST(PolicyNames, RoundTrip) {
    for (int i = 0; i < static_cast<int>(Kind::COUNT); ++i) {
        Kind k;
        ASSERT_TRUE(parse_kind(kind_name(static_cast<Kind>(i)), k));
        EXPECT_EQ(static_cast<int>(k), i);
    }
    Kind k;
    EXPECT_FALSE(parse_kind("fastest", k));
    Objective o;
    EXPECT_TRUE(parse_objective("cost", o));
    EXPECT_EQ(o, Objective::Cost);
    EXPECT_FALSE(parse_objective("speed", o));
    for (int i = 0; i < static_cast<int>(Reason::COUNT); ++i)
        EXPECT_STRNE(reason_text(static_cast<Reason>(i)), "?");
}

// ---- filters ----

struct FilterCase {
    const char* what;
    Row row;
    RequestFeatures f;
    Reason why;
};

TEST(PolicyFilters, EachFilterNamesItself) {
    RequestFeatures base = req(1000, 256);
    std::vector<FilterCase> cases;
    { Row r; r.models = 0b10; cases.push_back({"model", r, base, Reason::NoModel}); }
    { Row r; r.max_context = 1200; cases.push_back({"context", r, base, Reason::NoContextFit}); }
    { Row r; r.tags = 0b01; RequestFeatures f = base; f.required_tags = 0b11;
      cases.push_back({"tags", r, f, Reason::NoTags}); }
    { Row r; r.zone = 2; RequestFeatures f = base; f.allowed_zones = 0b01;
      cases.push_back({"zone", r, f, Reason::NoTrustZone}); }
    { Row r; r.available = false; cases.push_back({"health", r, base, Reason::NoHealthy}); }
    for (const auto& c : cases) {
        View v = make_view({c.row, c.row});
        for (int k = 0; k < static_cast<int>(Kind::COUNT); ++k) {
            Decision d = run(static_cast<Kind>(k), c.f, v);
            EXPECT_FALSE(d.ok()) << c.what << " " << kind_name(static_cast<Kind>(k));
            EXPECT_EQ(d.backend, NONE);
            EXPECT_EQ(d.reason, c.why) << c.what;
            EXPECT_NE(std::string(d.text()).find("no backend"), std::string::npos);
        }
    }
    View empty;
    EXPECT_EQ(run(Kind::TokenAware, base, empty).reason, Reason::NoBackends);
}

TEST(PolicyFilters, ExactContextFitAndTagSubsetAreAllowed) {
    Row r;
    r.max_context = 1256;
    r.tags = 0b111;
    RequestFeatures f = req(1000, 256);
    f.required_tags = 0b101;
    View v = make_view({r});
    EXPECT_EQ(run(Kind::TokenAware, f, v).backend, 0);
    Reason why;
    EXPECT_EQ(eligible(f, v, &why), 1u);
}

TEST(PolicyFilters, MaskMixesFilters) {
    // 0: wrong model, 1: too small, 2: down, 3: ok, 4: ok but wrong zone.
    Row bad_model; bad_model.models = 0b10;
    Row small; small.max_context = 512;
    Row down; down.available = false;
    Row ok;
    Row zone; zone.zone = 3;
    View v = make_view({bad_model, small, down, ok, zone});
    RequestFeatures f = req(1000, 100);
    f.allowed_zones = 1;
    Reason why;
    EXPECT_EQ(eligible(f, v, &why), 1ull << 3);
    for (int k = 0; k < static_cast<int>(Kind::COUNT); ++k)
        for (uint64_t seed = 1; seed < 20; ++seed)
            EXPECT_EQ(run(static_cast<Kind>(k), f, v, seed).backend, 3);
}

TEST(PolicyFilters, PreferredTagsNarrowOnlyWhenSomeoneHasThem) {
    // 0: "code" (bit 0), 1: "code" + "math" (bit 1), 2: nothing, 3: "code" but down.
    Row code; code.tags = 0b01;
    Row both; both.tags = 0b11;
    Row plain;
    Row code_down; code_down.tags = 0b01; code_down.available = false;
    View v = make_view({code, both, plain, code_down});
    RequestFeatures f = req(1000, 100);
    Reason why;
    EXPECT_EQ(eligible(f, v, &why), 0b0111u);
    f.preferred_tags = 0b01;
    EXPECT_EQ(eligible(f, v, &why), 0b0011u);  // the healthy "code" backends
    f.preferred_tags = 0b11;
    EXPECT_EQ(eligible(f, v, &why), 0b0010u);  // both tags, lowest bit first
    f.preferred_tags = 0b100;                  // nobody has it: ignored
    EXPECT_EQ(eligible(f, v, &why), 0b0111u);
    f.preferred_tags = 0b101;
    EXPECT_EQ(eligible(f, v, &why), 0b0011u);
    // With the tagged backends gone (down, or already tried), the rest still serve.
    View v2 = make_view({code_down, plain});
    f.preferred_tags = 0b01;
    EXPECT_EQ(eligible(f, v2, &why), 0b10u);
    for (int k = 0; k < static_cast<int>(Kind::COUNT); ++k)
        for (uint64_t seed = 1; seed < 20; ++seed) {
            f.preferred_tags = 0b11;
            EXPECT_EQ(run(static_cast<Kind>(k), f, v, seed).backend, 1) << kind_name(static_cast<Kind>(k));
        }
}

// ---- baselines: golden tables ----

TEST(PolicyRoundRobin, CyclesAndSkipsIneligible) {
    Row ok, off;
    off.available = false;
    View v = make_view({ok, ok, off, ok});
    Params p;
    p.kind = Kind::RoundRobin;
    State st;
    Rng rng(1);
    std::vector<int> got;
    for (int i = 0; i < 7; ++i) got.push_back(decide(p, req(10), v, st, rng).backend);
    EXPECT_EQ(got, (std::vector<int>{0, 1, 3, 0, 1, 3, 0}));
    EXPECT_EQ(decide(p, req(10), v, st, rng).reason, Reason::RoundRobin);
}

TEST(PolicyRandom, OnlyEligibleAndDeterministicPerSeed) {
    Row ok, off;
    off.available = false;
    View v = make_view({ok, off, ok, ok});
    std::set<int> seen;
    for (uint64_t s = 1; s < 200; ++s) {
        Decision a = run(Kind::Random, req(10), v, s);
        EXPECT_EQ(a.backend, run(Kind::Random, req(10), v, s).backend);
        EXPECT_NE(a.backend, 1);
        EXPECT_EQ(a.reason, Reason::Random);
        seen.insert(a.backend);
    }
    EXPECT_EQ(seen, (std::set<int>{0, 2, 3}));
}

TEST(PolicyLeastRequests, GoldenAndTies) {
    struct Case { std::vector<float> outstanding; std::set<int> allowed; };
    std::vector<Case> table = {
        {{3, 1, 2}, {1}},
        {{0, 5, 5}, {0}},
        {{4, 4, 9}, {0, 1}},  // tie: either, never 2
        {{7}, {0}},
    };
    for (const auto& c : table) {
        std::vector<Row> rows;
        for (float o : c.outstanding) { Row r; r.outstanding = o; rows.push_back(r); }
        View v = make_view(rows);
        Params p;
        p.kind = Kind::LeastRequests;
        State st;
        Rng rng(1);
        std::set<int> got;
        for (int i = 0; i < 64; ++i) {
            Decision d = decide(p, req(10), v, st, rng);
            EXPECT_EQ(d.reason, Reason::LeastRequests);
            got.insert(d.backend);
        }
        EXPECT_EQ(got, c.allowed);  // ties are spread, not always the lowest index
    }
}

TEST(PolicyPowerOfTwo, NeverPicksTheWorstOfTwo) {
    Row a, b, c;
    a.outstanding = 0;
    b.outstanding = 5;
    c.outstanding = 10;
    View v = make_view({a, b, c});
    std::set<int> seen;
    for (uint64_t s = 1; s < 300; ++s) {
        Decision d = run(Kind::PowerOfTwo, req(10), v, s);
        EXPECT_NE(d.backend, 2);  // the most loaded loses every pairing
        seen.insert(d.backend);
    }
    EXPECT_EQ(seen, (std::set<int>{0, 1}));
    View two = make_view({c, a});
    for (uint64_t s = 1; s < 50; ++s) EXPECT_EQ(run(Kind::PowerOfTwo, req(10), two, s).backend, 1);
}

TEST(PolicyLeastTokens, CountsQueuedPromptAndRemainingDecode) {
    Row a, b, c;
    a.outstanding = 1; a.queued = 16000;              // one huge prompt queued
    b.outstanding = 6; b.queued = 600; b.remaining = 900;
    c.outstanding = 2; c.queued = 0; c.remaining = 2000;
    View v = make_view({a, b, c});
    EXPECT_EQ(run(Kind::LeastTokens, req(100), v).backend, 1);
    EXPECT_EQ(run(Kind::LeastRequests, req(100), v).backend, 0);  // contrast: counts requests
}

TEST(PolicyPrefixHash, StickyConsistentAndBounded) {
    std::vector<Row> rows(6);
    View v = make_view(rows);
    RequestFeatures f = req(500);
    f.n_prefix = 1;
    f.prefix_hash[0] = 0xabcdef12345ull;
    f.prefix_tokens[0] = 64;
    Decision home = run(Kind::PrefixHash, f, v);
    ASSERT_TRUE(home.ok());
    EXPECT_EQ(home.reason, Reason::PrefixHome);
    for (uint64_t s = 1; s < 20; ++s) EXPECT_EQ(run(Kind::PrefixHash, f, v, s).backend, home.backend);
    // Different keys spread over backends.
    std::set<int> seen;
    for (uint64_t k = 1; k <= 200; ++k) {
        RequestFeatures g = f;
        g.prefix_hash[0] = k * 0x9e3779b97f4a7c15ull;
        seen.insert(run(Kind::PrefixHash, g, v).backend);
    }
    EXPECT_EQ(seen.size(), 6u);
    // Consistency: taking an unrelated backend away does not move the key.
    int other = (home.backend + 1) % 6;
    View v2 = v;
    v2.available &= ~(1ull << other);
    EXPECT_EQ(run(Kind::PrefixHash, f, v2).backend, home.backend);
    // Bounded load: the home backend far above the mean spills to the next in hash order.
    View v3 = v;
    v3.b[home.backend].outstanding = 30;
    v3.finalize();
    Decision spill = run(Kind::PrefixHash, f, v3);
    EXPECT_NE(spill.backend, home.backend);
    EXPECT_EQ(spill.reason, Reason::PrefixSpill);
    // Without prefix points the request hash is the key.
    RequestFeatures nf = req(10);
    nf.request_hash = 42;
    EXPECT_EQ(run(Kind::PrefixHash, nf, v).backend, run(Kind::PrefixHash, nf, v, 9).backend);
}

// ---- token_aware ----

TEST(PolicyTokenAware, GoldenTable) {
    Row fast;   fast.prefill_tps = 20000; fast.decode_tps = 100; fast.cost_per_mtok = 4;
    Row slow;   slow.prefill_tps = 2000;  slow.decode_tps = 20;  slow.cost_per_mtok = 1;
    Row fast_busy = fast; fast_busy.outstanding = 20; fast_busy.queued = 60000; fast_busy.running = 10;
    Row slow_busy = slow; slow_busy.outstanding = 3; slow_busy.queued = 3000; slow_busy.running = 2;
    struct Case { const char* what; std::vector<Row> rows; uint32_t prompt; Objective obj; float budget; int want; Reason why; };
    std::vector<Case> table = {
        {"idle fast beats idle slow", {slow, fast}, 1000, Objective::Ttft, 10, 1, Reason::LowestTtft},
        {"queued work flips it", {slow, fast_busy}, 1000, Objective::Ttft, 10, 0, Reason::LowestTtft},
        {"busy slow vs busier fast", {slow_busy, fast_busy}, 1000, Objective::Ttft, 10, 0, Reason::LowestTtft},
        {"e2e prefers fast decode", {slow, fast}, 100, Objective::E2e, 10, 1, Reason::LowestE2e},
        {"cost: cheap slow fits budget", {fast, slow}, 500, Objective::Cost, 60, 1, Reason::CheapestInBudget},
        {"cost: tight budget -> fast", {slow, fast}, 500, Objective::Cost, 5, 1, Reason::CheapestInBudget},
        {"cost: nothing fits -> fastest", {slow, fast}, 500, Objective::Cost, 0.01f, 1, Reason::FastestOverBudget},
    };
    for (const auto& c : table) {
        View v = make_view(c.rows);
        Params p;
        p.kind = Kind::TokenAware;
        p.objective = c.obj;
        p.latency_budget_s = c.budget;
        State st;
        Rng rng(1);
        RequestFeatures f = req(c.prompt, 256);
        f.expected_output_tokens = 200;
        Decision d = decide(p, f, v, st, rng);
        EXPECT_EQ(d.backend, c.want) << c.what;
        EXPECT_EQ(d.reason, c.why) << c.what;
        EXPECT_GT(d.predicted_ttft_s, 0) << c.what;
        EXPECT_GT(d.predicted_e2e_s, d.predicted_ttft_s) << c.what;
        EXPECT_EQ(d.expected_output_tokens, 200u);
    }
}

TEST(PolicyTokenAware, PredictionMatchesFormulaOnIdleBackend) {
    Row r;
    r.prefill_tps = 8000;
    r.decode_tps = 40;
    View v = make_view({r});
    RequestFeatures f = req(4000, 512);
    f.expected_output_tokens = 100;
    Decision d = run(Kind::TokenAware, f, v);
    // ttft = work/prefill + (work/chunk) * step(0); step(0) = 1/decode_tps (no running seqs).
    double step = 1.0 / 40;
    double ttft = 4000.0 / 8000 + 4000.0 / 8192 * step;
    EXPECT_NEAR(d.predicted_ttft_s, ttft, 1e-4);
    EXPECT_NEAR(d.predicted_e2e_s, ttft + 100 * step, 1e-3);
    // The learned ratio scales the prediction beyond the dead band (1.5x), not within it.
    v.b[0].ttft_ratio = 3;
    v.finalize();
    EXPECT_NEAR(run(Kind::TokenAware, f, v).predicted_ttft_s, 2 * ttft, 2e-4);
    v.b[0].ttft_ratio = 1.3f;
    v.finalize();
    EXPECT_NEAR(run(Kind::TokenAware, f, v).predicted_ttft_s, ttft, 1e-4);
    v.b[0].ttft_ratio = 0.25f;
    v.finalize();
    EXPECT_NEAR(run(Kind::TokenAware, f, v).predicted_ttft_s, 0.375 * ttft, 1e-4);
}

TEST(PolicyTokenAware, ExpectedOutputUsesMaxTokensAndLearnedTypical) {
    View v = make_view({Row{}});
    Params p;
    RequestFeatures f = req(100, 0);
    EXPECT_EQ(expected_output(p, f, v), p.default_output_tokens);
    f.max_tokens = 50;
    EXPECT_EQ(expected_output(p, f, v), 50u);
    v.typical_output[0] = 30;
    EXPECT_EQ(expected_output(p, f, v), 30u);
    f.expected_output_tokens = 77;
    EXPECT_EQ(expected_output(p, f, v), 77u);
}

TEST(PolicyTokenAware, TiesSpreadOverIdenticalBackends) {
    View v = make_view(std::vector<Row>(4));
    Params p;
    State st;
    Rng rng(1);
    std::set<int> seen;
    for (int i = 0; i < 16; ++i) seen.insert(decide(p, req(100), v, st, rng).backend);
    EXPECT_EQ(seen.size(), 4u);
}

TEST(PolicyTokenAware, PrefixBonusPullsToTheBackendHoldingThePrefix) {
    View v = make_view(std::vector<Row>(3));
    PrefixDirectory dir(1024);
    RequestFeatures f = req(3000);
    uint32_t blocks[MAX_PREFIX_POINTS];
    uint32_t n = prefix_point_blocks(3000 / 16, blocks);
    for (uint32_t i = 0; i < n; ++i) {
        f.prefix_hash[i] = 1000 + blocks[i];
        f.prefix_tokens[i] = blocks[i] * 16;
    }
    f.n_prefix = n;
    dir.record(f.prefix_hash, f.prefix_tokens, f.n_prefix, 2, 3200);
    Params p;
    State st;
    st.prefix = &dir;
    Rng rng(1);
    for (int i = 0; i < 5; ++i) {
        Decision d = decide(p, f, v, st, rng);
        EXPECT_EQ(d.backend, 2);
        EXPECT_EQ(d.cached_tokens, 2992u);  // 187 full blocks of 16
    }
    // The same request with a longer history matches the recorded part only.
    RequestFeatures g = f;
    g.prompt_tokens = 5000;
    n = prefix_point_blocks(5000 / 16, blocks);
    for (uint32_t i = 0; i < n; ++i) {
        g.prefix_hash[i] = 1000 + blocks[i];
        g.prefix_tokens[i] = blocks[i] * 16;
    }
    g.n_prefix = n;
    Decision d = decide(p, g, v, st, rng);
    EXPECT_EQ(d.backend, 2);
    EXPECT_GT(d.cached_tokens, 1000u);
    EXPECT_LE(d.cached_tokens, 2992u);
    // Load beats affinity when the prefix holder is swamped.
    v.b[2].queued_prompt_tokens = 200000;
    v.finalize();
    v.b[2].outstanding = 50;
    v.finalize();
    EXPECT_NE(decide(p, f, v, st, rng).backend, 2);
    // Bonus off: no preference.
    v.b[2].queued_prompt_tokens = 0;
    v.finalize();
    v.b[2].outstanding = 0;
    v.finalize();
    p.prefix_bonus = 0;
    std::set<int> seen;
    for (int i = 0; i < 9; ++i) seen.insert(decide(p, f, v, st, rng).backend);
    EXPECT_EQ(seen.size(), 3u);
}

TEST(PolicyPrefix, PointBlocksGolden) {
    uint32_t b[MAX_PREFIX_POINTS];
    EXPECT_EQ(prefix_point_blocks(0, b), 0u);
    ASSERT_EQ(prefix_point_blocks(1, b), 1u);
    EXPECT_EQ(b[0], 1u);
    uint32_t n = prefix_point_blocks(10, b);
    EXPECT_EQ(std::vector<uint32_t>(b, b + n), (std::vector<uint32_t>{4, 6, 9, 10}));
    n = prefix_point_blocks(100000, b);
    EXPECT_EQ(n, MAX_PREFIX_POINTS);
    EXPECT_EQ(b[n - 1], 100000u);
    for (uint32_t i = 1; i < n; ++i) EXPECT_GT(b[i], b[i - 1]);
}

TEST(PolicyPrefix, SetPrefixPointsFromBlockHashes) {
    uint64_t h[12];
    for (int i = 0; i < 12; ++i) h[i] = 100 + i;
    RequestFeatures f;
    set_prefix_points(f, h, 12, 64.0f);  // 256-byte blocks at ~4 bytes per token
    ASSERT_EQ(f.n_prefix, 4u);           // blocks 4, 6, 9, 12
    EXPECT_EQ(f.prefix_hash[0], 103u);
    EXPECT_EQ(f.prefix_tokens[0], 256u);
    EXPECT_EQ(f.prefix_hash[3], 111u);
    EXPECT_EQ(f.prefix_tokens[3], 768u);
    set_prefix_points(f, h, 0, 64.0f);
    EXPECT_EQ(f.n_prefix, 0u);
}

TEST(PolicyPrefix, DirectoryForgetsAfterKvTurnover) {
    View v = make_view(std::vector<Row>(2));  // kv capacity 100000 tokens
    PrefixDirectory dir(1024);
    uint64_t h[1] = {77};
    uint32_t t[1] = {640};
    dir.record(h, t, 1, 1, 1000);
    PrefixMatch m = dir.lookup(h, t, 1, v);
    ASSERT_EQ(m.n, 1u);
    EXPECT_EQ(m.backend[0], 1);
    EXPECT_EQ(m.tokens[0], 640u);
    // 80k more tokens written to backend 1 (> 0.7 x capacity): assumed evicted.
    uint64_t other[1] = {78};
    dir.record(other, t, 1, 1, 80000);
    EXPECT_EQ(dir.lookup(h, t, 1, v).n, 0u);
    EXPECT_EQ(dir.lookup(other, t, 1, v).n, 1u);
    uint64_t none[1] = {79};
    EXPECT_EQ(dir.lookup(none, t, 1, v).n, 0u);
}

// ---- model aliases and races ----

TEST(PolicyAlias, PicksByTagsContextAndBudget) {
    // model 0: small and cheap on slow GPUs (4k context); model 1: big, expensive, 32k, "code".
    Row small; small.models = 0b01; small.prefill_tps = 5000; small.decode_tps = 40; small.cost_per_mtok = 0.2f; small.max_context = 4096;
    Row big;   big.models = 0b10;   big.prefill_tps = 4000;   big.decode_tps = 25;   big.cost_per_mtok = 3;  big.max_context = 32768; big.tags = 0b1;
    View v = make_view({small, big});
    Alias a;
    a.n = 2;
    a.candidates[0] = 0;
    a.candidates[1] = 1;
    Params p;
    p.latency_budget_s = 30;
    State st;
    Rng rng(1);
    RequestFeatures f = req(1000, 256);
    ModelChoice c = select_model(a, p, f, v, st, rng);
    EXPECT_EQ(c.model, 0);  // both fit the budget: the cheap one
    EXPECT_EQ(c.decision.backend, 0);
    EXPECT_EQ(c.decision.reason, Reason::CheapestInBudget);
    f.required_tags = 0b1;  // needs "code": only the big model's backend has it
    EXPECT_EQ(select_model(a, p, f, v, st, rng).model, 1);
    f.required_tags = 0;
    f.preferred_tags = 0b1;  // prefers "code": the big model, although the small one is cheaper
    c = select_model(a, p, f, v, st, rng);
    EXPECT_EQ(c.model, 1);
    EXPECT_EQ(c.decision.reason, Reason::CheapestInBudget);
    f.preferred_tags = 0b10;  // a tag nobody has: no effect
    EXPECT_EQ(select_model(a, p, f, v, st, rng).model, 0);
    {
        View v2 = make_view({small, big});
        v2.available &= ~0b10ull;  // the code backend is down: the other model serves
        f.preferred_tags = 0b1;
        EXPECT_EQ(select_model(a, p, f, v2, st, rng).model, 0);
    }
    f.preferred_tags = 0;
    f.prompt_tokens = 10000;  // does not fit 4k
    EXPECT_EQ(select_model(a, p, f, v, st, rng).model, 1);
    f.prompt_tokens = 1000;
    p.latency_budget_s = 0.001f;  // nothing fits: the fastest e2e
    c = select_model(a, p, f, v, st, rng);
    EXPECT_EQ(c.model, 0);
    EXPECT_EQ(c.decision.reason, Reason::FastestOverBudget);
    Alias none_alias;
    EXPECT_EQ(select_model(none_alias, p, f, v, st, rng).model, NONE);
    f.required_tags = 0b100;  // nobody has it
    c = select_model(a, p, f, v, st, rng);
    EXPECT_EQ(c.model, NONE);
    EXPECT_EQ(c.decision.reason, Reason::NoTags);
}

TEST(PolicyRace, DistinctEligibleCandidates) {
    Row ok, off;
    off.available = false;
    View v = make_view({ok, off, ok, ok, ok});
    Rng rng(3);
    for (int i = 0; i < 100; ++i) {
        int32_t out[3];
        Reason why;
        ASSERT_EQ(race_candidates(req(10), v, rng, 3, out, &why), 3u);
        std::set<int> s(out, out + 3);
        EXPECT_EQ(s.size(), 3u);
        EXPECT_EQ(s.count(1), 0u);
    }
    int32_t out[8];
    Reason why;
    EXPECT_EQ(race_candidates(req(10), v, rng, 8, out, &why), 4u);
    View down = make_view({off, off});
    EXPECT_EQ(race_candidates(req(10), down, rng, 2, out, &why), 0u);
    EXPECT_EQ(why, Reason::NoHealthy);
}

// The policy reads a view built from a real scoreboard the same way as a hand-built one.
TEST(PolicyWithScoreboard, SnapshotDrivesDecisions) {
    using namespace tlb::scoreboard;
    auto sb = Scoreboard::create_private(2);
    std::string err;
    for (int i = 0; i < 3; ++i) {
        BackendSpec s;
        s.name = "gpu";
        s.name += std::to_string(i);
        s.models = {"m"};
        s.profile.prefill_tps = 10000;
        s.profile.decode_tps = 50;
        ASSERT_EQ(sb->add_backend(s, &err), i);
    }
    sb->on_route(0, 0, 20000, 100);
    sb->on_route(1, 1, 5000, 100);
    sb->set_health(2, Health::Down);
    View v;
    sb->snapshot(v, 0);
    Params p;
    State st;
    Rng rng(1);
    EXPECT_EQ(decide(p, req(100), v, st, rng).backend, 1);
    sb->set_health(2, Health::Up);
    sb->snapshot(v, 0);
    EXPECT_EQ(decide(p, req(100), v, st, rng).backend, 2);
}
