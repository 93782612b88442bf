// Discrete-event simulation: requests arrive, lib/policy decides on a scoreboard View, the chosen
// gpumodel::Engine(s) serve them in virtual time.
//
// Information discipline (what makes the comparison fair to the data plane): the policy reads
// only the scoreboard, which is fed exactly as the data plane will feed it:
//   - at dispatch      Scoreboard::on_route (prompt tokens it sent, expected output tokens)
//   - at first token   Scoreboard::on_first_byte
//   - at completion    Scoreboard::on_complete with the true usage, plus Scoreboard::learn
//                      (observed TTFT / decode rate vs what was predicted) and learn_output
//   - every scrape_interval_s  Scoreboard::set_metrics with the engine's running/waiting/kv usage,
//                      as a /metrics scrape would see them (lagged by up to one interval)
// The policy never reads an engine's internal queue or a request's true output length.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <limits>
#include <memory>
#include <numeric>
#include <unordered_map>

#include "policy/policy.hpp"
#include "scoreboard/scoreboard.hpp"
#include "sim.hpp"

namespace tlb::sim {

using gpumodel::Engine;
using gpumodel::NEVER;
using gpumodel::RequestStats;

bool parse_policy(const std::string& s, PolicySpec& out) {
    out = PolicySpec{};
    out.name = s;
    if (s.rfind("race", 0) == 0) {
        std::string rest = s.substr(4);
        if (rest.size() >= 5 && rest.compare(rest.size() - 5, 5, "-ttft") == 0) {
            out.race_ttft = true;
            rest = rest.substr(0, rest.size() - 5);
        }
        if (rest.empty() || rest.size() > 1 || rest[0] < '2' || rest[0] > '8') return false;
        out.race = static_cast<uint32_t>(rest[0] - '0');
        return true;
    }
    std::string base = s;
    std::string obj = "ttft";
    auto colon = s.find(':');
    if (colon != std::string::npos) {  // token_aware:e2e, token_aware:cost
        base = s.substr(0, colon);
        obj = s.substr(colon + 1);
    }
    policy::Kind k;
    if (!policy::parse_kind(base, k)) return false;
    policy::Objective o;
    if (!policy::parse_objective(obj, o)) return false;
    out.kind = static_cast<int>(k);
    out.objective = static_cast<int>(o);
    return true;
}

// Static routing profile (scoreboard::Profile) derived from a gpumodel profile, the way the
// control plane derives it from conf/profiles: linear rates at a reference context.
static scoreboard::Profile routing_profile(const gpumodel::Profile& g) {
    constexpr double REF_CTX = 1000.0;   // tokens held per decoding sequence, typical chat
    constexpr double REF_PROMPT = 1000.0;
    scoreboard::Profile p{};
    double prefill_s = g.prefill_per_token_s + g.prefill_attn_s_per_token2 * REF_PROMPT;
    p.prefill_tps = static_cast<float>(1.0 / std::max(prefill_s, 1e-9));
    double step1 = g.decode_base_s + g.decode_per_seq_s + g.decode_per_ctx_token_s * REF_CTX;
    double per_extra = g.decode_per_seq_s + g.decode_per_ctx_token_s * REF_CTX;
    p.decode_tps = static_cast<float>(1.0 / std::max(step1, 1e-9));
    p.decode_batch_slowdown = static_cast<float>(per_extra / std::max(step1, 1e-9));
    p.max_batch = g.max_num_seqs;
    p.kv_capacity_tokens = static_cast<uint32_t>(std::min<uint64_t>(g.kv_capacity_tokens, UINT32_MAX));
    p.chunk_tokens = g.max_num_batched_tokens;
    // Cost per million tokens at a saturated reference batch of 64 decoding sequences.
    double tput = 64.0 / (g.decode_base_s + 64 * per_extra);
    p.cost_per_mtok = static_cast<float>(g.cost_per_gpu_second() * g.gpus / tput * 1e6);
    return p;
}

namespace {

// Content identity of prompt blocks (16 tokens) so that shared prefixes get identical chained
// hashes: within prefix_tokens, a request's block i inherits the content of the latest earlier
// request of its group that had block i; beyond it, content is unique to the request.
class PrefixContent {
public:
    explicit PrefixContent(uint32_t block_tokens) : _bt(block_tokens ? block_tokens : 16) {}
    uint32_t block_tokens() const { return _bt; }
    // Fills `chain` with the chained hash of every full prompt block; empty when the request
    // has no prefix group (unique content: nothing to share, nothing to hash).
    void hashes(const TraceRequest& r, uint64_t uid, std::vector<uint64_t>& chain) {
        chain.clear();
        if (r.prefix_group.empty()) return;
        uint32_t nb = r.prompt_tokens / _bt;
        uint32_t shared = r.prefix_tokens / _bt;
        auto& doc = _docs[r.prefix_group];
        uint64_t g = std::hash<std::string>{}(r.prefix_group) | 1;
        _content.resize(nb);
        for (uint32_t i = 0; i < nb; ++i) {
            uint64_t c;
            if (i < shared) {
                if (i >= doc.size()) doc.push_back(gpumodel::block_hash_u64(g, i));
                c = doc[i];
            } else {
                c = gpumodel::block_hash_u64(uid * 0x9e3779b97f4a7c15ull + 7, i);
            }
            _content[i] = c;
        }
        doc.assign(_content.begin(), _content.end());
        uint64_t h = 0x517cc1b727220a95ull;
        chain.resize(nb);
        for (uint32_t i = 0; i < nb; ++i) {
            h = gpumodel::block_hash_u64(h, _content[i]);
            chain[i] = h ? h : 1;
        }
    }

private:
    uint32_t _bt;
    std::unordered_map<std::string, std::vector<uint64_t>> _docs;
    std::vector<uint64_t> _content;
};

struct Copy {
    uint32_t req = 0;
    uint32_t backend = 0;
    scoreboard::Ticket ticket;
    double route_t = 0;
    double first_t = NEVER;
    float pred_ttft = 0;
    float pred_tps = 0;
    bool live = false;
};

struct Req {
    double arrival = 0;
    double ttft_t = NEVER;  // client-visible first token
    double end_t = NEVER;
    uint32_t output = 0;
    uint32_t model = 0;
    uint32_t copy0 = 0;     // index of the first copy
    uint8_t n_copies = 0;
    bool done = false;
};

class Sim;

// One data-plane worker: its own View (refreshed from the scoreboard every refresh interval,
// plus its own deltas in between), prefix directory and round-robin cursor.
struct Worker {
    scoreboard::View view;
    policy::PrefixDirectory dir{1u << 16};
    policy::State state;
    double last_snapshot = -1e300;
};

struct EngineListener : gpumodel::Listener {
    Sim* sim = nullptr;
    uint32_t backend = 0;
    void on_first_token(uint64_t id, double t) override;
    void on_finished(const RequestStats& s) override;
    void on_aborted(const RequestStats& s) override;
};

class Sim {
public:
    Sim(const Fleet& fleet, const std::vector<TraceRequest>& reqs, const PolicySpec& pol,
        const SimOptions& opt)
        : _fleet(fleet), _reqs(reqs), _pol(pol), _opt(opt), _rng(opt.seed),
          _content(fleet.backends.empty() ? 16 : fleet.backends[0].profile.block_tokens) {
        const uint32_t nw = std::clamp<uint32_t>(opt.workers, 1, scoreboard::MAX_WORKERS);
        _sb = scoreboard::Scoreboard::create_private(nw);
        _workers.resize(nw);
        for (auto& w : _workers) w = std::make_unique<Worker>();
        for (auto& w : _workers) w->state.prefix = &w->dir;
        _listeners.resize(fleet.backends.size());
        for (size_t b = 0; b < fleet.backends.size(); ++b) {
            const auto& fb = fleet.backends[b];
            scoreboard::BackendSpec spec;
            spec.name = fb.name;
            spec.models = fb.models;
            spec.tags = fb.tags;
            spec.trust_zone = fb.trust_zone;
            spec.max_context = fb.max_context ? fb.max_context : fb.profile.max_model_len;
            spec.profile = routing_profile(fb.profile);
            std::string err;
            _sb->add_backend(spec, &err);
            _listeners[b].sim = this;
            _listeners[b].backend = static_cast<uint32_t>(b);
            gpumodel::EngineOptions eo;
            eo.token_events = false;
            _engines.push_back(std::make_unique<Engine>(fb.profile, &_listeners[b], eo));
        }
        for (const auto& a : fleet.aliases) {
            policy::Alias al;
            for (const auto& c : a.candidates) {
                int id = _sb->model_id(c, false);
                if (id >= 0 && al.n < policy::MAX_ALIAS_CANDIDATES) al.candidates[al.n++] = id;
            }
            _aliases.emplace(a.name, al);
        }
        _params.kind = pol.race ? policy::Kind::TokenAware : static_cast<policy::Kind>(pol.kind);
        _params.objective = static_cast<policy::Objective>(pol.objective);
        _req_state.resize(reqs.size());
        _copies.reserve(reqs.size() * (pol.race ? pol.race : 1));
    }

    Result run() {
        size_t next = 0;
        double next_scrape = _reqs.empty() ? NEVER : _reqs[0].t;
        const size_t ne = _engines.size();
        double now = 0;
        while (true) {
            double t_eng = NEVER;
            for (size_t b = 0; b < ne; ++b) t_eng = std::min(t_eng, _engines[b]->next_event_time());
            double t_arr = next < _reqs.size() ? _reqs[next].t : NEVER;
            bool work_left = next < _reqs.size() || _live_copies > 0;
            double t_scr = work_left ? next_scrape : NEVER;
            double t = std::min({t_eng, t_arr, t_scr});
            if (t == NEVER) break;
            now = std::max(now, t);
            if (t_eng <= t_arr && t_eng <= t_scr) {
                for (size_t b = 0; b < ne; ++b)
                    if (_engines[b]->next_event_time() <= now) _engines[b]->advance(now);
                flush_aborts(now);
            } else if (t_arr <= t_scr) {
                route(static_cast<uint32_t>(next), now);
                ++next;
                flush_aborts(now);
            } else {
                scrape(now);
                next_scrape = now + _opt.scrape_interval_s;
            }
        }
        return finish();
    }

    // ---- engine events ----
    void first_token(uint32_t backend, uint64_t id, double t) {
        Copy& c = _copies[id];
        (void)backend;
        c.first_t = t;
        _sb->on_first_byte(c.ticket);
        _workers[c.ticket.worker]->view.apply_first_byte(c.backend, static_cast<float>(c.ticket.uncached_prompt_tokens));
        Req& r = _req_state[c.req];
        if (_pol.race == 0) {
            r.ttft_t = t;
        } else if (_pol.race_ttft && r.ttft_t == NEVER) {
            // race-ttft: the first copy to produce a token wins; the others are cancelled now.
            r.ttft_t = t;
            cancel_others(c.req, static_cast<uint32_t>(id));
        }
    }

    void finished(uint32_t backend, const RequestStats& s) {
        Copy& c = _copies[s.id];
        c.live = false;
        --_live_copies;
        complete(c, s.prompt_tokens, s.generated_tokens);
        learn(backend, c, s);
        Req& r = _req_state[c.req];
        if (r.done) return;  // a loser that finished in the same step as the winner
        r.done = true;
        r.end_t = s.end_time;
        r.output = s.generated_tokens;
        if (_pol.race && !_pol.race_ttft) r.ttft_t = c.first_t;  // the winner's stream
        if (_pol.race) cancel_others(c.req, static_cast<uint32_t>(s.id));
        ++_completed;
    }

    void aborted(uint32_t /*backend*/, const RequestStats& s) {
        Copy& c = _copies[s.id];
        c.live = false;
        --_live_copies;
        uint32_t prefilled = s.first_scheduled_time != NEVER ? s.prompt_tokens - s.cached_tokens : 0;
        _wasted += prefilled + s.generated_tokens;
        complete(c, prefilled, s.generated_tokens);
    }

private:
    void complete(Copy& c, uint32_t prompt, uint32_t output) {
        scoreboard::Ticket t = c.ticket;
        _workers[t.worker]->view.apply_complete(c.backend, static_cast<float>(t.expected_output_tokens),
                                               t.first_byte, static_cast<float>(t.uncached_prompt_tokens));
        _sb->on_complete(c.ticket, prompt, output);
    }

    void cancel_others(uint32_t req, uint32_t winner) {
        const Req& r = _req_state[req];
        for (uint32_t k = 0; k < r.n_copies; ++k) {
            uint32_t id = r.copy0 + k;
            if (id != winner && _copies[id].live) _pending_aborts.push_back(id);
        }
    }

    void flush_aborts(double now) {
        while (!_pending_aborts.empty()) {
            uint32_t id = _pending_aborts.back();
            _pending_aborts.pop_back();
            if (_copies[id].live) _engines[_copies[id].backend]->abort(id, now);
        }
    }

    void learn(uint32_t backend, const Copy& c, const RequestStats& s) {
        scoreboard::Observation o;
        o.backend = backend;
        o.model = _req_state[c.req].model;
        o.ttft_s = c.first_t - c.route_t;
        o.predicted_ttft_s = c.pred_ttft;
        o.decode_s = s.end_time - c.first_t;
        o.predicted_decode_tps = c.pred_tps;
        o.uncached_prompt_tokens = s.prompt_tokens - s.cached_tokens;
        o.output_tokens = s.generated_tokens;
        _sb->learn(o, 0);
        _sb->learn_output(o.model, s.generated_tokens);
    }

    void scrape(double now) {
        for (size_t b = 0; b < _engines.size(); ++b) {
            _engines[b]->advance(now);
            _sb->set_metrics(static_cast<uint32_t>(b), static_cast<float>(_engines[b]->kv_usage()),
                             _engines[b]->num_waiting(), _engines[b]->num_running(), false,
                             static_cast<uint64_t>(now * 1e9));
        }
        flush_aborts(now);
    }

    void features(const TraceRequest& tr, uint32_t idx, policy::RequestFeatures& f) {
        f = policy::RequestFeatures{};
        f.prompt_tokens = tr.prompt_tokens;
        f.max_tokens = tr.max_tokens;
        int m = _sb->model_id(tr.model, false);
        f.model = m >= 0 ? static_cast<uint32_t>(m) : 63;  // 63: never served (unless 64 models)
        if (m < 0 && _sb->segment()->header.n_models == 64) f.model = 64;
        for (const auto& tag : tr.tags) {
            // Tags the fleet does not know are content classes, not requirements.
            int id = _sb->tag_id(tag, false);
            if (id >= 0) f.required_tags |= 1ull << id;
        }
        f.request_hash = static_cast<uint64_t>(idx) * 0x9e3779b97f4a7c15ull + 1;
        if (!_chain.empty())
            policy::set_prefix_points(f, _chain.data(), static_cast<uint32_t>(_chain.size()),
                                      static_cast<float>(_content.block_tokens()));
    }

    void route(uint32_t idx, double now) {
        const TraceRequest& tr = _reqs[idx];
        Req& r = _req_state[idx];
        r.arrival = tr.t;
        _content.hashes(tr, idx + 1, _chain);
        policy::RequestFeatures f;
        features(tr, idx, f);
        // Connections are pinned to workers: a conversation / prefix group arrives on one
        // connection (one worker), other requests spread over workers.
        uint32_t wi = tr.prefix_group.empty()
                          ? idx % static_cast<uint32_t>(_workers.size())
                          : static_cast<uint32_t>(std::hash<std::string>{}(tr.prefix_group) % _workers.size());
        Worker& w = *_workers[wi];
        if (now - w.last_snapshot >= _opt.refresh_s) {
            _sb->snapshot(w.view, static_cast<uint64_t>(now * 1e9));
            w.last_snapshot = now;
        }
        scoreboard::View& view = w.view;

        auto alias = _aliases.find(tr.model);
        if (alias != _aliases.end()) {
            policy::ModelChoice mc = policy::select_model(alias->second, _params, f, view, w.state, _rng);
            if (mc.model >= 0) f.model = static_cast<uint32_t>(mc.model);
        }
        r.model = f.model;

        int32_t targets[8];
        uint32_t nt = 0;
        policy::Decision d;
        if (_pol.race) {
            policy::Reason why;
            nt = policy::race_candidates(f, view, _rng, _pol.race, targets, &why);
            d.expected_output_tokens = policy::expected_output(_params, f, view);
        } else {
            d = policy::decide(_params, f, view, w.state, _rng);
            if (d.ok()) targets[nt++] = d.backend;
        }
        if (nt == 0) {
            ++_rejected;
            r.done = true;
            return;
        }
        r.copy0 = static_cast<uint32_t>(_copies.size());
        r.n_copies = static_cast<uint8_t>(nt);
        for (uint32_t k = 0; k < nt; ++k) {
            uint32_t b = static_cast<uint32_t>(targets[k]);
            Copy c;
            c.req = idx;
            c.backend = b;
            c.route_t = now;
            uint32_t cached = _pol.race ? 0 : d.cached_tokens;
            uint32_t uncached = tr.prompt_tokens > cached ? tr.prompt_tokens - cached : 1;
            c.pred_ttft = d.predicted_ttft_s;
            c.pred_tps = d.predicted_decode_tps;
            c.ticket = _sb->on_route(wi, b, uncached, d.expected_output_tokens);
            view.apply_route(b, static_cast<float>(uncached), static_cast<float>(d.expected_output_tokens));
            c.live = true;
            uint64_t id = _copies.size();
            _copies.push_back(c);
            w.dir.record(f.prefix_hash, f.prefix_tokens, f.n_prefix, b,
                        uncached + d.expected_output_tokens);
            gpumodel::Request gr;
            gr.id = id;
            gr.prompt_tokens = tr.prompt_tokens;
            gr.output_tokens = tr.output_tokens;
            gr.block_hashes = std::span<const uint64_t>(_chain.data(), _chain.size());
            ++_live_copies;
            auto res = _engines[b]->submit(gr, now);
            if (res != gpumodel::SubmitResult::OK) {
                _copies[id].live = false;
                --_live_copies;
                complete(_copies[id], 0, 0);
                if (k + 1 == nt && !r.done && !any_live(idx)) {
                    ++_rejected;
                    r.done = true;
                }
            }
        }
    }

    bool any_live(uint32_t req) const {
        const Req& r = _req_state[req];
        for (uint32_t k = 0; k < r.n_copies; ++k)
            if (_copies[r.copy0 + k].live) return true;
        return false;
    }

    Result finish() {
        Result res;
        res.policy = _pol.name;
        std::vector<double> e2e;
        double first_arrival = NEVER, last_end = 0;
        uint64_t out_tokens = 0;
        for (const Req& r : _req_state) {
            if (r.end_t == NEVER) continue;
            res.ttfts.push_back(r.ttft_t - r.arrival);
            e2e.push_back(r.end_t - r.arrival);
            first_arrival = std::min(first_arrival, r.arrival);
            last_end = std::max(last_end, r.end_t);
            out_tokens += r.output;
        }
        res.requests = res.ttfts.size();
        res.rejected = _rejected;
        auto pct = [](std::vector<double>& v, double q) {
            if (v.empty()) return 0.0;
            size_t k = static_cast<size_t>(std::ceil(q * v.size())) - 1;
            k = std::min(k, v.size() - 1);
            return v[k];
        };
        std::sort(res.ttfts.begin(), res.ttfts.end());
        std::sort(e2e.begin(), e2e.end());
        if (!res.ttfts.empty()) {
            res.mean_ttft = std::accumulate(res.ttfts.begin(), res.ttfts.end(), 0.0) / res.ttfts.size();
            res.mean_e2e = std::accumulate(e2e.begin(), e2e.end(), 0.0) / e2e.size();
            res.p50_ttft = pct(res.ttfts, 0.50);
            res.p99_ttft = pct(res.ttfts, 0.99);
            res.p99_e2e = pct(e2e, 0.99);
        }
        for (const auto& e : _engines) res.gpu_busy_s += e->busy_gpu_seconds();
        res.wasted_tokens = _wasted;
        if (last_end > first_arrival) res.throughput_tok_s = out_tokens / (last_end - first_arrival);
        return res;
    }

    const Fleet& _fleet;
    const std::vector<TraceRequest>& _reqs;
    PolicySpec _pol;
    SimOptions _opt;
    policy::Rng _rng;
    policy::Params _params;
    std::vector<std::unique_ptr<Worker>> _workers;
    PrefixContent _content;
    std::unique_ptr<scoreboard::Scoreboard> _sb;
    std::vector<EngineListener> _listeners;
    std::vector<std::unique_ptr<Engine>> _engines;
    std::unordered_map<std::string, policy::Alias> _aliases;
    std::vector<Req> _req_state;
    std::vector<Copy> _copies;
    std::vector<uint32_t> _pending_aborts;
    std::vector<uint64_t> _chain;
    uint64_t _live_copies = 0;
    uint64_t _completed = 0;
    uint64_t _rejected = 0;
    uint64_t _wasted = 0;
};

void EngineListener::on_first_token(uint64_t id, double t) { sim->first_token(backend, id, t); }
void EngineListener::on_finished(const RequestStats& s) { sim->finished(backend, s); }
void EngineListener::on_aborted(const RequestStats& s) { sim->aborted(backend, s); }

}  // namespace

Result simulate(const Fleet& fleet, const std::vector<TraceRequest>& reqs, const PolicySpec& pol,
                const SimOptions& opt) {
    Sim s(fleet, reqs, pol, opt);
    return s.run();
}

// Closed loop: keep max_num_seqs requests of the mix in flight, measure completions per second
// after a warm-up. Prefix sharing is ignored (capacity without cache help), so --load is a
// conservative fraction.
double engine_capacity(const gpumodel::Profile& p, const std::vector<TraceRequest>& mix) {
    struct L : gpumodel::Listener {
        uint64_t done = 0;
        double last = 0;
        void on_finished(const RequestStats& s) override { ++done; last = s.end_time; }
    } lis;
    gpumodel::EngineOptions eo;
    eo.token_events = false;
    Engine e(p, &lis, eo);
    const size_t target = std::min<size_t>(std::max<size_t>(mix.size(), 1), 3000);
    const uint32_t inflight = std::max(1u, p.max_num_seqs);
    size_t submitted = 0, k = 0;
    double now = 0;
    uint64_t warm_done = 0;
    double warm_t = -1;
    auto submit_one = [&]() {
        for (size_t tries = 0; tries < mix.size(); ++tries) {
            const TraceRequest& r = mix[k++ % mix.size()];
            gpumodel::Request gr;
            gr.id = ++submitted;
            gr.prompt_tokens = r.prompt_tokens;
            gr.output_tokens = r.output_tokens;
            if (e.submit(gr, now) == gpumodel::SubmitResult::OK) return;
        }
    };
    for (uint32_t i = 0; i < inflight; ++i) submit_one();
    while (lis.done < target) {
        double t = e.next_event_time();
        if (t == NEVER) break;
        now = t;
        uint64_t before = lis.done;
        e.advance(now);
        for (uint64_t i = before; i < lis.done; ++i) submit_one();
        if (warm_t < 0 && lis.done >= target / 5) {
            warm_t = now;
            warm_done = lis.done;
        }
    }
    if (warm_t < 0 || now <= warm_t) return 1.0;
    return static_cast<double>(lis.done - warm_done) / (now - warm_t);
}

}  // namespace tlb::sim
