// Time-model tests: the engine's virtual-time behaviour against numbers computed here by hand
// from the profile coefficients (not from the engine's own helpers), plus queueing, prefix-cache,
// KV and abort behaviour.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <vector>

#include "gpumodel/gpumodel.hpp"

using namespace tlb::gpumodel;

namespace {

std::string src(const std::string& rel) { return std::string(TLB_SOURCE_DIR) + "/" + rel; }

Profile load(const std::string& name) {
  Profile p;
  std::string err;
  EXPECT_TRUE(load_profile(profile_path(name, src("conf/profiles")), p, &err)) << err;
  return p;
}

struct Rec : Listener {
  std::map<uint64_t, std::vector<double>> tok;  // token emission times per request
  std::map<uint64_t, RequestStats> done, aborted;
  std::vector<std::string> log;
  void note(char kind, uint64_t id, double t) {
    char b[64];
    std::snprintf(b, sizeof b, "%c%llu@%.17g", kind, static_cast<unsigned long long>(id), t);
    log.emplace_back(b);
  }
  void on_first_token(uint64_t id, double t) override {
    tok[id].push_back(t);
    note('F', id, t);
  }
  void on_tokens(uint64_t id, double t, uint32_t n) override {
    for (uint32_t i = 0; i < n; ++i) tok[id].push_back(t);
    note('T', id, t);
  }
  void on_finished(const RequestStats& s) override {
    done[s.id] = s;
    note('D', s.id, s.end_time);
  }
  void on_aborted(const RequestStats& s) override { aborted[s.id] = s; }
};

void run_all(Engine& e) {
  for (int guard = 0; guard < 10000000 && e.next_event_time() != NEVER; ++guard)
    e.advance(e.next_event_time());
}

Request req(uint64_t id, uint32_t prompt, uint32_t out) {
  Request r;
  r.id = id;
  r.prompt_tokens = prompt;
  r.output_tokens = out;
  return r;
}

// Hand-written step formulas from the profile's coefficients.
double hand_prefill(const Profile& p, double n, double c0 = 0) {
  return p.decode_base_s + p.prefill_overhead_s + p.prefill_per_token_s * n +
         p.prefill_attn_s_per_token2 * ((c0 + n) * (c0 + n) - c0 * c0);
}
double hand_decode(const Profile& p, double batch, double sum_ctx) {
  return p.decode_base_s + p.decode_per_seq_s * batch + p.decode_per_ctx_token_s * sum_ctx;
}

Profile tiny_kv(uint64_t tokens) {
  Profile p = load("h100-8b");
  p.kv_capacity_tokens = tokens;
  p.kv_watermark = 0.0;
  return p;
}

}  // namespace

TEST(Profile, AllShippedProfilesLoad) {
  for (const char* n : {"h100-8b", "a10g-8b", "l4-8b", "h100-70b", "bench-fast"}) {
    Profile p = load(n);
    EXPECT_EQ(p.name, n);
    EXPECT_GT(p.kv_capacity_tokens, 0u);
    EXPECT_GT(p.decode_base_s, 0.0);
    EXPECT_GT(p.prefill_per_token_s, 0.0);
  }
  // Relative ordering a router relies on: H100 decodes faster than A10G, which beats L4.
  EXPECT_LT(load("h100-8b").decode_base_s, load("a10g-8b").decode_base_s);
  EXPECT_LT(load("a10g-8b").decode_base_s, load("l4-8b").decode_base_s);
  EXPECT_EQ(load("h100-70b").gpus, 4u);
}

TEST(Profile, ParseErrors) {
  Profile p;
  std::string err;
  EXPECT_FALSE(parse_profile("name = 'x'\nmodel = 'm'\n", p, &err));
  EXPECT_NE(err.find("missing key"), std::string::npos) << err;
  EXPECT_FALSE(parse_profile("name = [", p, &err));
  EXPECT_NE(err.find("toml"), std::string::npos);
  const char* bad_range =
      "name='x'\nmodel='m'\n[scheduler]\nmax_num_seqs=0\nmax_num_batched_tokens=10\n"
      "[kv]\ncapacity_tokens=100\n[prefill]\nper_token_s=1e-5\n[decode]\nbase_s=0.01\n";
  EXPECT_FALSE(parse_profile(bad_range, p, &err));
  EXPECT_NE(err.find("max_num_seqs"), std::string::npos) << err;
  EXPECT_EQ(profile_path("h100-8b", "/x"), "/x/h100-8b.toml");
  EXPECT_EQ(profile_path("./my.toml", "/x"), "./my.toml");
}

TEST(Engine, SingleRequestTtftAndDecodeRateMatchProfile) {
  for (const char* name : {"h100-8b", "a10g-8b", "l4-8b", "h100-70b"}) {
    Profile p = load(name);
    Rec rec;
    Engine e(p, &rec);
    const uint32_t P = 1000, N = 200;
    ASSERT_EQ(e.submit(req(1, P, N), 0.0), SubmitResult::OK);
    run_all(e);
    ASSERT_EQ(rec.tok[1].size(), N);
    double ttft = rec.tok[1][0];
    double want_ttft = hand_prefill(p, P);
    EXPECT_NEAR(ttft, want_ttft, 0.05 * want_ttft) << name;
    // Decode: tokens 2..N, context grows from P+1 to P+N-1.
    double decode_time = rec.tok[1].back() - rec.tok[1][0];
    double rate = (N - 1) / decode_time;
    double want_step = hand_decode(p, 1, P + N / 2.0);
    EXPECT_NEAR(rate, 1.0 / want_step, 0.05 / want_step) << name;
    EXPECT_EQ(e.counters().generation_tokens, N);
    EXPECT_EQ(e.counters().prompt_tokens, P);
    EXPECT_NEAR(e.counters().busy_seconds, rec.done[1].end_time, 1e-9);
    EXPECT_NEAR(e.busy_gpu_seconds(), rec.done[1].end_time * p.gpus, 1e-9);
    EXPECT_EQ(e.num_running(), 0u);
    EXPECT_EQ(e.kv_used_blocks(), 0u);
  }
}

TEST(Engine, LongPromptIsChunked) {
  Profile p = load("a10g-8b");  // 2048-token budget
  Rec rec;
  Engine e(p, &rec);
  ASSERT_EQ(e.submit(req(1, 5000, 2), 0.0), SubmitResult::OK);
  run_all(e);
  double want = hand_prefill(p, 2048, 0) + hand_prefill(p, 2048, 2048) + hand_prefill(p, 904, 4096);
  EXPECT_NEAR(rec.tok[1][0], want, 0.05 * want);
  EXPECT_NEAR(p.lone_ttft(5000), want, 1e-9);
}

TEST(Engine, BatchOfNMatchesProfile) {
  Profile p = load("h100-8b");
  Rec rec;
  Engine e(p, &rec);
  const uint32_t N = 16, P = 500, OUT = 100;
  for (uint32_t i = 0; i < N; ++i) ASSERT_EQ(e.submit(req(i + 1, P, OUT), 0.0), SubmitResult::OK);
  e.advance(0.0);
  EXPECT_EQ(e.num_running(), N);  // 8000 prompt tokens fit one 8192-token step
  run_all(e);
  // All prefills share one step: linear in the total, attention per request.
  double want_ttft = p.decode_base_s + p.prefill_overhead_s + p.prefill_per_token_s * N * P +
                     p.prefill_attn_s_per_token2 * N * double(P) * P;
  double want_step = hand_decode(p, N, N * (P + OUT / 2.0));
  for (uint32_t i = 1; i <= N; ++i) {
    ASSERT_EQ(rec.tok[i].size(), OUT);
    EXPECT_NEAR(rec.tok[i][0], want_ttft, 0.05 * want_ttft);
    double rate = (OUT - 1) / (rec.tok[i].back() - rec.tok[i][0]);
    EXPECT_NEAR(rate, 1.0 / want_step, 0.05 / want_step);
  }
  // A batch decodes slower per stream than a lone request, but more tokens/s in total.
  double lone = 1.0 / hand_decode(p, 1, P + OUT / 2.0);
  double per_stream = (OUT - 1) / (rec.tok[1].back() - rec.tok[1][0]);
  EXPECT_LT(per_stream, lone);
  EXPECT_GT(per_stream * N, 4 * lone);
}

TEST(Engine, MaxNumSeqsQueues) {
  Profile p = load("h100-8b");
  p.max_num_seqs = 4;
  Rec rec;
  Engine e(p, &rec);
  for (uint32_t i = 1; i <= 6; ++i) ASSERT_EQ(e.submit(req(i, 100, 10), 0.0), SubmitResult::OK);
  e.advance(0.0);
  EXPECT_EQ(e.num_running(), 4u);
  EXPECT_EQ(e.num_waiting(), 2u);
  run_all(e);
  ASSERT_EQ(rec.done.size(), 6u);
  double first_batch_end = rec.done[1].end_time;
  EXPECT_GE(rec.done[5].first_scheduled_time, first_batch_end - 1e-12);
}

TEST(Engine, PrefixHitsShortenTtft) {
  Profile p = load("l4-8b");
  Rec rec;
  Engine e(p, &rec);
  Request a = req(1, 2100, 1);
  a.prefix_group = 42;
  a.prefix_tokens = 2048;
  ASSERT_EQ(e.submit(a, 0.0), SubmitResult::OK);
  run_all(e);
  double t0 = 10.0;
  Request b = a;
  b.id = 2;
  ASSERT_EQ(e.submit(b, t0), SubmitResult::OK);
  run_all(e);
  double ttft_a = rec.tok[1][0];
  double ttft_b = rec.tok[2][0] - t0;
  EXPECT_EQ(rec.done[2].cached_tokens, 2048u);
  double want_b = hand_prefill(p, 2100 - 2048, 2048);
  EXPECT_NEAR(ttft_b, want_b, 0.05 * want_b);
  EXPECT_LT(ttft_b, ttft_a / 3);
  EXPECT_EQ(e.counters().prefix_cache_queries, 4200u);
  EXPECT_EQ(e.counters().prefix_cache_hits, 2048u);
  // A different group misses.
  Request c = a;
  c.id = 3;
  c.prefix_group = 43;
  ASSERT_EQ(e.submit(c, 20.0), SubmitResult::OK);
  run_all(e);
  EXPECT_EQ(rec.done[3].cached_tokens, 0u);
}

TEST(Engine, ExplicitBlockHashesHitAndPartialMatch) {
  Profile p = load("h100-8b");
  Rec rec;
  Engine e(p, &rec);
  std::vector<uint64_t> h(20);
  uint64_t prev = 0;
  for (size_t i = 0; i < h.size(); ++i) prev = h[i] = block_hash_u64(prev, 1000 + i);
  Request a = req(1, 330, 1);
  a.block_hashes = h;
  ASSERT_EQ(e.submit(a, 0.0), SubmitResult::OK);
  run_all(e);
  // Same first 12 blocks, then divergence.
  std::vector<uint64_t> h2 = h;
  for (size_t i = 12; i < h2.size(); ++i) h2[i] ^= 0x5555;
  Request b = req(2, 330, 1);
  b.block_hashes = h2;
  ASSERT_EQ(e.submit(b, 5.0), SubmitResult::OK);
  run_all(e);
  EXPECT_EQ(rec.done[2].cached_tokens, 12u * 16u);
}

TEST(Engine, PrefixCacheEvictsLruWhenKvNeeded) {
  Profile p = tiny_kv(64 * 16);  // 64 blocks
  Rec rec;
  Engine e(p, &rec);
  Request a = req(1, 512, 1);  // 32 blocks, all hashed
  a.prefix_group = 1;
  a.prefix_tokens = 512;
  ASSERT_EQ(e.submit(a, 0.0), SubmitResult::OK);
  run_all(e);
  EXPECT_EQ(e.kv_cached_blocks(), 32u);
  EXPECT_EQ(e.kv_used_blocks(), 0u);
  // A 60-block request must evict cached blocks of group 1.
  ASSERT_EQ(e.submit(req(2, 950, 1), 1.0), SubmitResult::OK);
  run_all(e);
  Request a2 = a;
  a2.id = 3;
  ASSERT_EQ(e.submit(a2, 2.0), SubmitResult::OK);
  run_all(e);
  EXPECT_LT(rec.done[3].cached_tokens, 512u);
}

TEST(Engine, KvExhaustionQueuesRequests) {
  Profile p = tiny_kv(1024);  // 64 blocks
  Rec rec;
  Engine e(p, &rec);
  // Each needs 25 blocks for its prompt and grows to 29: two fit, the third waits.
  for (uint32_t i = 1; i <= 3; ++i) ASSERT_EQ(e.submit(req(i, 400, 50), 0.0), SubmitResult::OK);
  e.advance(0.0);
  EXPECT_EQ(e.num_running(), 2u);
  EXPECT_EQ(e.num_waiting(), 1u);
  EXPECT_EQ(e.kv_used_blocks(), 50u);
  EXPECT_NEAR(e.kv_usage(), 50.0 / 64.0, 1e-12);
  run_all(e);
  ASSERT_EQ(rec.done.size(), 3u);
  EXPECT_GE(rec.done[3].first_scheduled_time,
            std::min(rec.done[1].end_time, rec.done[2].end_time) - 1e-12);
  EXPECT_EQ(e.counters().generation_tokens, 150u);
}

TEST(Engine, TooLongRejected) {
  Profile p = tiny_kv(1024);
  Engine e(p);
  EXPECT_EQ(e.submit(req(1, 1000, 100), 0.0), SubmitResult::TOO_LONG);
  EXPECT_EQ(e.submit(req(2, 0, 1), 0.0), SubmitResult::INVALID);
  Profile q = load("a10g-8b");
  Engine f(q);
  EXPECT_EQ(f.submit(req(1, 8000, 500), 0.0), SubmitResult::TOO_LONG);  // max_model_len 8192
  EXPECT_EQ(f.submit(req(2, 10, 5), 0.0), SubmitResult::OK);
  EXPECT_EQ(f.submit(req(2, 10, 5), 0.0), SubmitResult::DUPLICATE);
  EXPECT_EQ(f.counters().rejected, 2u);
}

TEST(Engine, DecodeGrowthPreemptsNewestAndStillFinishes) {
  Profile p = tiny_kv(640);  // 40 blocks
  Rec rec;
  Engine e(p, &rec);
  // Three 10-block prompts fit (30 blocks); each grows by 200 tokens (~13 blocks): preemption.
  for (uint32_t i = 1; i <= 3; ++i) ASSERT_EQ(e.submit(req(i, 160, 200), 0.0), SubmitResult::OK);
  e.advance(0.0);
  EXPECT_EQ(e.num_running(), 3u);
  run_all(e);
  ASSERT_EQ(rec.done.size(), 3u);
  EXPECT_GT(e.counters().preemptions, 0u);
  for (uint32_t i = 1; i <= 3; ++i) EXPECT_EQ(rec.tok[i].size(), 200u) << i;
  EXPECT_GT(rec.done[3].preemptions, 0u);  // the newest is the victim
  EXPECT_EQ(rec.done[1].preemptions, 0u);
  EXPECT_GT(e.counters().prefill_tokens_computed, e.counters().prompt_tokens);
  EXPECT_EQ(e.kv_used_blocks(), 0u);
}

TEST(Engine, AbortFreesSlotAndKvAtOnce) {
  Profile p = tiny_kv(1024);
  p.max_num_seqs = 2;
  Rec rec;
  Engine e(p, &rec);
  for (uint32_t i = 1; i <= 3; ++i) ASSERT_EQ(e.submit(req(i, 400, 1000 - 400), 0.0), SubmitResult::OK);
  e.advance(0.0);
  EXPECT_EQ(e.num_running(), 2u);
  EXPECT_EQ(e.num_waiting(), 1u);
  // Let five steps run (prefill + 4 decodes = 5 tokens), then abort request 1 mid-step.
  // Each advance(next_event_time()) completes one step and plans the next.
  for (int i = 0; i < 5; ++i) e.advance(e.next_event_time());
  double t = e.next_event_time() - 1e-6;  // mid-step
  uint64_t used_before = e.kv_used_blocks();
  ASSERT_TRUE(e.abort(1, t));
  EXPECT_FALSE(e.live(1));
  EXPECT_LT(e.kv_used_blocks(), used_before);  // blocks freed immediately
  EXPECT_EQ(e.num_running(), 1u);
  ASSERT_EQ(rec.aborted.count(1), 1u);
  EXPECT_EQ(rec.aborted[1].generated_tokens, 5u);
  EXPECT_EQ(e.counters().aborted_generation_tokens, 5u);
  // The current step completes without emitting for 1; the next step admits 3.
  double step_end = e.next_event_time();
  e.advance(step_end);  // completes the step and plans the next one, which admits 3
  EXPECT_EQ(e.num_running(), 2u);
  EXPECT_EQ(e.num_waiting(), 0u);
  run_all(e);
  EXPECT_NEAR(rec.done[3].first_scheduled_time, step_end, 1e-12);
  EXPECT_EQ(rec.tok[1].size(), 5u);
  EXPECT_FALSE(e.abort(1, 100.0));
  // Aborting a waiting request.
  Engine f(p, &rec);
  for (uint32_t i = 10; i <= 12; ++i) ASSERT_EQ(f.submit(req(i, 100, 10), 0.0), SubmitResult::OK);
  f.advance(0.0);
  EXPECT_EQ(f.num_waiting(), 1u);
  EXPECT_TRUE(f.abort(12, 0.0));
  EXPECT_EQ(f.num_waiting(), 0u);
  EXPECT_EQ(f.counters().aborted, 1u);
}

TEST(Engine, DeterministicAndConsistentUnderRandomLoad) {
  auto run = [](uint32_t seed, Counters* out) {
    Profile p = tiny_kv(20000);
    p.max_num_seqs = 32;
    p.max_num_batched_tokens = 1024;
    Rec rec;
    Engine e(p, &rec);
    std::mt19937_64 rng(seed);
    double t = 0;
    uint64_t expect_gen = 0;
    std::vector<uint64_t> ids;
    for (uint32_t i = 1; i <= 400; ++i) {
      t += std::exponential_distribution<double>(20.0)(rng);
      Request r = req(i, 1 + rng() % 1500, 1 + rng() % 300);
      if (rng() % 2) {
        r.prefix_group = 1 + rng() % 4;
        r.prefix_tokens = 512;
      }
      if (e.submit(r, t) == SubmitResult::OK) ids.push_back(i);
      if (rng() % 10 == 0 && !ids.empty()) e.abort(ids[rng() % ids.size()], t);
    }
    run_all(e);
    for (auto& kv : rec.done) {
      EXPECT_EQ(rec.tok[kv.first].size(), kv.second.generated_tokens);
      expect_gen += kv.second.generated_tokens;
      EXPECT_LE(kv.second.submit_time, kv.second.first_scheduled_time);
      EXPECT_LT(kv.second.first_scheduled_time, kv.second.first_token_time);
    }
    for (auto& kv : rec.aborted) expect_gen += kv.second.generated_tokens;
    EXPECT_EQ(e.counters().generation_tokens, expect_gen);
    EXPECT_EQ(rec.done.size() + rec.aborted.size(), ids.size());
    EXPECT_EQ(e.kv_used_blocks(), 0u);
    EXPECT_GT(e.counters().prefix_cache_hits, 0u);
    *out = e.counters();
    std::string all;
    for (auto& s : rec.log) all += s;
    return all;
  };
  Counters a, b, c;
  std::string la = run(7, &a), lb = run(7, &b), lc = run(8, &c);
  EXPECT_EQ(la, lb);
  EXPECT_EQ(a.busy_seconds, b.busy_seconds);
  EXPECT_NE(la, lc);
}
