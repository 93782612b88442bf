#include "telemetry/service.hpp"

#include <chrono>

#include "policy/policy.hpp"

namespace tlb::telemetry {

namespace {
uint64_t mono_ns() {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
}
}  // namespace

Service::Service(const ServiceOptions& o) : _o(o), _writer(o.scoreboard) {
    uint32_t n = std::max<uint32_t>(1, o.n_workers);
    _busy.reset(new std::atomic<double>[n]());
    for (uint32_t i = 0; i < n; ++i) {
        _workers.push_back(std::make_unique<WorkerTelemetry>());
        _workers.back()->busy.hz = o.tsc_hz;
        _worker_ptrs.push_back(_workers.back().get());
    }
    policy::Kind k = policy::Kind::TokenAware;
    if (o.cfg) policy::parse_kind(o.cfg->policy.name, k);
    _controls.policy.store(uint8_t(k));
    _start_time_s = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

    _cmd.writer = &_writer;
    _cmd.controls = &_controls;
    _cmd.workers = _worker_ptrs.data();
    _cmd.n_workers = n;
    _cmd.version = o.version;
    _cmd.start_time_s = _start_time_s;
    _cmd.busy_ratio = [this](uint32_t w) { return busy_ratio(w); };
    _cmd.access_log_written = [this] { return access_log_written(); };
}

Service::~Service() { stop(); }

void Service::set_sampler(std::function<void(Sample&)> fn) {
    _sampler = fn;
    _cmd.sampler = std::move(fn);
}

double Service::busy_ratio(uint32_t w) const { return w < _workers.size() ? _busy[w].load() : 0; }

std::string Service::metrics_text() {
    Sample s;
    if (_sampler) _sampler(s);
    ExportContext ctx;
    ctx.scoreboard = _o.scoreboard;
    ctx.workers = _worker_ptrs.data();
    ctx.n_workers = uint32_t(_worker_ptrs.size());
    std::vector<double> busy(_workers.size());
    for (size_t i = 0; i < busy.size(); ++i) busy[i] = _busy[i].load();
    ctx.busy_ratio = busy.data();
    ctx.version = _o.version;
    ctx.policy = policy::kind_name(policy::Kind(_controls.policy.load()));
    ctx.start_time_s = _start_time_s;
    ctx.access_log_written = _log_written.load();
    if (_scraper && _o.scoreboard) {
        uint32_t nb = _o.scoreboard->n_backends();
        ctx.scrapes_ok.assign(nb, 0);
        ctx.scrapes_failed.assign(nb, 0);
        const auto& t = _scraper->targets();
        for (size_t i = 0; i < t.size(); ++i)
            if (t[i].backend < nb) {
                ctx.scrapes_ok[t[i].backend] = _scraper->ok(i);
                ctx.scrapes_failed[t[i].backend] = _scraper->failed(i);
            }
    }
    Writer w;
    collect(w, s, ctx);
    return w.take();
}

NameTables Service::names() const {
    NameTables n;
    if (auto* sb = _o.scoreboard) {
        for (uint32_t m = 0; m < sb->segment()->header.n_models; ++m) n.models.push_back(sb->model_name(m));
        for (uint32_t b = 0; b < sb->n_backends(); ++b) {
            scoreboard::BackendConfig c;
            sb->read_config(b, c);
            n.backends.emplace_back(c.name);
        }
        if (_o.tag_names.empty())
            for (uint32_t t = 0; t < sb->segment()->header.n_tags; ++t) n.tags.push_back(sb->tag_name(t));
    }
    if (!_o.tag_names.empty()) n.tags = _o.tag_names;
    return n;
}

size_t Service::drain_once() {
    std::lock_guard g(_drain_mu);
    size_t written = 0;
    AccessRecord recs[256];
    scoreboard::Observation obs[256];
    NameTables nt;
    bool have_names = false;
    std::string text;
    for (auto& w : _workers) {
        size_t n;
        while ((n = w->log_ring().pop(recs, 256)) > 0) {
            if (!_log.enabled()) continue;
            if (!have_names) {
                nt = names();
                have_names = true;
            }
            for (size_t i = 0; i < n; ++i) format_access_json(text, recs[i], nt, _o.unix_offset_us);
            written += n;
        }
        while ((n = w->obs_ring().pop(obs, 256)) > 0) {
            if (!_o.scoreboard) continue;
            uint64_t now = mono_ns();
            for (size_t i = 0; i < n; ++i) _writer.learn(obs[i], now);
            _learned.fetch_add(n);
        }
    }
    if (!text.empty()) {
        _log.write(text);
        _log.flush();
    }
    _log_written.fetch_add(written);
    return written;
}

void Service::check_scrape_age() {
    if (!_scraper || !_o.cfg) return;
    uint64_t limit = 3ull * _o.cfg->telemetry.scrape_interval_ms * 1000000ull;
    uint64_t now = mono_ns();
    for (size_t b = 0; b < _stale_by_age.size(); ++b) {
        uint64_t t = _last_scrape_ok[b].load();
        bool old = t != 0 && now - t > limit;
        if (old && !_stale_by_age[b]) _writer.set_stale(uint32_t(b), true);
        _stale_by_age[b] = old;
    }
}

void Service::loop() {
    std::vector<uint64_t> prev_busy(_workers.size()), prev_total(_workers.size());
    auto last_busy = std::chrono::steady_clock::now();
    while (!_stop.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        drain_once();
        auto now = std::chrono::steady_clock::now();
        if (now - last_busy >= std::chrono::seconds(1)) {
            last_busy = now;
            check_scrape_age();
            for (size_t i = 0; i < _workers.size(); ++i) {
                uint64_t b = _workers[i]->busy.busy_cycles.load(std::memory_order_relaxed);
                uint64_t t = _workers[i]->busy.total_cycles.load(std::memory_order_relaxed);
                uint64_t db = b - prev_busy[i], dt = t - prev_total[i];
                _busy[i].store(dt ? double(db) / double(dt) : 0);
                prev_busy[i] = b;
                prev_total[i] = t;
            }
        }
    }
}

bool Service::start(std::string* err) {
    const config::Config* cfg = _o.cfg;
    std::string log_target = cfg ? cfg->telemetry.access_log : "";
    if (!_log.open(log_target, err)) return false;
    for (auto& w : _workers) w->enable_access_log(_log.enabled());
    if (_o.serve_metrics && cfg) {
        HttpHandler h = [this](std::string_view path, HttpResponse& r) {
            if (path == "/metrics") {
                r.content_type = EXPOSITION_CONTENT_TYPE;
                r.body = metrics_text();
            } else if (path == "/health" || path == "/healthz") {
                r.body = "ok\n";
            } else if (path == "/") {
                r.body = "tokenlb management endpoint: /metrics /health\n";
            } else {
                r.status = 404;
                r.body = "not found\n";
            }
        };
        if (!_http.start(cfg->telemetry.metrics_listen.addr, cfg->telemetry.metrics_listen.port, h, err))
            return false;
    }
    if (_o.scrape_backends && cfg && _o.scoreboard) {
        std::vector<ScrapeTarget> targets;
        for (size_t i = 0; i < cfg->backends.size(); ++i) {
            const auto& b = cfg->backends[i];
            std::string url = b.metrics_url;
            if (url.empty()) {
                uint32_t a = b.address.addr;
                url = "http://" + std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 255) + "." +
                      std::to_string(a >> 8 & 255) + "." + std::to_string(a & 255) + ":" +
                      std::to_string(b.address.port) + "/metrics";
            }
            ScrapeTarget t;
            t.backend = uint32_t(i);
            std::string e;
            if (!parse_url(url, t.url, &e)) {
                if (err) *err = "backends[" + std::to_string(i) + "]: " + e;
                return false;
            }
            targets.push_back(std::move(t));
        }
        uint32_t interval = cfg->telemetry.scrape_interval_ms;
        _last_scrape_ok.reset(new std::atomic<uint64_t>[cfg->backends.size()]());
        _stale_by_age.assign(cfg->backends.size(), 0);
        _scraper = std::make_unique<Scraper>(
            std::move(targets), interval, [this, interval](uint32_t b, bool ok, const BackendMetrics& m) {
                uint64_t now = mono_ns();
                if (ok) {
                    _last_scrape_ok[b].store(now);
                    // A series the backend does not export keeps its previous meaning: 0.
                    _writer.set_metrics(b, m.have_kv ? m.kv_usage : 0.f, m.waiting, m.running, now);
                } else {
                    _writer.set_stale(b, true);
                }
                (void)interval;
            });
        _scraper->start();
    }
    _stop.store(false);
    _thread = std::thread([this] { loop(); });
    return true;
}

bool Service::register_dpdk_commands(std::string* err) { return telemetry::register_dpdk_commands(&_cmd, err); }

void Service::stop() {
    _http.stop();
    if (_scraper) _scraper->stop();
    if (_thread.joinable()) {
        _stop.store(true);
        _thread.join();
    }
    drain_once();
    _log.flush();
}

}  // namespace tlb::telemetry
