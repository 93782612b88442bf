// tokenlb-sim internals: fleet, workload (built-in scenarios and JSONL traces), simulation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gpumodel/gpumodel.hpp"

namespace tlb::sim {

struct FleetBackend {
    std::string name;
    std::vector<std::string> models;
    std::vector<std::string> tags;
    std::string trust_zone = "default";
    std::string profile_name;
    uint32_t max_context = 0;  // 0 = the profile's max_model_len
    gpumodel::Profile profile;
};

struct FleetAlias {
    std::string name;
    std::vector<std::string> candidates;
};

struct Fleet {
    std::vector<FleetBackend> backends;
    std::vector<FleetAlias> aliases;
};

// Reads `[[backends]]` (name, models, profile, tags, optional trust_zone, max_context) and
// optional `[[aliases]]` (name, candidates) from a TOML file; profiles are resolved in
// profiles_dir. Returns false with *err on any error.
bool load_fleet(const std::string& path, const std::string& profiles_dir, Fleet& out,
                std::string* err);

struct TraceRequest {
    double t = 0;                 // arrival, seconds
    std::string model;
    uint32_t prompt_tokens = 1;
    uint32_t output_tokens = 1;   // true output length (the router never sees it)
    uint32_t max_tokens = 0;      // 0 = not given
    std::string prefix_group;     // "" = no shared prefix
    uint32_t prefix_tokens = 0;
    std::vector<std::string> tags;
};

// JSONL trace, one object per line (see docs/routing.md). Sorted by t on return.
bool load_trace(const std::string& path, std::vector<TraceRequest>& out, std::string* err);

// Built-in scenarios: n requests at a mean arrival rate of `rate` requests/s; *fleet_file is the
// scenario's fleet (a file name in conf/fleets). Request sizes depend only on (name, n, seed).
// Returns false for an unknown name.
bool make_scenario(const std::string& name, uint32_t n, uint64_t seed, double rate,
                   std::vector<TraceRequest>& out, std::string* fleet_file);

struct PolicySpec {
    std::string name;     // as given on the command line
    int kind = -1;        // policy::Kind when not a race
    uint32_t race = 0;    // 0 = single dispatch, N = race on N backends
    bool race_ttft = false;
    int objective = 0;    // policy::Objective
};
bool parse_policy(const std::string& s, PolicySpec& out);

struct Result {
    std::string policy;
    uint64_t requests = 0;   // completed
    uint64_t rejected = 0;   // no backend / too long
    double mean_ttft = 0, p50_ttft = 0, p99_ttft = 0;
    double mean_e2e = 0, p99_e2e = 0;
    double gpu_busy_s = 0;
    uint64_t wasted_tokens = 0;
    double throughput_tok_s = 0;
    std::vector<double> ttfts;  // sorted, for the CDF plot
};

struct SimOptions {
    uint64_t seed = 1;
    double scrape_interval_s = 1.0;  // /metrics polling period of the control plane
    uint32_t workers = 1;            // data-plane workers (own View, prefix directory each)
    double refresh_s = 50e-6;        // how often a worker re-reads the scoreboard into its View
};

// Saturated throughput (requests/s) of one engine with this request mix (closed loop with
// max_num_seqs requests in flight), the unit of --load.
double engine_capacity(const gpumodel::Profile& p, const std::vector<TraceRequest>& mix);

Result simulate(const Fleet& fleet, const std::vector<TraceRequest>& reqs, const PolicySpec& pol,
                const SimOptions& opt);

}  // namespace tlb::sim
