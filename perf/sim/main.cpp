// tokenlb-sim: run routing policies against the gpumodel time model and compare them.
//
//   tokenlb-sim --scenario mixed-fleet|mixed-length|multi-turn|bursty
//   tokenlb-sim --trace FILE.jsonl --fleet FILE.toml
//       [--load F] [--requests N] [--policies a,b,...] [--seed N] [--csv FILE] [--plot FILE.png]
//       [--conf DIR]
//
// --load F: arrival rate = F x fleet capacity, where fleet capacity is the sum over backends of
// the saturated throughput (requests/s) of that backend's engine on this workload's request mix
// (engine_capacity: closed loop with max_num_seqs requests in flight). For a trace, arrival times
// are rescaled so its mean rate matches; without --load a trace keeps its own times.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "sim.hpp"

#ifndef TLB_SOURCE_DIR
#define TLB_SOURCE_DIR "."
#endif

using namespace tlb::sim;

namespace {

const char* USAGE =
    "usage: tokenlb-sim (--scenario NAME | --trace FILE.jsonl --fleet FILE.toml)\n"
    "                   [--load F] [--requests N] [--policies a,b,...] [--seed N]\n"
    "                   [--csv FILE] [--plot FILE.png] [--conf DIR] [--quiet]\n"
    "                   [--workers N] [--refresh-us U]   (data-plane workers, View refresh period)\n"
    "scenarios: mixed-fleet mixed-length multi-turn bursty\n"
    "policies:  round_robin random least_requests power_of_two least_tokens prefix_hash\n"
    "           token_aware[:ttft|:e2e|:cost] race2 race3 race2-ttft (raceN, raceN-ttft)\n";

const char* DEFAULT_POLICIES =
    "round_robin,random,least_requests,power_of_two,least_tokens,prefix_hash,token_aware,race2,"
    "race3,race2-ttft";

std::vector<std::string> split(const std::string& s, char c) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string x;
    while (std::getline(ss, x, c))
        if (!x.empty()) out.push_back(x);
    return out;
}

bool exists(const std::string& p) { return access(p.c_str(), R_OK) == 0; }

std::string fmt(double v, int prec = 3) {
    char b[64];
    snprintf(b, sizeof b, "%.*f", prec, v);
    return b;
}

bool plot(const std::string& png, const std::vector<Result>& results, const std::string& title) {
    char dir[] = "/tmp/tokenlb-sim-plot-XXXXXX";
    if (!mkdtemp(dir)) return false;
    std::string script = std::string(dir) + "/plot.gp";
    std::ofstream gp(script);
    gp << "set terminal pngcairo size 1000,650 noenhanced\n"
       << "set output '" << png << "'\n"
       << "set title '" << title << ": TTFT CDF'\n"
       << "set xlabel 'TTFT (s)'\nset ylabel 'fraction of requests'\n"
       << "set logscale x\nset grid\nset key bottom right\nset yrange [0:1]\n";
    std::vector<std::string> files;
    for (size_t i = 0; i < results.size(); ++i) {
        std::string f = std::string(dir) + "/p" + std::to_string(i) + ".dat";
        std::ofstream d(f);
        const auto& v = results[i].ttfts;
        size_t n = v.size();
        size_t step = std::max<size_t>(1, n / 2000);  // thin to ~2000 points per curve
        for (size_t k = 0; k < n; k += step) d << std::max(v[k], 1e-4) << " " << double(k + 1) / n << "\n";
        if (n) d << std::max(v[n - 1], 1e-4) << " 1\n";
        files.push_back(f);
    }
    gp << "plot ";
    for (size_t i = 0; i < files.size(); ++i)
        gp << (i ? ", " : "") << "'" << files[i] << "' using 1:2 with lines lw 2 title '"
           << results[i].policy << "'";
    gp << "\n";
    gp.close();
    int rc = std::system(("gnuplot '" + script + "'").c_str());
    std::system(("rm -rf '" + std::string(dir) + "'").c_str());
    return rc == 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string scenario, trace, fleet_file, csv, png, conf;
    std::string policies = DEFAULT_POLICIES;
    double load = -1;
    uint32_t requests = 20000;
    uint64_t seed = 1;
    bool quiet = false;
    uint32_t workers = 1;
    double refresh_us = 50;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "tokenlb-sim: " << a << " needs a value\n" << USAGE;
                std::exit(2);
            }
            return argv[++i];
        };
        try {
            if (a == "--scenario") scenario = val();
            else if (a == "--trace") trace = val();
            else if (a == "--fleet") fleet_file = val();
            else if (a == "--load") load = std::stod(val());
            else if (a == "--requests") requests = static_cast<uint32_t>(std::stoul(val()));
            else if (a == "--policies") policies = val();
            else if (a == "--seed") seed = std::stoull(val());
            else if (a == "--csv") csv = val();
            else if (a == "--plot") png = val();
            else if (a == "--conf") conf = val();
            else if (a == "--quiet") quiet = true;
            else if (a == "--workers") workers = static_cast<uint32_t>(std::stoul(val()));
            else if (a == "--refresh-us") refresh_us = std::stod(val());
            else if (a == "-h" || a == "--help") { std::cout << USAGE; return 0; }
            else { std::cerr << "tokenlb-sim: unknown argument " << a << "\n" << USAGE; return 2; }
        } catch (const std::exception&) {
            std::cerr << "tokenlb-sim: bad value for " << a << "\n";
            return 2;
        }
    }
    if (scenario.empty() == trace.empty()) {
        std::cerr << "tokenlb-sim: give exactly one of --scenario or --trace\n" << USAGE;
        return 2;
    }
    if (!trace.empty() && fleet_file.empty()) {
        std::cerr << "tokenlb-sim: --trace needs --fleet\n";
        return 2;
    }
    if (load != -1 && !(load > 0 && load < 100)) {
        std::cerr << "tokenlb-sim: --load must be > 0\n";
        return 2;
    }
    if (requests == 0) {
        std::cerr << "tokenlb-sim: --requests must be > 0\n";
        return 2;
    }
    if (conf.empty()) conf = exists("conf/profiles") ? "conf" : std::string(TLB_SOURCE_DIR) + "/conf";
    const std::string profiles_dir = conf + "/profiles";

    std::vector<PolicySpec> specs;
    for (const auto& p : split(policies, ',')) {
        PolicySpec s;
        if (!parse_policy(p, s)) {
            std::cerr << "tokenlb-sim: unknown policy '" << p << "'\n" << USAGE;
            return 2;
        }
        specs.push_back(s);
    }
    if (specs.empty()) { std::cerr << "tokenlb-sim: no policies\n"; return 2; }

    std::vector<TraceRequest> reqs;
    std::string err;
    std::string scen_fleet;
    if (!scenario.empty()) {
        if (!make_scenario(scenario, requests, seed, 1.0, reqs, &scen_fleet)) {
            std::cerr << "tokenlb-sim: unknown scenario '" << scenario << "'\n" << USAGE;
            return 2;
        }
        if (fleet_file.empty()) fleet_file = conf + "/fleets/" + scen_fleet;
        if (load < 0) load = 0.7;
    } else {
        if (!load_trace(trace, reqs, &err)) { std::cerr << "tokenlb-sim: " << err << "\n"; return 1; }
        if (reqs.size() > requests) reqs.resize(requests);
    }
    Fleet fleet;
    if (!load_fleet(fleet_file, profiles_dir, fleet, &err)) {
        std::cerr << "tokenlb-sim: " << err << "\n";
        return 1;
    }

    // Capacity of the fleet for this request mix (sizes only), cached per profile.
    double capacity = 0;
    {
        std::map<std::string, double> per_profile;
        std::vector<TraceRequest> mix(reqs.begin(), reqs.begin() + std::min<size_t>(reqs.size(), 3000));
        for (const auto& b : fleet.backends) {
            auto it = per_profile.find(b.profile.name);
            if (it == per_profile.end())
                it = per_profile.emplace(b.profile.name, engine_capacity(b.profile, mix)).first;
            capacity += it->second;
        }
    }
    double rate = 0;
    if (!scenario.empty()) {
        rate = load * capacity;
        make_scenario(scenario, requests, seed, rate, reqs, &scen_fleet);
    } else if (load > 0 && reqs.size() > 1) {
        double span = reqs.back().t - reqs.front().t;
        double trace_rate = span > 0 ? (reqs.size() - 1) / span : 0;
        rate = load * capacity;
        if (trace_rate > 0) {
            double f = trace_rate / rate;
            double t0 = reqs.front().t;
            for (auto& r : reqs) r.t = (r.t - t0) * f;
        }
    }
    if (!quiet) {
        std::cerr << "tokenlb-sim: " << (scenario.empty() ? trace : scenario) << ", "
                  << fleet.backends.size() << " backends (" << fleet_file << "), " << reqs.size()
                  << " requests, fleet capacity " << fmt(capacity, 1) << " req/s";
        if (rate > 0) std::cerr << ", load " << load << " -> " << fmt(rate, 2) << " req/s";
        std::cerr << ", seed " << seed << "\n";
    }

    if (workers < 1 || workers > 16 || refresh_us < 0) {
        std::cerr << "tokenlb-sim: --workers 1..16, --refresh-us >= 0\n";
        return 2;
    }
    SimOptions opt;
    opt.seed = seed;
    opt.workers = workers;
    opt.refresh_s = refresh_us * 1e-6;
    std::vector<Result> results;
    for (const auto& s : specs) {
        results.push_back(simulate(fleet, reqs, s, opt));
        if (!quiet)
            std::cerr << "  " << s.name << ": done (" << results.back().requests << " completed, "
                      << results.back().rejected << " rejected)\n";
    }

    const char* header =
        "policy,requests,mean_ttft_s,p50_ttft_s,p99_ttft_s,mean_e2e_s,p99_e2e_s,gpu_busy_s,"
        "wasted_tokens,throughput_tok_s";
    if (!csv.empty()) {
        std::ofstream out(csv);
        if (!out) { std::cerr << "tokenlb-sim: cannot write " << csv << "\n"; return 1; }
        out << header << "\n";
        for (const auto& r : results)
            out << r.policy << "," << r.requests << "," << fmt(r.mean_ttft, 4) << ","
                << fmt(r.p50_ttft, 4) << "," << fmt(r.p99_ttft, 4) << "," << fmt(r.mean_e2e, 4)
                << "," << fmt(r.p99_e2e, 4) << "," << fmt(r.gpu_busy_s, 1) << ","
                << r.wasted_tokens << "," << fmt(r.throughput_tok_s, 1) << "\n";
    }
    std::cout << "| policy | requests | mean_ttft_s | p50_ttft_s | p99_ttft_s | mean_e2e_s | p99_e2e_s "
                 "| gpu_busy_s | wasted_tokens | throughput_tok_s |\n"
              << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& r : results)
        std::cout << "| " << r.policy << " | " << r.requests << " | " << fmt(r.mean_ttft) << " | "
                  << fmt(r.p50_ttft) << " | " << fmt(r.p99_ttft) << " | " << fmt(r.mean_e2e)
                  << " | " << fmt(r.p99_e2e) << " | " << fmt(r.gpu_busy_s, 1) << " | "
                  << r.wasted_tokens << " | " << fmt(r.throughput_tok_s, 1) << " |\n";
    if (!png.empty()) {
        if (!plot(png, results, scenario.empty() ? trace : scenario)) {
            std::cerr << "tokenlb-sim: gnuplot failed for " << png << "\n";
            return 1;
        }
    }
    return 0;
}
