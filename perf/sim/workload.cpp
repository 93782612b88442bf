// Fleet files, JSONL traces and the built-in scenarios of tokenlb-sim.
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <toml++/toml.h>

#include "sim.hpp"

namespace tlb::sim {

bool load_fleet(const std::string& path, const std::string& profiles_dir, Fleet& out,
                std::string* err) {
    toml::table t;
    try {
        t = toml::parse_file(path);
    } catch (const toml::parse_error& e) {
        std::ostringstream os;
        os << path << ":" << e.source().begin.line << ": " << e.description();
        *err = os.str();
        return false;
    }
    auto* arr = t["backends"].as_array();
    if (!arr || arr->empty()) {
        *err = path + ": no [[backends]]";
        return false;
    }
    size_t i = 0;
    for (auto& node : *arr) {
        auto* b = node.as_table();
        std::string where = path + ": backends[" + std::to_string(i++) + "]";
        if (!b) { *err = where + ": not a table"; return false; }
        FleetBackend fb;
        fb.name = (*b)["name"].value_or(std::string());
        if (fb.name.empty()) { *err = where + ".name: missing"; return false; }
        if (auto* m = (*b)["models"].as_array())
            for (auto& x : *m) fb.models.push_back(x.value_or(std::string()));
        else if (auto s = (*b)["model"].value<std::string>())
            fb.models.push_back(*s);
        if (fb.models.empty()) { *err = where + ".models: missing"; return false; }
        if (auto* tg = (*b)["tags"].as_array())
            for (auto& x : *tg) fb.tags.push_back(x.value_or(std::string()));
        fb.trust_zone = (*b)["trust_zone"].value_or(std::string("default"));
        // `profile = "h100-8b"` (fleet files) or, as in tokenlb.toml, `profile_name = "h100-8b"`
        // next to a [backends.profile] table of routing numbers (which the simulator derives
        // from the GPU profile itself).
        fb.profile_name = (*b)["profile"].value_or(std::string());
        if (fb.profile_name.empty()) fb.profile_name = (*b)["profile_name"].value_or(std::string());
        if (fb.profile_name.empty()) {
            *err = where + ".profile: missing (a conf/profiles name)";
            return false;
        }
        std::string perr;
        std::string ppath = gpumodel::profile_path(fb.profile_name, profiles_dir);
        if (!gpumodel::load_profile(ppath, fb.profile, &perr)) {
            *err = where + ".profile: " + ppath + ": " + perr;
            return false;
        }
        fb.max_context = (*b)["max_context"].value_or(fb.profile.max_model_len);
        int64_t count = (*b)["count"].value_or(int64_t{1});  // convenience: N identical backends
        if (count < 1 || count > 64) { *err = where + ".count: 1..64"; return false; }
        if (count == 1) {
            out.backends.push_back(fb);
        } else {
            for (int64_t k = 0; k < count; ++k) {
                FleetBackend c = fb;
                c.name = fb.name + "-" + std::to_string(k);
                out.backends.push_back(c);
            }
        }
    }
    if (out.backends.size() > 64) { *err = path + ": more than 64 backends"; return false; }
    auto* al = t["aliases"].as_array();
    if (!al) al = t["policy"]["aliases"].as_array();  // tokenlb.toml: [[policy.aliases]]
    if (al) {
        for (auto& node : *al) {
            auto* a = node.as_table();
            if (!a) continue;
            FleetAlias fa;
            fa.name = (*a)["name"].value_or(std::string());
            if (auto* c = (*a)["candidates"].as_array())
                for (auto& x : *c) fa.candidates.push_back(x.value_or(std::string()));
            if (!fa.name.empty() && !fa.candidates.empty()) out.aliases.push_back(fa);
        }
    }
    return true;
}

bool load_trace(const std::string& path, std::vector<TraceRequest>& out, std::string* err) {
    std::ifstream in(path);
    if (!in) { *err = path + ": cannot open"; return false; }
    simdjson::ondemand::parser parser;
    std::string line;
    size_t lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        std::string where = path + ":" + std::to_string(lineno) + ": ";
        simdjson::padded_string ps(line);
        simdjson::ondemand::document doc;
        if (parser.iterate(ps).get(doc)) { *err = where + "not JSON"; return false; }
        simdjson::ondemand::object obj;
        if (doc.get_object().get(obj)) { *err = where + "not an object"; return false; }
        TraceRequest r;
        bool have_t = false, have_prompt = false;
        for (auto field : obj) {
            std::string_view key;
            if (field.unescaped_key().get(key)) { *err = where + "bad key"; return false; }
            auto v = field.value();
            auto num = [&](double& d) -> bool {
                if (v.get_double().get(d)) { *err = where + std::string(key) + ": not a number"; return false; }
                return true;
            };
            double d = 0;
            if (key == "t") { if (!num(d)) return false; r.t = d; have_t = true; }
            else if (key == "prompt_tokens") { if (!num(d)) return false; r.prompt_tokens = static_cast<uint32_t>(std::max(1.0, d)); have_prompt = true; }
            else if (key == "output_tokens") { if (!num(d)) return false; r.output_tokens = static_cast<uint32_t>(std::max(1.0, d)); }
            else if (key == "max_tokens") { if (!num(d)) return false; r.max_tokens = static_cast<uint32_t>(std::max(0.0, d)); }
            else if (key == "prefix_tokens") { if (!num(d)) return false; r.prefix_tokens = static_cast<uint32_t>(std::max(0.0, d)); }
            else if (key == "model" || key == "prefix_group") {
                std::string_view s;
                if (v.get_string().get(s)) {
                    // prefix_group may be numeric in some traces
                    int64_t iv;
                    if (key == "prefix_group" && !v.get_int64().get(iv)) s = {};
                    else { *err = where + std::string(key) + ": not a string"; return false; }
                    r.prefix_group = std::to_string(iv);
                } else if (key == "model") r.model = std::string(s);
                else r.prefix_group = std::string(s);
            } else if (key == "tags") {
                simdjson::ondemand::array a;
                if (v.get_array().get(a)) { *err = where + "tags: not an array"; return false; }
                for (auto x : a) {
                    std::string_view s;
                    if (x.get_string().get(s)) { *err = where + "tags: not strings"; return false; }
                    r.tags.emplace_back(s);
                }
            }
            // unknown keys are ignored: traces may carry more than the contract
        }
        if (!have_t || !have_prompt) { *err = where + "needs t and prompt_tokens"; return false; }
        if (r.max_tokens && r.output_tokens > r.max_tokens) r.output_tokens = r.max_tokens;
        if (r.prefix_tokens > r.prompt_tokens) r.prefix_tokens = r.prompt_tokens;
        out.push_back(std::move(r));
    }
    if (out.empty()) { *err = path + ": no requests"; return false; }
    std::stable_sort(out.begin(), out.end(),
                     [](const TraceRequest& a, const TraceRequest& b) { return a.t < b.t; });
    return true;
}

namespace {

uint32_t lognormal(std::mt19937_64& g, double median, double sigma, uint32_t lo, uint32_t hi) {
    std::lognormal_distribution<double> d(std::log(median), sigma);
    double x = d(g);
    return static_cast<uint32_t>(std::clamp(x, static_cast<double>(lo), static_cast<double>(hi)));
}

const char* MODEL = "llama-3.1-8b";

void chat_request(std::mt19937_64& g, TraceRequest& r) {
    r.model = MODEL;
    r.prompt_tokens = lognormal(g, 400, 0.8, 16, 4000);
    r.max_tokens = 1024;
    r.output_tokens = lognormal(g, 150, 0.8, 4, r.max_tokens);
}

}  // namespace

// Request sizes depend only on (name, n, seed); arrival times on rate too.
bool make_scenario(const std::string& name, uint32_t n, uint64_t seed, double rate,
                   std::vector<TraceRequest>& out, std::string* fleet_file) {
    std::mt19937_64 sizes(seed * 7919 + 1), times(seed * 104729 + 2);
    std::exponential_distribution<double> gap(1.0);
    std::uniform_real_distribution<double> u01(0.0, 1.0);
    out.clear();
    out.reserve(n);
    if (name == "mixed-fleet" || name == "bursty") {
        *fleet_file = name == "bursty" ? "bursty.toml" : "mixed-fleet.toml";
        double t = 0;
        // bursty: a two-state Markov-modulated Poisson process, 3x the mean rate for ~20% of
        // the time and 0.5x otherwise (mean 1.0), state durations exponential (mean 30 / 120 s).
        bool burst = false;
        double state_end = 0;
        std::exponential_distribution<double> on_len(1.0 / 30.0), off_len(1.0 / 120.0);
        for (uint32_t i = 0; i < n; ++i) {
            double m = 1.0;
            if (name == "bursty") {
                while (t >= state_end) {
                    burst = !burst;
                    state_end = t + (burst ? on_len(times) : off_len(times));
                }
                m = burst ? 3.0 : 0.5;
            }
            t += gap(times) / (m * rate);
            TraceRequest r;
            r.t = t;
            chat_request(sizes, r);
            out.push_back(r);
        }
        return true;
    }
    if (name == "mixed-length") {
        *fleet_file = "mixed-length.toml";
        double t = 0;
        for (uint32_t i = 0; i < n; ++i) {
            t += gap(times) / rate;
            TraceRequest r;
            r.t = t;
            r.model = MODEL;
            if (u01(sizes) < 0.2) {  // RAG: long retrieved context, short answer
                r.prompt_tokens = 4000 + static_cast<uint32_t>(u01(sizes) * 12000);
                r.max_tokens = 512;
                r.output_tokens = lognormal(sizes, 120, 0.6, 4, r.max_tokens);
                r.tags.push_back("rag");
            } else {  // chat
                r.prompt_tokens = lognormal(sizes, 250, 0.7, 16, 2000);
                r.max_tokens = 512;
                r.output_tokens = lognormal(sizes, 120, 0.7, 4, r.max_tokens);
            }
            out.push_back(r);
        }
        return true;
    }
    if (name == "multi-turn") {
        *fleet_file = "multi-turn.toml";
        // Conversations: a unique opening context (system prompt + user document, 300-3000
        // tokens), 2-10 turns, each turn adds a user message and gets an answer; the next turn's
        // prompt is the whole history. Think time between turns: exponential, mean 30 s, not
        // scaled by the rate (people do not type faster when the fleet is bigger). Conversation
        // starts are Poisson with rate `rate / mean_turns`, so requests arrive at ~`rate`/s.
        const double mean_turns = 6.0;
        std::uniform_int_distribution<int> turns_d(2, 10);
        std::exponential_distribution<double> think(1.0 / 30.0);
        double start = 0;
        uint32_t conv = 0;
        while (out.size() < n) {
            start += gap(times) * mean_turns / rate;
            int turns = turns_d(sizes);
            uint32_t ctx = lognormal(sizes, 1000, 0.6, 300, 3000);
            double t = start;
            std::string group = "conv-";
            group += std::to_string(conv++);
            uint32_t prev = 0;
            for (int k = 0; k < turns && out.size() < n; ++k) {
                TraceRequest r;
                r.t = t;
                r.model = MODEL;
                uint32_t msg = lognormal(sizes, 150, 0.7, 10, 1500);
                r.prompt_tokens = ctx + msg;
                r.prefix_group = group;
                r.prefix_tokens = prev;
                if (k == 0) r.prefix_tokens = 0;
                r.max_tokens = 1024;
                r.output_tokens = lognormal(sizes, 200, 0.7, 4, r.max_tokens);
                out.push_back(r);
                prev = r.prompt_tokens + r.output_tokens;
                ctx = prev;
                t += think(times);
                if (ctx > 5500) break;  // next turn must fit an 8k context with max_tokens
            }
        }
        std::stable_sort(out.begin(), out.end(),
                         [](const TraceRequest& a, const TraceRequest& b) { return a.t < b.t; });
        return true;
    }
    return false;
}

}  // namespace tlb::sim
