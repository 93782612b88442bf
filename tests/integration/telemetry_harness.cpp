// tlb-telemetry-harness: a stand-in for the appliance while the data plane is being wired. It runs
// the real lib/telemetry Service (/metrics server, access log, scraper, /tokenlb/ DPDK telemetry
// commands with a real EAL) over a private scoreboard and a synthetic worker thread that routes
// fake requests round-robin over the backends the scoreboard says are available (so drain and
// weight 0 take effect exactly as for the real worker) and reports them like the data plane will
// (AccessRecord, Observation, scoreboard tickets, busy meter).
//
//   tlb-telemetry-harness --listen 127.0.0.1:PORT [--file-prefix P] [--backends N]
//                         [--metrics-url URL] [--access-log PATH] [--rate REQ_PER_S]
//                         [--hold-ms MS]
// --metrics-url sets backend 0's metrics_url (e.g. a gpu-emu); other backends get none and are
// not scraped. SIGINT/SIGTERM stop it.
#include <arpa/inet.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include <rte_eal.h>

#include "scoreboard/scoreboard.hpp"
#include "telemetry/service.hpp"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

uint64_t mono_us() {
    return uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
}

}  // namespace

int main(int argc, char** argv) {
    std::string listen = "127.0.0.1:9109", prefix = "tlb-harness", metrics_url, access_log;
    uint32_t n_backends = 4;
    double rate = 50;
    uint32_t hold_ms = 200;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--listen") listen = val();
        else if (a == "--file-prefix") prefix = val();
        else if (a == "--backends") n_backends = uint32_t(std::atoi(val().c_str()));
        else if (a == "--metrics-url") metrics_url = val();
        else if (a == "--access-log") access_log = val();
        else if (a == "--rate") rate = std::atof(val().c_str());
        else if (a == "--hold-ms") hold_ms = uint32_t(std::atoi(val().c_str()));
        else {
            std::fprintf(stderr, "tlb-telemetry-harness: unknown argument %s\n", a.c_str());
            return 2;
        }
    }
    std::string eal_prefix = "--file-prefix=" + prefix;
    const char* eal_argv[] = {argv[0], "--no-huge", "-m", "64", "--no-pci", eal_prefix.c_str(),
                              "--log-level", "lib.eal:error", nullptr};
    if (rte_eal_init(8, const_cast<char**>(eal_argv)) < 0) {
        std::fprintf(stderr, "tlb-telemetry-harness: EAL init failed\n");
        return 1;
    }

    tlb::config::Config cfg;
    size_t colon = listen.rfind(':');
    in_addr ia{};
    inet_pton(AF_INET, listen.substr(0, colon).c_str(), &ia);
    cfg.telemetry.metrics_listen = {ntohl(ia.s_addr), uint16_t(std::atoi(listen.c_str() + colon + 1))};
    cfg.telemetry.access_log = access_log;
    cfg.telemetry.scrape_interval_ms = 500;
    cfg.policy.name = "round_robin";
    auto sb = tlb::scoreboard::Scoreboard::create_private(1);
    for (uint32_t b = 0; b < n_backends; ++b) {
        tlb::scoreboard::BackendSpec s;
        s.name = "gpu" + std::to_string(b);
        s.ipv4 = 0x0a14000b + b;
        s.port = 8000;
        s.models = {"llama-3-8b"};
        std::string err;
        if (sb->add_backend(s, &err) < 0) {
            std::fprintf(stderr, "tlb-telemetry-harness: %s\n", err.c_str());
            return 1;
        }
        tlb::config::Backend cb;
        cb.name = s.name;
        cb.address = {s.ipv4, 8000};
        if (b == 0 && !metrics_url.empty()) cb.metrics_url = metrics_url;
        cfg.backends.push_back(cb);
    }

    tlb::telemetry::ServiceOptions o;
    o.cfg = &cfg;
    o.scoreboard = sb.get();
    o.tsc_hz = 1000000000ull;  // the synthetic worker counts nanoseconds
    o.scrape_backends = !metrics_url.empty();
    o.unix_offset_us = int64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count()) -
                       int64_t(mono_us());
    tlb::telemetry::Service svc(o);

    // Synthetic worker counters (names as in lib/dataplane/counters.hpp / lib/tcp/counters.hpp).
    std::atomic<uint64_t> requests{0}, routed{0}, rx{0}, no_backend{0};
    svc.set_sampler([&](tlb::telemetry::Sample& s) {
        tlb::telemetry::WorkerSample w;
        w.id = 0;
        w.dataplane = {{"rx_packets", rx.load()}, {"requests", requests.load()},
                       {"requests_routed", routed.load()}, {"no_backend", no_backend.load()},
                       {"retries", 0}, {"retry_status", 0}, {"client_aborts", 0}};
        w.tcp = {{"syn_rcvd", requests.load()}, {"cookie_ok", requests.load()}};
        w.flows = 2;
        w.client_conns = 1;
        for (uint32_t b = 0; b < n_backends; ++b) w.pool.push_back({1, 2});
        s.workers.push_back(std::move(w));
        s.ports.push_back({"client", rx.load(), rx.load(), rx.load() * 100, rx.load() * 100, 0, 0, 0, 0});
        s.ports.push_back({"backend", routed.load(), routed.load(), 0, 0, 0, 0, 0, 0});
    });
    std::string err;
    if (!svc.start(&err) || !svc.register_dpdk_commands(&err)) {
        std::fprintf(stderr, "tlb-telemetry-harness: %s\n", err.c_str());
        return 1;
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::printf("tlb-telemetry-harness: ready: metrics on %s port %u, telemetry prefix %s, %u backends\n",
                listen.c_str(), svc.metrics_port(), prefix.c_str(), n_backends);
    std::fflush(stdout);

    // Synthetic worker 0: route round-robin over available backends, hold each request hold_ms.
    std::thread worker([&] {
        auto& tel = svc.worker(0);
        tlb::scoreboard::View view;
        struct Inflight {
            tlb::scoreboard::Ticket t;
            uint64_t start_us;
            uint32_t backend;
        };
        std::deque<Inflight> inflight;
        uint32_t rr = 0;
        uint64_t next = mono_us();
        uint64_t period = uint64_t(1e6 / (rate > 0 ? rate : 1));
        while (!g_stop.load()) {
            auto t0 = std::chrono::steady_clock::now();
            uint64_t now = mono_us();
            bool work = false;
            while (!inflight.empty() && now - inflight.front().start_us >= hold_ms * 1000ull) {
                Inflight f = inflight.front();
                inflight.pop_front();
                sb->on_first_byte(f.t);
                sb->on_complete(f.t, 100, 20);
                tlb::telemetry::AccessRecord r;
                r.t_request_us = f.start_us;
                r.client_ip = htonl(0x0a0a0002);
                r.client_port = htons(40000);
                r.status = 200;
                r.model = 0;
                r.backend = uint16_t(f.backend);
                r.estimated_prompt_tokens = 104;
                r.prompt_tokens = 100;
                r.completion_tokens = 20;
                r.ttft_us = hold_ms * 250;
                r.e2e_us = uint32_t(now - f.start_us);
                r.policy = svc.controls().policy.load();
                r.attempts = 1;
                r.flags = tlb::telemetry::AccessRecord::FLAG_USAGE | tlb::telemetry::AccessRecord::FLAG_ROUTED;
                tel.request_done(r);
                tlb::scoreboard::Observation ob;
                ob.backend = f.backend;
                ob.ttft_s = r.ttft_us * 1e-6;
                ob.decode_s = (r.e2e_us - r.ttft_us) * 1e-6;
                ob.uncached_prompt_tokens = 100;
                ob.output_tokens = 20;
                tel.observe(ob);
                work = true;
            }
            while (now >= next) {  // catch up when a sleep overshoots (loaded host)
                next += period;
                requests++;
                rx += 5;
                sb->snapshot(view, now * 1000);
                uint64_t avail = view.available;
                if (!avail) {
                    no_backend++;
                    tlb::telemetry::AccessRecord r;
                    r.t_request_us = now;
                    r.status = 503;
                    r.flags = tlb::telemetry::AccessRecord::FLAG_LOCAL;
                    tel.request_done(r);
                } else {
                    uint32_t b = rr % n_backends;
                    while (!(avail >> b & 1)) b = (b + 1) % n_backends;
                    rr = b + 1;
                    inflight.push_back({sb->on_route(0, b, 100, 20), now, b});
                    routed++;
                }
                work = true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            auto t1 = std::chrono::steady_clock::now();
            tel.busy.poll(uint64_t(t0.time_since_epoch().count()), uint64_t(t1.time_since_epoch().count()), work);
        }
    });
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    worker.join();
    svc.stop();
    rte_eal_cleanup();
    std::printf("tlb-telemetry-harness: stopped\n");
    return 0;
}
