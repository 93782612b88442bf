// Time-model speed: how fast a discrete-event simulator can push requests through Engines.
// Each benchmark first runs its workload once and checks the engine's counters against the
// workload (every request finishes, generated tokens == requested outputs) before timing.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "gpumodel/gpumodel.hpp"

using namespace tlb::gpumodel;

namespace {

Profile bench_profile() {
  // Run from the repo root or from inside a build directory.
  Profile p;
  std::string err;
  for (const char* dir : {"conf/profiles", "../conf/profiles", "../../conf/profiles",
                          "../../../conf/profiles"})
    if (load_profile(profile_path("h100-8b", dir), p, &err)) return p;
  std::fprintf(stderr, "gpumodel_bench: %s (run from the repo root)\n", err.c_str());
  std::abort();
}

struct Work {
  double t;
  Request r;
};

// Poisson arrivals at `rate` req/s, prompts 200-3000 tokens, outputs 20-600, half of them with
// one of 16 shared 1024-token prefixes.
std::vector<Work> workload(size_t n, double rate, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(rate);
  std::vector<Work> w(n);
  double t = 0;
  for (size_t i = 0; i < n; ++i) {
    t += gap(rng);
    w[i].t = t;
    w[i].r.id = i + 1;
    w[i].r.prompt_tokens = 200 + rng() % 2800;
    w[i].r.output_tokens = 20 + rng() % 580;
    if (rng() & 1) {
      w[i].r.prefix_group = 1 + rng() % 16;
      w[i].r.prefix_tokens = 1024;
    }
  }
  return w;
}

struct Count : Listener {
  uint64_t finished = 0;
  void on_finished(const RequestStats&) override { ++finished; }
};

// Runs `w` over `engines` backends (round robin), returns total finished.
uint64_t run(const Profile& p, const std::vector<Work>& w, size_t engines, uint64_t* gen) {
  Count cnt;
  EngineOptions o;
  o.token_events = false;
  std::vector<Engine> es;
  es.reserve(engines);
  for (size_t i = 0; i < engines; ++i) es.emplace_back(p, &cnt, o);
  for (size_t i = 0; i < w.size(); ++i) {
    Engine& e = es[i % engines];
    // A DES would pop the earliest event across engines; advancing each engine to the arrival
    // time is equivalent for independent engines.
    e.advance(w[i].t);
    e.submit(w[i].r, w[i].t);
  }
  for (Engine& e : es)
    for (double t; (t = e.next_event_time()) != NEVER;) e.advance(t);
  *gen = 0;
  for (Engine& e : es) *gen += e.counters().generation_tokens;
  return cnt.finished;
}

void BM_Simulate(benchmark::State& st) {
  const size_t n = static_cast<size_t>(st.range(0)), engines = static_cast<size_t>(st.range(1));
  Profile p = bench_profile();
  // ~70% load: each request is ~300 output tokens; an H100-8B engine does a few thousand tok/s.
  auto w = workload(n, 8.0 * engines, 42);
  uint64_t want_gen = 0;
  for (auto& x : w) want_gen += x.r.output_tokens;
  uint64_t gen = 0;
  if (run(p, w, engines, &gen) != n || gen != want_gen) {
    st.SkipWithError("reference check failed: not every request finished with its tokens");
    return;
  }
  for (auto _ : st) {
    uint64_t f = run(p, w, engines, &gen);
    benchmark::DoNotOptimize(f);
  }
  st.SetItemsProcessed(static_cast<int64_t>(st.iterations() * n));
  st.counters["tokens"] = static_cast<double>(want_gen);
}
BENCHMARK(BM_Simulate)->Args({20000, 8})->Args({20000, 16})->Unit(benchmark::kMillisecond);

// Per-step cost with a full 256-sequence decode batch.
void BM_DecodeStepFullBatch(benchmark::State& st) {
  Profile p = bench_profile();
  p.kv_capacity_tokens = 16u << 20;  // room for 20k+ steps of 256-token growth, no preemption
  p.max_model_len = 1u << 24;
  EngineOptions o;
  o.token_events = false;
  Engine e(p, nullptr, o);
  for (uint64_t i = 1; i <= 256; ++i) {
    Request r;
    r.id = i;
    r.prompt_tokens = 500;
    r.output_tokens = 1u << 20;
    e.submit(r, 0);
  }
  for (int i = 0; i < 40; ++i) e.advance(e.next_event_time());  // all prefills done
  if (e.num_running() != 256 || e.pending_prefill_tokens() != 0) {
    st.SkipWithError("reference check failed: batch not full");
    return;
  }
  uint64_t steps0 = e.counters().steps;
  for (auto _ : st) e.advance(e.next_event_time());
  st.SetItemsProcessed(static_cast<int64_t>(e.counters().steps - steps0) * 256);
}
BENCHMARK(BM_DecodeStepFullBatch)->Iterations(20000);

}  // namespace

BENCHMARK_MAIN();
