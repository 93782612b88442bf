// tokenlb: the appliance.
//
//   tokenlb --config FILE [--stats-interval SEC] [--link-timeout MS] [-- EAL args...]
//   tokenlb --check-config FILE
//
// EAL arguments come from the config's [eal] section, then `-l`/`--lcores` from [eal] lcores (or
// the first two CPUs this process may run on: main lcore = control plane, one worker), then
// anything after `--` (which wins, as EAL takes the last occurrence). --check-config needs neither
// EAL nor root.
#include <sched.h>
#include <time.h>
#include <sys/random.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "classify/classify.hpp"
#include "config/config.hpp"
#include "drivers/port.hpp"
#include "dataplane/setup.hpp"
#include "dataplane/worker.hpp"
#include "scoreboard/scoreboard.hpp"
#include "tcp/counters.hpp"
#include "telemetry/service.hpp"
#include "tokens/tokens.hpp"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_dump{false};

void on_signal(int sig) {
    if (sig == SIGUSR1)
        g_dump.store(true);
    else
        g_stop.store(true);
}

void usage(FILE* f) {
    std::fprintf(f,
                 "usage: tokenlb --config FILE [--stats-interval SEC] [--link-timeout MS] "
                 "[-- EAL args...]\n"
                 "       tokenlb --check-config FILE\n"
                 "Signals: SIGINT/SIGTERM stop cleanly, SIGUSR1 prints the counters.\n");
}

struct Args {
    std::string config;
    std::string check_config;
    unsigned stats_interval_s = 0;
    unsigned link_timeout_ms = 5000;
    std::vector<std::string> eal_passthrough;
};

bool parse_args(int argc, char** argv, Args& a) {
    for (int i = 1; i < argc; ++i) {
        std::string s = argv[i];
        auto value = [&](std::string& out) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "tokenlb: %s needs a value\n", s.c_str());
                return false;
            }
            out = argv[++i];
            return true;
        };
        std::string v;
        if (s == "--") {
            for (++i; i < argc; ++i) a.eal_passthrough.emplace_back(argv[i]);
        } else if (s == "--config" || s == "-c") {
            if (!value(a.config)) return false;
        } else if (s.rfind("--config=", 0) == 0) {
            a.config = s.substr(9);
        } else if (s == "--check-config") {
            if (!value(a.check_config)) return false;
        } else if (s.rfind("--check-config=", 0) == 0) {
            a.check_config = s.substr(15);
        } else if (s == "--stats-interval" || s == "--link-timeout") {
            if (!value(v)) return false;
            char* end = nullptr;
            unsigned long n = std::strtoul(v.c_str(), &end, 10);
            if (!end || *end || v.empty() || n > 86400000ul) {
                std::fprintf(stderr, "tokenlb: bad value '%s' for %s\n", v.c_str(), s.c_str());
                return false;
            }
            (s == "--stats-interval" ? a.stats_interval_s : a.link_timeout_ms) = unsigned(n);
        } else if (s == "-h" || s == "--help") {
            usage(stdout);
            std::exit(0);
        } else {
            std::fprintf(stderr, "tokenlb: unknown argument '%s'\n", s.c_str());
            usage(stderr);
            return false;
        }
    }
    return true;
}

bool has_arg(const std::vector<std::string>& v, std::initializer_list<const char*> names) {
    for (const auto& s : v)
        for (const char* n : names)
            if (s == n || s.rfind(std::string(n) + "=", 0) == 0) return true;
    return false;
}

// Main lcore + one worker on the first two CPUs we are allowed to run on; on a single CPU both
// lcores share it (the idle back-off keeps that usable).
std::vector<std::string> default_lcores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c)
            if (CPU_ISSET(c, &set)) cpus.push_back(c);
    if (cpus.empty()) cpus.push_back(0);
    if (cpus.size() == 1)
        return {"--lcores", "0@" + std::to_string(cpus[0]) + ",1@" + std::to_string(cpus[0])};
    return {"--lcores", "0@" + std::to_string(cpus[0]) + ",1@" + std::to_string(cpus[1])};
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
    return s;
}

void print_counters(const tlb::dataplane::Worker& w,
                    const std::vector<std::unique_ptr<tlb::drivers::Port>>& ports) {
    std::printf("tokenlb: counters %s\n", w.summary().c_str());
    for (size_t i = 0; i < ports.size(); ++i) {
        auto st = ports[i]->stats();
        std::printf("tokenlb: port %s ipackets=%lu opackets=%lu ibytes=%lu obytes=%lu imissed=%lu "
                    "ierrors=%lu oerrors=%lu rx_nombuf=%lu\n",
                    ports[i]->config().name.c_str(), (unsigned long)st.ipackets,
                    (unsigned long)st.opackets, (unsigned long)st.ibytes, (unsigned long)st.obytes,
                    (unsigned long)st.imissed, (unsigned long)st.ierrors, (unsigned long)st.oerrors,
                    (unsigned long)st.rx_nombuf);
    }
    std::fflush(stdout);
}

// Content tags: the rules of [tokens] rules_dir, compiled once (each worker clones a scratch), and
// the [policy] keys that name their tags. Throws with the reason; null when rules_dir is "".
std::unique_ptr<tlb::classify::Classifier> load_classifier(const tlb::config::Config& cfg) {
    std::unique_ptr<tlb::classify::Classifier> classifier;
    if (!cfg.tokens.rules_dir.empty()) {
        std::string cerr;
        classifier = tlb::classify::Classifier::load_dir(cfg.tokens.rules_dir, &cerr);
        if (!classifier) throw std::runtime_error("tokens.rules_dir \"" + cfg.tokens.rules_dir + "\": " + cerr);
        for (const auto& t : cfg.policy.sensitive_tags)
            if (classifier->tag_bit(t) < 0)
                throw std::runtime_error(
                    "policy.sensitive_tags: \"" + t + "\" is not a tag of the rules in " + cfg.tokens.rules_dir +
                    " (they define: " +
                    (classifier->tag_count() ? classifier->format(~0ull >> (64 - classifier->tag_count()))
                                             : std::string("no tags")) +
                    ")");
    } else if (!cfg.policy.sensitive_zones.empty()) {
        throw std::runtime_error("policy.sensitive_zones is set but tokens.rules_dir is \"\": "
                                 "nothing would tag a request sensitive");
    }
    return classifier;
}

}  // namespace

int main(int argc, char** argv) {
    Args args;
    if (!parse_args(argc, argv, args)) return 2;

    if (!args.check_config.empty()) {
        try {
            auto cfg = tlb::config::load_file(args.check_config);
            load_classifier(cfg);  // the rules compile and the policy's tag names exist
            std::fputs(tlb::config::to_toml(cfg).c_str(), stdout);
            return 0;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s\n", e.what());
            return 1;
        }
    }
    if (args.config.empty()) {
        usage(stderr);
        return 2;
    }

    tlb::config::Config cfg;
    std::unique_ptr<tlb::classify::Classifier> classifier;
    try {
        cfg = tlb::config::load_file(args.config);
        classifier = load_classifier(cfg);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    if (cfg.ports.empty()) {
        std::fprintf(stderr, "tokenlb: %s has no [[ports]]\n", args.config.c_str());
        return 1;
    }

    // EAL argv: ours, then config, then passthrough (last occurrence wins in EAL).
    std::vector<std::string> eal = {argv[0]};
    eal.insert(eal.end(), cfg.eal.args.begin(), cfg.eal.args.end());
    std::vector<std::string> all_user = cfg.eal.args;
    all_user.insert(all_user.end(), args.eal_passthrough.begin(), args.eal_passthrough.end());
    if (!has_arg(all_user, {"-l", "--lcores", "-c"})) {
        if (!cfg.eal.lcores.empty()) {
            eal.push_back("-l");
            eal.push_back(cfg.eal.lcores);
        } else {
            auto d = default_lcores();
            eal.insert(eal.end(), d.begin(), d.end());
        }
    }
    // One appliance per machine owns the "tokenlb" runtime dir; tokenlb-ctl finds its telemetry
    // socket there.
    if (!has_arg(all_user, {"--file-prefix", "--in-memory"})) {
        eal.push_back("--file-prefix");
        eal.push_back("tokenlb");
    }
    eal.insert(eal.end(), args.eal_passthrough.begin(), args.eal_passthrough.end());
    std::printf("tokenlb: EAL args: %s\n", join(eal).c_str());
    std::fflush(stdout);
    std::vector<char*> eal_argv;
    for (auto& s : eal) eal_argv.push_back(s.data());
    eal_argv.push_back(nullptr);

    int rc = rte_eal_init(int(eal_argv.size() - 1), eal_argv.data());
    if (rc < 0) {
        std::fprintf(stderr, "tokenlb: EAL init failed: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGUSR1, &sa, nullptr);

    unsigned worker_lcore = rte_get_next_lcore(-1, 1, 0);
    if (worker_lcore >= RTE_MAX_LCORE) {
        std::fprintf(stderr, "tokenlb: no worker lcore (give EAL at least two lcores)\n");
        rte_eal_cleanup();
        return 1;
    }
    if (cfg.dataplane.workers > 1)
        std::fprintf(stderr, "tokenlb: [dataplane] workers = %u; this build runs one worker\n",
                     cfg.dataplane.workers);

    int exit_code = 0;
    std::vector<std::unique_ptr<tlb::drivers::Port>> ports;
    std::unique_ptr<tlb::scoreboard::Scoreboard> scoreboard;
    std::unique_ptr<tlb::tokens::Estimator> estimator;
    std::unique_ptr<tlb::telemetry::Service> tel;
    std::unique_ptr<tlb::dataplane::Worker> worker;
    bool launched = false;
    try {
        tlb::drivers::OpenOptions oo;
        oo.lcores = rte_lcore_count();
        oo.burst = cfg.dataplane.burst;
        for (const auto& pc : cfg.ports) {
            ports.push_back(std::make_unique<tlb::drivers::Port>(pc));
            ports.back()->open(oo);
        }
        for (auto& p : ports) {
            bool up = p->wait_link(args.link_timeout_ms);
            std::printf("tokenlb: %s%s\n", p->describe().c_str(),
                        up ? "" : " (link still down, continuing)");
        }

        // Shared state the worker reads: the scoreboard and the token estimator.
        scoreboard = tlb::dataplane::build_scoreboard(cfg, 1);
        if (!cfg.tokens.calibration.empty())
            estimator = std::make_unique<tlb::tokens::Estimator>(
                tlb::tokens::Estimator::from_file(cfg.tokens.calibration));
        else
            estimator = std::make_unique<tlb::tokens::Estimator>(tlb::tokens::Estimator::builtin());
        if (classifier)
            std::printf("tokenlb: classify: %zu rules, %u tags from %s (%s)\n", classifier->rule_count(),
                        classifier->tag_count(), cfg.tokens.rules_dir.c_str(),
                        tlb::classify::script_kernel_name());

        tlb::dataplane::Env env;
        env.cfg = &cfg;
        env.worker_id = 0;
        bool have_client = false, have_backend = false;
        for (auto& p : ports) {
            const auto& pc = p->config();
            uint32_t mask = pc.address.prefix_len == 0 ? 0 : ~0u << (32 - pc.address.prefix_len);
            if (pc.role == tlb::config::PortRole::Client && !have_client) {
                have_client = true;
                env.client_port = p->id();
                env.client_mac = p->mac();
                env.client_addr_be = p->address_be();
                env.client_tx = p->offloads().tx_csum;
                env.pool = p->pool();
            } else if (pc.role == tlb::config::PortRole::Backend && !have_backend) {
                have_backend = true;
                env.backend_port = p->id();
                env.backend_mac = p->mac();
                env.backend_addr_be = p->address_be();
                env.backend_mask_be = rte_cpu_to_be_32(mask);
                env.backend_tx = p->offloads().tx_csum;
                bool on_link = true;
                for (const auto& b : cfg.backends)
                    on_link &= (b.address.addr & mask) == (pc.address.addr & mask);
                env.backend_gateway_be = on_link || !pc.gateway ? 0 : rte_cpu_to_be_32(pc.gateway);
            }
        }
        if (!have_client || !have_backend) throw std::runtime_error("need a client and a backend port");
        env.scoreboard = scoreboard.get();
        env.estimator = estimator.get();
        env.classifier = classifier.get();

        // Telemetry: Prometheus endpoint, access log, learning, backend scraping, DPDK telemetry
        // commands — all on control-plane threads (docs/operations.md).
        tlb::telemetry::ServiceOptions to;
        to.cfg = &cfg;
        to.scoreboard = scoreboard.get();
        to.n_workers = 1;
        to.tsc_hz = rte_get_tsc_hz();
        {
            timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t us = uint64_t((__uint128_t)rte_rdtsc() * 1000000u / to.tsc_hz);
            to.unix_offset_us = int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000 - int64_t(us);
        }
        if (classifier)
            for (uint32_t t = 0; t < classifier->tag_count(); ++t) to.tag_names.push_back(classifier->tag_name(t));
        tel = std::make_unique<tlb::telemetry::Service>(to);
        env.telemetry = &tel->worker(0);
        env.controls = &tel->controls();
        uint64_t keys[5] = {};
        if (getrandom(keys, sizeof keys, 0) != sizeof keys)
            throw std::runtime_error("getrandom failed");
        env.cookie_k0 = keys[0];
        env.cookie_k1 = keys[1];
        env.iss_k0 = keys[2];
        env.iss_k1 = keys[3];
        env.seed = keys[4] | 1;
        worker = std::make_unique<tlb::dataplane::Worker>(env);
        tel->set_sampler([&](tlb::telemetry::Sample& smp) {  // control-plane threads; read-only
            if (!worker) return;
            tlb::telemetry::WorkerSample ws;
            ws.id = 0;
            ws.dataplane = tlb::telemetry::named_values(worker->counters(), tlb::dataplane::dp_counter_names());
            ws.tcp = tlb::telemetry::named_values(worker->tcp_counters(), tlb::tcp::counter_names());
            ws.flows = worker->flows();
            ws.client_conns = worker->client_conns();
            ws.backend_conns = worker->backend_conns();
            ws.buffers_in_use = worker->buffers_in_use();
            for (uint16_t b = 0; b < cfg.backends.size(); ++b)
                ws.pool.push_back({worker->pool_idle(b), worker->pool_total(b)});
            ws.tsc_hz = rte_get_tsc_hz();
            if (classifier)
                for (uint32_t t = 0; t < classifier->tag_count(); ++t)
                    ws.tagged.push_back({classifier->tag_name(t).c_str(), worker->tagged(t)});
            smp.workers.push_back(std::move(ws));
            for (auto& p : ports) {
                auto st = p->stats();
                smp.ports.push_back({p->config().name, st.ipackets, st.opackets, st.ibytes, st.obytes,
                                     st.imissed, st.ierrors, st.oerrors, st.rx_nombuf});
            }
        });
        {
            std::string terr;
            if (!tel->start(&terr) || !tel->register_dpdk_commands(&terr))
                throw std::runtime_error("telemetry: " + terr);
        }
        static tlb::dataplane::Worker::LaunchArg la;
        la.worker = worker.get();
        la.stop = &g_stop;
        rc = rte_eal_remote_launch(tlb::dataplane::Worker::launch, &la, worker_lcore);
        if (rc != 0) throw std::runtime_error("cannot launch worker on lcore " +
                                              std::to_string(worker_lcore));
        launched = true;
        std::printf("tokenlb: ready: worker on lcore %u, %zu port(s), %zu backend(s), policy %s, "
                    "idle back-off %s\n",
                    worker_lcore, ports.size(), cfg.backends.size(), cfg.policy.name.c_str(),
                    cfg.dataplane.idle_backoff ? "on" : "off");
        std::fflush(stdout);

        // Control plane on the main lcore.
        auto next_stats = std::chrono::steady_clock::now() + std::chrono::seconds(args.stats_interval_s);
        while (!g_stop.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            bool due = args.stats_interval_s &&
                       std::chrono::steady_clock::now() >= next_stats;
            if (due) next_stats += std::chrono::seconds(args.stats_interval_s);
            if (due || g_dump.exchange(false)) print_counters(*worker, ports);
        }
        std::printf("tokenlb: stopping\n");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tokenlb: %s\n", e.what());
        exit_code = 1;
        g_stop.store(true);
    }

    if (launched) rte_eal_wait_lcore(worker_lcore);
    if (tel) tel->stop();
    if (worker) print_counters(*worker, ports);
    for (auto& p : ports) p->close();
    ports.clear();
    rte_eal_cleanup();
    std::printf("tokenlb: exit %d\n", exit_code);
    std::fflush(stdout);
    return exit_code;
}
