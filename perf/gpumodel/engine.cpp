// Continuous-batching engine (see gpumodel.hpp for the model). Written for simulator speed:
// requests live in a recycled pool, a step touches only running + newly admitted requests, and
// KV blocks are plain arrays with an intrusive LRU list for cached (unreferenced) blocks.
#include <algorithm>
#include <cassert>
#include <deque>
#include <unordered_map>
#include <vector>

#include "gpumodel/gpumodel.hpp"

namespace tlb::gpumodel {

namespace {
constexpr uint32_t NIL = 0xffffffffu;

uint64_t group_hash(uint64_t group, uint32_t i) {
  return block_hash_u64(block_hash_u64(0x6a09e667f3bcc909ULL, group), i);
}
}  // namespace

struct Engine::Impl {
  struct Req {
    RequestStats st;
    uint32_t output = 0;
    uint32_t computed = 0;  // tokens whose KV is held
    uint32_t target = 0;    // prefill target: prompt (+ generated after a preemption)
    uint64_t group = 0;
    uint32_t n_hash = 0;    // full leading prompt blocks with a known hash
    std::vector<uint64_t> hashes;  // explicit form (empty when group form is used)
    std::vector<uint32_t> blocks;
    uint32_t registered = 0;  // leading blocks whose hash was published
    bool queried = false;
    bool running = false;
    int32_t sched = -1;  // index into _sched for the current step, -1 when not scheduled

    uint64_t hash(uint32_t i) const { return hashes.empty() ? group_hash(group, i) : hashes[i]; }
  };
  struct Sched {
    Req* r;  // nullptr once aborted during the step
    uint32_t k;
    bool prefill;
  };

  Profile p;
  Listener* lis;
  EngineOptions opt;
  Counters c;

  std::unordered_map<uint64_t, Req*> live;
  std::deque<Req*> waiting;
  std::vector<Req*> running;  // admission order
  std::vector<Req*> spare;
  std::vector<Sched> sched;
  bool busy = false;     // a step is planned or running
  bool pending = false;  // the next step starts at step_start but is not planned yet
  double step_start = 0;
  double step_end = NEVER;
  double last_now = 0;

  // KV block pool.
  uint32_t total_blocks = 0;
  uint32_t watermark_blocks = 0;
  std::vector<uint64_t> bhash;
  std::vector<uint32_t> bref, bprev, bnext;
  std::vector<uint32_t> clean;  // free, no cached content
  uint32_t lru_head = NIL, lru_tail = NIL, lru_size = 0;
  uint64_t used_blocks = 0;
  std::unordered_map<uint64_t, uint32_t> cache;

  Impl(const Profile& prof, Listener* l, EngineOptions o) : p(prof), lis(l), opt(o) {
    if (p.block_tokens == 0) p.block_tokens = 16;
    uint64_t nb = p.kv_capacity_tokens / p.block_tokens;
    total_blocks = static_cast<uint32_t>(std::min<uint64_t>(std::max<uint64_t>(nb, 1), NIL - 1));
    watermark_blocks = static_cast<uint32_t>(p.kv_watermark * total_blocks);
    bhash.assign(total_blocks, 0);
    bref.assign(total_blocks, 0);
    bprev.assign(total_blocks, NIL);
    bnext.assign(total_blocks, NIL);
    clean.reserve(total_blocks);
    for (uint32_t i = total_blocks; i-- > 0;) clean.push_back(i);
    cache.reserve(std::min<uint32_t>(total_blocks, 1u << 20));
  }
  ~Impl() {
    for (auto& kv : live) delete kv.second;
    for (Req* r : spare) delete r;
  }

  // ---- block pool -------------------------------------------------------------------------
  uint32_t free_blocks() const { return static_cast<uint32_t>(clean.size()) + lru_size; }
  uint32_t blocks_for(uint64_t tokens) const {
    return static_cast<uint32_t>((tokens + p.block_tokens - 1) / p.block_tokens);
  }
  void lru_unlink(uint32_t b) {
    if (bprev[b] != NIL) bnext[bprev[b]] = bnext[b]; else lru_head = bnext[b];
    if (bnext[b] != NIL) bprev[bnext[b]] = bprev[b]; else lru_tail = bprev[b];
    bprev[b] = bnext[b] = NIL;
    --lru_size;
  }
  void lru_push_tail(uint32_t b) {
    bprev[b] = lru_tail;
    bnext[b] = NIL;
    if (lru_tail != NIL) bnext[lru_tail] = b; else lru_head = b;
    lru_tail = b;
    ++lru_size;
  }
  void drop_hash(uint32_t b) {
    if (bhash[b]) {
      auto it = cache.find(bhash[b]);
      if (it != cache.end() && it->second == b) cache.erase(it);
      bhash[b] = 0;
    }
  }
  uint32_t alloc_block() {
    uint32_t b;
    if (!clean.empty()) {
      b = clean.back();
      clean.pop_back();
    } else if (lru_head != NIL) {
      b = lru_head;  // evict the least recently released cached block
      lru_unlink(b);
      drop_hash(b);
    } else {
      return NIL;
    }
    bref[b] = 1;
    ++used_blocks;
    return b;
  }
  void ref_block(uint32_t b) {
    if (bref[b] == 0) {
      lru_unlink(b);
      ++used_blocks;
    }
    ++bref[b];
  }
  void release_block(uint32_t b) {
    if (--bref[b] != 0) return;
    --used_blocks;
    if (bhash[b] && p.prefix_caching) {
      lru_push_tail(b);
      if (p.prefix_cache_blocks && lru_size > p.prefix_cache_blocks) {
        uint32_t e = lru_head;
        lru_unlink(e);
        drop_hash(e);
        clean.push_back(e);
      }
    } else {
      drop_hash(b);
      clean.push_back(b);
    }
  }
  void release_all(Req* r) {
    // Reverse order: a sequence's tail blocks land nearer the LRU head and are evicted first,
    // keeping shared leading blocks longest (vLLM frees in the same order).
    for (size_t i = r->blocks.size(); i-- > 0;) release_block(r->blocks[i]);
    r->blocks.clear();
    r->registered = 0;
  }

  // ---- requests -----------------------------------------------------------------------------
  Req* new_req() {
    if (spare.empty()) return new Req();
    Req* r = spare.back();
    spare.pop_back();
    return r;
  }
  void recycle(Req* r) {
    live.erase(r->st.id);
    r->hashes.clear();
    r->blocks.clear();
    r->registered = 0;
    r->queried = false;
    r->running = false;
    r->sched = -1;
    spare.push_back(r);
  }

  // Tries to admit the waiting head. Returns false when it must keep waiting.
  bool admit(Req* r) {
    const uint32_t B = p.block_tokens;
    uint32_t hit_blocks = 0;
    std::vector<uint32_t>& blocks = r->blocks;
    blocks.clear();
    // Prefix lookup: leading full blocks, never the whole target (the last token is always
    // computed so the step can sample).
    uint32_t max_hit = std::min<uint32_t>(r->n_hash, (r->target - 1) / B);
    uint32_t lru_taken = 0;
    if (p.prefix_caching) {
      for (uint32_t i = 0; i < max_hit; ++i) {
        auto it = cache.find(r->hash(i));
        if (it == cache.end()) break;
        if (bref[it->second] == 0) ++lru_taken;
        ++hit_blocks;
      }
    }
    uint32_t need = blocks_for(r->target) - hit_blocks;
    uint32_t fb = free_blocks() - lru_taken;
    uint32_t reserve = running.empty() ? 0 : watermark_blocks;
    if (fb < need || fb - need < reserve) return false;
    for (uint32_t i = 0; i < hit_blocks; ++i) {
      uint32_t b = cache.find(r->hash(i))->second;
      ref_block(b);
      blocks.push_back(b);
    }
    for (uint32_t i = 0; i < need; ++i) blocks.push_back(alloc_block());
    r->registered = hit_blocks;
    r->computed = hit_blocks * B;
    if (!r->queried) {
      r->queried = true;
      r->st.cached_tokens = r->computed;
      c.prompt_tokens += r->st.prompt_tokens;
      if (p.prefix_caching) {
        c.prefix_cache_queries += r->st.prompt_tokens;
        c.prefix_cache_hits += r->computed;
      }
    }
    r->running = true;
    return true;
  }

  void preempt(Req* v) {
    release_all(v);
    v->running = false;
    v->computed = 0;
    v->target = v->st.prompt_tokens + v->st.generated_tokens;
    ++v->st.preemptions;
    ++c.preemptions;
    running.pop_back();  // the victim is always the newest running request
    waiting.push_front(v);
  }

  // ---- steps --------------------------------------------------------------------------------
  void plan_step() {
    const double t = step_start;
    pending = false;
    sched.clear();
    uint32_t budget = p.max_num_batched_tokens;
    bool preempted = false;
    double pre_lin = 0, pre_attn = 0;
    uint64_t n_dec = 0, sum_ctx = 0;

    for (size_t i = 0; i < running.size() && budget > 0; ++i) {
      Req* r = running[i];
      if (r->computed < r->target) {
        uint32_t k = std::min(r->target - r->computed, budget);
        budget -= k;
        double c0 = r->computed, c1 = c0 + k;
        pre_lin += k;
        pre_attn += c1 * c1 - c0 * c0;
        r->sched = static_cast<int32_t>(sched.size());
        sched.push_back({r, k, true});
        continue;
      }
      // Decode: the step processes the last sampled token, so the context grows by one.
      uint32_t need = blocks_for(r->computed + 1);
      bool self_preempted = false;
      while (r->blocks.size() < need) {
        uint32_t b = alloc_block();
        if (b != NIL) {
          r->blocks.push_back(b);
          continue;
        }
        Req* v = running.back();
        preempted = true;
        preempt(v);
        if (v == r) {
          self_preempted = true;
          break;
        }
      }
      if (self_preempted) break;
      budget -= 1;
      ++n_dec;
      sum_ctx += r->computed + 1;
      r->sched = static_cast<int32_t>(sched.size());
      sched.push_back({r, 1, false});
    }
    // vLLM does not admit new work in a step that had to preempt.
    while (!preempted && budget > 0 && !waiting.empty() && running.size() < p.max_num_seqs) {
      Req* r = waiting.front();
      if (!admit(r)) break;
      waiting.pop_front();
      running.push_back(r);
      if (r->st.first_scheduled_time == NEVER) r->st.first_scheduled_time = t;
      uint32_t k = std::min(r->target - r->computed, budget);
      budget -= k;
      double c0 = r->computed, c1 = c0 + k;
      pre_lin += k;
      pre_attn += c1 * c1 - c0 * c0;
      r->sched = static_cast<int32_t>(sched.size());
      sched.push_back({r, k, true});
    }
    if (sched.empty()) {  // cannot happen with validated requests; never spin
      busy = false;
      step_end = NEVER;
      return;
    }
    double d = p.decode_base_s + p.decode_per_seq_s * static_cast<double>(n_dec) +
               p.decode_per_ctx_token_s * static_cast<double>(sum_ctx);
    if (pre_lin > 0)
      d += p.prefill_overhead_s + p.prefill_per_token_s * pre_lin +
           p.prefill_attn_s_per_token2 * pre_attn;
    busy = true;
    step_end = t + d;
    c.busy_seconds += d;
    ++c.steps;
  }

  void emit_token(Req* r, double t) {
    ++r->st.generated_tokens;
    ++c.generation_tokens;
    if (r->st.generated_tokens == 1) {
      r->st.first_token_time = t;
      if (lis) lis->on_first_token(r->st.id, t);
    } else if (lis && opt.token_events) {
      lis->on_tokens(r->st.id, t, 1);
    }
  }

  void finish_step() {
    const double t = step_end;
    const uint32_t B = p.block_tokens;
    bool any_done = false;
    for (Sched& s : sched) {
      Req* r = s.r;
      if (!r) continue;
      r->sched = -1;
      if (s.prefill) {
        r->computed += s.k;
        c.prefill_tokens_computed += s.k;
        // Publish hashes of leading prompt blocks that are now fully computed.
        uint32_t full = std::min<uint32_t>(r->computed / B, r->n_hash);
        for (; r->registered < full; ++r->registered) {
          uint32_t b = r->blocks[r->registered];
          if (bhash[b]) continue;
          uint64_t h = r->hash(r->registered);
          if (cache.emplace(h, b).second) bhash[b] = h;
        }
        if (r->computed < r->target) continue;
        emit_token(r, t);
      } else {
        r->computed += 1;
        emit_token(r, t);
      }
      if (r->st.generated_tokens >= r->output) {
        r->st.end_time = t;
        release_all(r);
        r->running = false;
        any_done = true;
        ++c.finished;
        if (lis) lis->on_finished(r->st);
      }
    }
    if (any_done) {
      size_t w = 0;
      for (size_t i = 0; i < running.size(); ++i) {
        Req* r = running[i];
        if (r->running) running[w++] = r;
        else recycle(r);
      }
      running.resize(w);
    }
    sched.clear();
    busy = false;
    step_end = NEVER;
    if (!running.empty() || !waiting.empty()) open_step(t);
  }

  // The next step starts at t; it is planned lazily so that requests submitted at exactly t
  // (same instant as the previous step's end, or several submits at one instant on an idle
  // engine) join it.
  void open_step(double t) {
    busy = true;
    pending = true;
    step_start = t;
    step_end = NEVER;
  }

  // inclusive: plan a pending step starting exactly at `now` too (advance); submit/abort use
  // exclusive so work arriving at the step's start instant is part of it.
  void run_until(double now, bool inclusive) {
    if (now > last_now) last_now = now;
    while (busy) {
      if (pending) {
        if (step_start < now || (inclusive && step_start <= now)) plan_step();
        else break;
      } else if (step_end <= now) {
        finish_step();
      } else {
        break;
      }
    }
  }
};

Engine::Engine(const Profile& profile, Listener* listener, EngineOptions opt)
    : _impl(std::make_unique<Impl>(profile, listener, opt)) {}
Engine::~Engine() = default;
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;

SubmitResult Engine::submit(const Request& rq, double now) {
  Impl& m = *_impl;
  m.run_until(now, false);
  if (rq.prompt_tokens == 0 || rq.output_tokens == 0) {
    ++m.c.rejected;
    return SubmitResult::INVALID;
  }
  uint64_t total = static_cast<uint64_t>(rq.prompt_tokens) + rq.output_tokens;
  if (total > m.p.max_model_len || m.blocks_for(total) > m.total_blocks) {
    ++m.c.rejected;
    return SubmitResult::TOO_LONG;
  }
  if (m.live.count(rq.id)) {
    ++m.c.rejected;
    return SubmitResult::DUPLICATE;
  }
  Impl::Req* r = m.new_req();
  r->st = RequestStats{};
  r->st.id = rq.id;
  r->st.prompt_tokens = rq.prompt_tokens;
  r->st.submit_time = now;
  r->output = rq.output_tokens;
  r->computed = 0;
  r->target = rq.prompt_tokens;
  const uint32_t full = rq.prompt_tokens / m.p.block_tokens;
  if (!rq.block_hashes.empty()) {
    r->n_hash = static_cast<uint32_t>(std::min<size_t>(rq.block_hashes.size(), full));
    r->hashes.assign(rq.block_hashes.begin(), rq.block_hashes.begin() + r->n_hash);
    r->group = 0;
  } else if (rq.prefix_group != 0) {
    r->group = rq.prefix_group;
    r->n_hash = std::min(rq.prefix_tokens, rq.prompt_tokens) / m.p.block_tokens;
  } else {
    r->group = 0;
    r->n_hash = 0;
  }
  m.live.emplace(rq.id, r);
  m.waiting.push_back(r);
  ++m.c.submitted;
  if (!m.busy) m.open_step(now);
  return SubmitResult::OK;
}

bool Engine::abort(uint64_t id, double now) {
  Impl& m = *_impl;
  m.run_until(now, false);
  auto it = m.live.find(id);
  if (it == m.live.end()) return false;
  Impl::Req* r = it->second;
  if (r->running) {
    if (r->sched >= 0) m.sched[r->sched].r = nullptr;
    m.release_all(r);
    m.running.erase(std::find(m.running.begin(), m.running.end(), r));
  } else {
    m.release_all(r);  // no-op for a never-admitted request; preempted ones hold nothing
    m.waiting.erase(std::find(m.waiting.begin(), m.waiting.end(), r));
  }
  r->running = false;
  r->st.end_time = now;
  ++m.c.aborted;
  m.c.aborted_generation_tokens += r->st.generated_tokens;
  RequestStats st = r->st;
  m.recycle(r);
  if (m.lis) m.lis->on_aborted(st);
  return true;
}

void Engine::advance(double now) { _impl->run_until(now, true); }
double Engine::next_event_time() const {
  if (!_impl->busy) return NEVER;
  return _impl->pending ? _impl->step_start : _impl->step_end;
}
const Profile& Engine::profile() const { return _impl->p; }
const Counters& Engine::counters() const { return _impl->c; }
double Engine::busy_gpu_seconds() const { return _impl->c.busy_seconds * _impl->p.gpus; }
uint32_t Engine::num_running() const { return static_cast<uint32_t>(_impl->running.size()); }
uint32_t Engine::num_waiting() const { return static_cast<uint32_t>(_impl->waiting.size()); }
uint64_t Engine::kv_used_blocks() const { return _impl->used_blocks; }
uint64_t Engine::kv_cached_blocks() const { return _impl->lru_size; }
uint64_t Engine::kv_total_blocks() const { return _impl->total_blocks; }
double Engine::kv_usage() const {
  return static_cast<double>(_impl->used_blocks) / static_cast<double>(_impl->total_blocks);
}
uint64_t Engine::pending_prefill_tokens() const {
  uint64_t s = 0;
  for (auto& kv : _impl->live)
    if (kv.second->computed < kv.second->target) s += kv.second->target - kv.second->computed;
  return s;
}
uint64_t Engine::pending_decode_tokens() const {
  uint64_t s = 0;
  for (auto& kv : _impl->live) s += kv.second->output - kv.second->st.generated_tokens;
  return s;
}
bool Engine::live(uint64_t id) const { return _impl->live.count(id) != 0; }

}  // namespace tlb::gpumodel
