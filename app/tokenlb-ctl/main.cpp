// tokenlb-ctl: operate a running tokenlb through its DPDK telemetry socket.
//
//   tokenlb-ctl [--socket PATH | --file-prefix P] [--json] COMMAND
//     status                         appliance summary
//     backends                       backend table (health, drain, weight, load, latency)
//     backend drain|undrain NAME     stop / resume new requests to NAME (in-flight ones finish)
//     backend weight NAME W          set NAME's weight (0..1000)
//     policy [show] | policy set NAME
//     stats [--all]                  every counter (non-zero ones unless --all)
//     top [--interval S] [--count N] live view, refreshing
//     raw /CMD[,PARAMS]              any telemetry command, JSON out
//
// The socket speaks DPDK telemetry v2: SOCK_SEQPACKET, the server greets with a JSON line, each
// request is "/cmd,params" and each reply is {"/cmd": value}. Exit codes: 0 ok, 1 the appliance
// rejected the command, 2 usage error or the appliance is not reachable.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <simdjson.h>

namespace {

using simdjson::dom::element;

struct Opts {
    std::string socket;
    std::string prefix = "tokenlb";
    bool json = false;
    bool all = false;
    double interval = 1.0;
    long count = -1;  // top: iterations (-1 = forever)
    std::vector<std::string> args;
};

[[noreturn]] void usage(int rc) {
    std::fprintf(rc ? stderr : stdout,
                 "usage: tokenlb-ctl [--socket PATH | --file-prefix P] [--json] COMMAND\n"
                 "  status                          appliance summary\n"
                 "  backends                        backend table\n"
                 "  backend drain|undrain NAME      stop/resume new requests (in-flight ones finish)\n"
                 "  backend weight NAME W           set weight 0..1000\n"
                 "  policy [show] | policy set NAME routing policy\n"
                 "  stats [--all]                   counters (non-zero unless --all)\n"
                 "  top [--interval S] [--count N]  live view\n"
                 "  raw /CMD[,PARAMS]               any DPDK telemetry command\n"
                 "Default socket: /var/run/dpdk/<prefix>/dpdk_telemetry.v2 (prefix tokenlb).\n");
    std::exit(rc);
}

std::vector<std::string> candidate_sockets(const Opts& o) {
    if (!o.socket.empty()) return {o.socket};
    std::vector<std::string> c = {"/var/run/dpdk/" + o.prefix + "/dpdk_telemetry.v2"};
    if (const char* x = std::getenv("XDG_RUNTIME_DIR")) c.push_back(std::string(x) + "/dpdk/" + o.prefix + "/dpdk_telemetry.v2");
    c.push_back("/tmp/dpdk/" + o.prefix + "/dpdk_telemetry.v2");
    return c;
}

class Client {
public:
    ~Client() {
        if (_fd >= 0) close(_fd);
    }
    bool connect_any(const std::vector<std::string>& paths, std::string& err) {
        for (const auto& p : paths) {
            int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                err = std::string("socket: ") + std::strerror(errno);
                return false;
            }
            sockaddr_un sa{};
            sa.sun_family = AF_UNIX;
            std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p.c_str());
            if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
                timeval tv{5, 0};
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                _fd = fd;
                _path = p;
                std::string hello;
                if (!recv_msg(hello)) {
                    err = "no greeting on " + p;
                    return false;
                }
                return true;
            }
            if (err.empty()) err = "cannot connect to " + p + ": " + std::strerror(errno);
            close(fd);
        }
        return false;
    }
    bool recv_msg(std::string& out) {
        out.assign(1 << 20, '\0');
        ssize_t n = recv(_fd, out.data(), out.size(), 0);
        if (n <= 0) return false;
        out.resize(size_t(n));
        return true;
    }
    // Sends "/cmd,params" and returns the raw reply.
    bool call(const std::string& cmd, std::string& reply, std::string& err) {
        if (send(_fd, cmd.data(), cmd.size(), 0) < 0) {
            err = std::string("send: ") + std::strerror(errno);
            return false;
        }
        if (!recv_msg(reply)) {
            err = "no reply from the appliance (timeout or closed socket)";
            return false;
        }
        return true;
    }

private:
    int _fd = -1;
    std::string _path;
};

struct Ctx {
    Opts o;
    Client c;
    simdjson::dom::parser parser;
    std::string raw;
};

// Calls cmd, returns the value under the command's key. Exits on transport errors.
element call(Ctx& x, const std::string& cmd, const std::string& params = "") {
    std::string line = params.empty() ? cmd : cmd + "," + params;
    std::string err;
    if (!x.c.call(line, x.raw, err)) {
        std::fprintf(stderr, "tokenlb-ctl: %s\n", err.c_str());
        std::exit(2);
    }
    element doc;
    if (x.parser.parse(x.raw).get(doc)) {
        std::fprintf(stderr, "tokenlb-ctl: malformed reply: %.200s\n", x.raw.c_str());
        std::exit(2);
    }
    element v;
    if (doc[cmd].get(v) || v.is_null()) {
        std::fprintf(stderr, "tokenlb-ctl: the appliance does not know %s (is this tokenlb?)\n", cmd.c_str());
        std::exit(2);
    }
    std::string_view e;
    if (v.is_object() && !v["error"].get(e)) {
        std::fprintf(stderr, "tokenlb-ctl: error: %.*s\n", int(e.size()), e.data());
        std::exit(1);
    }
    return v;
}

std::string to_json(element e) {
    std::ostringstream s;
    s << e;
    return s.str();
}

std::string scalar(element e) {
    if (e.is_string()) return std::string(std::string_view(e));
    if (e.is_uint64()) return std::to_string(uint64_t(e));
    if (e.is_int64()) return std::to_string(int64_t(e));
    return to_json(e);
}

uint64_t u(element obj, const char* k) {
    element e;
    if (obj[k].get(e)) return 0;
    if (e.is_uint64()) return uint64_t(e);
    if (e.is_int64()) return uint64_t(std::max<int64_t>(0, int64_t(e)));
    return 0;
}

void print_kv(element obj, bool skip_zero) {
    size_t w = 0;
    for (auto [k, v] : simdjson::dom::object(obj)) w = std::max(w, k.size());
    for (auto [k, v] : simdjson::dom::object(obj)) {
        if (skip_zero && v.is_uint64() && uint64_t(v) == 0) continue;
        std::printf("%-*.*s  %s\n", int(w), int(k.size()), k.data(), scalar(v).c_str());
    }
}

struct Table {
    std::vector<std::string> head;
    std::vector<std::vector<std::string>> rows;
    void print() const {
        std::vector<size_t> w(head.size());
        for (size_t i = 0; i < head.size(); ++i) w[i] = head[i].size();
        for (const auto& r : rows)
            for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
        auto line = [&](const std::vector<std::string>& r) {
            std::string s;
            for (size_t i = 0; i < r.size(); ++i) {
                bool left = i == 0 || i == 1;
                char buf[256];
                std::snprintf(buf, sizeof buf, left ? "%-*s" : "%*s", int(w[i]), r[i].c_str());
                s += buf;
                if (i + 1 < r.size()) s += "  ";
            }
            std::printf("%s\n", s.c_str());
        };
        line(head);
        for (const auto& r : rows) line(r);
    }
};

std::string col(element obj, const char* k, size_t i) {
    simdjson::dom::array a;
    if (obj[k].get(a)) return "-";
    element e;
    if (a.at(i).get(e)) return "-";
    return scalar(e);
}

std::string ms_str(const std::string& v) { return v == "0" ? "-" : v; }

Table backends_table(element b, const std::map<std::string, uint64_t>* prev_routed, double dt) {
    Table t;
    t.head = {"NAME", "ADDRESS", "HEALTH", "DRAIN", "WEIGHT", "OUT", "QUEUED_TOK", "RUN", "ROUTED",
              "KV%", "WAIT", "STALE", "TTFT_P50ms", "TTFT_P99ms", "E2E_P50ms", "E2E_P99ms"};
    if (prev_routed) t.head.insert(t.head.begin() + 9, "ROUTED/s");
    size_t n = size_t(u(b, "count"));
    for (size_t i = 0; i < n; ++i) {
        std::string kv = col(b, "kv_usage_permille", i);
        char kvs[32] = "-";
        if (col(b, "metrics_stale", i) == "0") std::snprintf(kvs, sizeof kvs, "%.1f", std::atof(kv.c_str()) / 10);
        std::vector<std::string> r = {col(b, "name", i), col(b, "address", i), col(b, "health", i),
                                      col(b, "drain", i) == "1" ? "yes" : "no", col(b, "weight", i),
                                      col(b, "outstanding", i), col(b, "queued_prompt_tokens", i),
                                      col(b, "running", i), col(b, "routed", i), kvs,
                                      col(b, "metrics_stale", i) == "0" ? col(b, "scraped_waiting", i) : "-",
                                      col(b, "metrics_stale", i) == "1" ? "yes" : "no",
                                      ms_str(col(b, "ttft_p50_ms", i)), ms_str(col(b, "ttft_p99_ms", i)),
                                      ms_str(col(b, "e2e_p50_ms", i)), ms_str(col(b, "e2e_p99_ms", i))};
        if (prev_routed) {
            auto it = prev_routed->find(r[0]);
            double rate = 0;
            if (it != prev_routed->end() && dt > 0)
                rate = double(std::strtoull(r[8].c_str(), nullptr, 10) - it->second) / dt;
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.1f", rate);
            r.insert(r.begin() + 9, buf);
        }
        t.rows.push_back(std::move(r));
    }
    return t;
}

int cmd_top(Ctx& x) {
    std::map<std::string, uint64_t> prev_routed;
    uint64_t prev_fin = 0;
    auto prev_t = std::chrono::steady_clock::now();
    bool have_prev = false;
    bool tty = isatty(1);
    for (long it = 0; x.o.count < 0 || it < x.o.count; ++it) {
        if (it) std::this_thread::sleep_for(std::chrono::duration<double>(x.o.interval));
        auto now = std::chrono::steady_clock::now();
        double dt = std::chrono::duration<double>(now - prev_t).count();
        element s = call(x, "/tokenlb/status");
        std::string status_json = to_json(s);
        uint64_t fin = u(s, "requests_finished");
        std::string policy = scalar(s["policy"]);
        std::string busy = to_json(s["busy_permille"]);
        uint64_t uptime = u(s, "uptime_s");
        uint64_t flows = u(s, "flows"), cc = u(s, "client_connections"), bc = u(s, "backend_connections");
        uint64_t r2 = u(s, "requests_2xx"), r4 = u(s, "requests_4xx"), r5 = u(s, "requests_5xx");
        uint64_t retries = u(s, "retries"), aborts = u(s, "client_aborts");
        element b = call(x, "/tokenlb/backends");
        if (x.o.json) {
            std::printf("{\"status\":%s,\"backends\":%s}\n", status_json.c_str(), to_json(b).c_str());
        } else {
            if (tty) std::printf("\x1b[H\x1b[2J");
            double rps = have_prev && dt > 0 ? double(fin - prev_fin) / dt : 0;
            std::printf("tokenlb  up %lus  policy %s  %.1f req/s  finished %lu (2xx %lu 4xx %lu 5xx %lu)  "
                        "retries %lu  client aborts %lu\n",
                        (unsigned long)uptime, policy.c_str(), rps, (unsigned long)fin, (unsigned long)r2,
                        (unsigned long)r4, (unsigned long)r5, (unsigned long)retries, (unsigned long)aborts);
            std::printf("flows %lu  client conns %lu  backend conns %lu  busy permille per worker %s\n\n",
                        (unsigned long)flows, (unsigned long)cc, (unsigned long)bc, busy.c_str());
            backends_table(b, have_prev ? &prev_routed : nullptr, dt).print();
        }
        std::fflush(stdout);
        prev_routed.clear();
        size_t n = size_t(u(b, "count"));
        for (size_t i = 0; i < n; ++i)
            prev_routed[col(b, "name", i)] = std::strtoull(col(b, "routed", i).c_str(), nullptr, 10);
        prev_fin = fin;
        prev_t = now;
        have_prev = true;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Ctx x;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "tokenlb-ctl: %s needs a value\n", a.c_str());
                usage(2);
            }
            return argv[++i];
        };
        if (a == "--socket" || a == "-s") x.o.socket = val();
        else if (a == "--file-prefix") x.o.prefix = val();
        else if (a == "--json" || a == "-j") x.o.json = true;
        else if (a == "--all") x.o.all = true;
        else if (a == "--interval") x.o.interval = std::atof(val().c_str());
        else if (a == "--count") x.o.count = std::atol(val().c_str());
        else if (a == "-h" || a == "--help") usage(0);
        else if (a.size() > 1 && a[0] == '-' && a[1] == '-') {
            std::fprintf(stderr, "tokenlb-ctl: unknown option %s\n", a.c_str());
            usage(2);
        } else x.o.args.push_back(a);
    }
    const auto& args = x.o.args;
    if (args.empty()) usage(2);
    if (x.o.interval <= 0) x.o.interval = 1;
    // Validate the command before connecting, so usage errors do not depend on the appliance.
    const std::string& c0 = args[0];
    bool ok = (c0 == "status" || c0 == "backends" || c0 == "stats" || c0 == "top") && args.size() == 1;
    ok |= c0 == "backend" && args.size() >= 3 &&
          (((args[1] == "drain" || args[1] == "undrain") && args.size() == 3) ||
           (args[1] == "weight" && args.size() == 4));
    ok |= c0 == "policy" && (args.size() == 1 || (args.size() == 2 && args[1] == "show") ||
                             (args.size() == 3 && args[1] == "set"));
    ok |= c0 == "raw" && args.size() == 2 && args[1].size() > 1 && args[1][0] == '/';
    if (!ok) {
        std::fprintf(stderr, "tokenlb-ctl: bad command line\n");
        usage(2);
    }

    std::string err;
    if (!x.c.connect_any(candidate_sockets(x.o), err)) {
        std::fprintf(stderr,
                     "tokenlb-ctl: %s\n"
                     "tokenlb-ctl: is tokenlb running? (scripts/lab.sh start; the socket lives in the "
                     "appliance's DPDK runtime dir; use --socket PATH or --file-prefix P otherwise)\n",
                     err.c_str());
        return 2;
    }

    if (c0 == "raw") {
        std::string line = args[1];
        size_t comma = line.find(',');
        std::string cmd = line.substr(0, comma);
        std::string reply;
        if (!x.c.call(line, reply, err)) {
            std::fprintf(stderr, "tokenlb-ctl: %s\n", err.c_str());
            return 2;
        }
        std::printf("%s\n", reply.c_str());
        return 0;
    }
    if (c0 == "top") return cmd_top(x);

    element v;
    if (c0 == "status") v = call(x, "/tokenlb/status");
    else if (c0 == "stats") v = call(x, "/tokenlb/stats");
    else if (c0 == "backends") v = call(x, "/tokenlb/backends");
    else if (c0 == "backend" && args[1] == "weight") v = call(x, "/tokenlb/backend_weight", args[2] + "," + args[3]);
    else if (c0 == "backend") v = call(x, "/tokenlb/backend_" + args[1], args[2]);
    else if (c0 == "policy" && args.size() == 3) v = call(x, "/tokenlb/policy_set", args[2]);
    else v = call(x, "/tokenlb/policy");

    if (x.o.json) {
        std::printf("%s\n", to_json(v).c_str());
        return 0;
    }
    if (c0 == "backends") {
        backends_table(v, nullptr, 0).print();
    } else if (c0 == "backend") {
        if (args[1] == "weight")
            std::printf("backend %s: weight %s\n", args[2].c_str(), scalar(v["weight"]).c_str());
        else
            std::printf("backend %s: %s (in-flight requests finish; new requests go elsewhere)\n", args[2].c_str(),
                        args[1] == "drain" ? "draining" : "accepting requests");
    } else if (c0 == "policy") {
        std::printf("policy %s%s\n", scalar(v["policy"]).c_str(), args.size() == 3 ? " (set)" : "");
    } else {
        print_kv(v, c0 == "stats" && !x.o.all);
    }
    return 0;
}
