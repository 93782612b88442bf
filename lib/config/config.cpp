// tokenlb configuration loader.
//
// Design (after looking at how the anchors do it):
//  - Envoy declares its config as a schema (protobuf) and validates from it, rejecting unknown
//    fields; HAProxy reports "parsing [file:line] : keyword 'x' ..." with the closest keyword
//    suggested; DPDK apps take a flat argv. We follow Envoy's "one schema drives everything" and
//    HAProxy's one-line, file:line-first error format.
//  - Every key is declared exactly once, below, in a per-section table of KeyDef: name, kind,
//    field, default (as a TOML literal), bounds / allowed values, flags and a doc string. The same
//    table drives parsing, defaults, validation, to_toml() (the effective config) and
//    reference_markdown() (docs/config.md). The struct initializers in config.hpp must agree with
//    the defaults here; tests/unit/config_test.cpp checks that they do.
//  - Rules that involve more than one key (duplicates, VIP inside a client prefix, alias
//    candidates, …) live in validate() and are listed once in CROSS_RULES for the docs.
//  - Control-plane only: exceptions and allocation are fine here.
#include "config/config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string_view>
#include <variant>

namespace tlb::config {

// ---------------------------------------------------------------------------------------------
// Address helpers (public).

namespace {

bool parse_u32_dec(std::string_view s, uint64_t max, uint64_t& out) {
    if (s.empty() || s.size() > 10) return false;
    if (s.size() > 1 && s[0] == '0') return false;  // no leading zeros: "010" is ambiguous (octal)
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + uint64_t(c - '0');
    }
    if (v > max) return false;
    out = v;
    return true;
}

}  // namespace

bool parse_ipv4(const std::string& s, uint32_t& host_order_addr) {
    std::string_view v(s);
    uint32_t addr = 0;
    for (int i = 0; i < 4; ++i) {
        size_t dot = v.find('.');
        if ((i < 3) != (dot != std::string_view::npos)) return false;
        std::string_view part = i < 3 ? v.substr(0, dot) : v;
        uint64_t octet;
        if (part.size() > 3 || !parse_u32_dec(part, 255, octet)) return false;
        addr = (addr << 8) | uint32_t(octet);
        if (i < 3) v.remove_prefix(dot + 1);
    }
    host_order_addr = addr;
    return true;
}

std::string ipv4_to_string(uint32_t a) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
           std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

bool parse_ipv4_prefix(const std::string& s, Ipv4Prefix& out) {
    size_t slash = s.find('/');
    if (slash == std::string::npos) return false;
    uint32_t addr;
    uint64_t len;
    if (!parse_ipv4(s.substr(0, slash), addr)) return false;
    if (!parse_u32_dec(std::string_view(s).substr(slash + 1), 32, len) || len == 0) return false;
    out.addr = addr;
    out.prefix_len = uint8_t(len);
    return true;
}

std::string prefix_to_string(const Ipv4Prefix& p) {
    return ipv4_to_string(p.addr) + "/" + std::to_string(p.prefix_len);
}

bool parse_endpoint(const std::string& s, Endpoint& out) {
    size_t colon = s.rfind(':');
    if (colon == std::string::npos) return false;
    uint32_t addr;
    uint64_t port;
    if (!parse_ipv4(s.substr(0, colon), addr)) return false;
    if (!parse_u32_dec(std::string_view(s).substr(colon + 1), 65535, port) || port == 0) return false;
    out.addr = addr;
    out.port = uint16_t(port);
    return true;
}

std::string endpoint_to_string(const Endpoint& e) {
    return ipv4_to_string(e.addr) + ":" + std::to_string(e.port);
}

bool prefix_contains(const Ipv4Prefix& p, uint32_t a) {
    uint32_t mask = p.prefix_len == 0 ? 0 : ~uint32_t(0) << (32 - p.prefix_len);
    return (p.addr & mask) == (a & mask);
}

bool is_vdev(const Port& p) { return p.device.rfind("net_", 0) == 0; }

namespace {

// ---------------------------------------------------------------------------------------------
// Key declarations.

enum class Kind { Bool, UInt, Float, String, Enum, StringList, Ipv4, Prefix, Endpoint, Role };

enum Flag : unsigned {
    NONE = 0,
    REQUIRED = 1u << 0,   // no default; absence is an error
    OPTIONAL = 1u << 1,   // no default; absence leaves the struct's zero value (and to_toml omits it)
    NONEMPTY = 1u << 2,   // strings and arrays
    IDENT = 1u << 3,      // strings / array items: [A-Za-z0-9._-], 1..MAX_NAME_LEN bytes
    POW2 = 1u << 4,       // integers
    UNIQUE = 1u << 5,     // array items are distinct
    SHM_NAME = 1u << 6,   // POSIX shm name: "/name", no other '/'
    HTTP_URL = 1u << 7,   // "" or "http://…"
    DEVICE = 1u << 8,     // PCI address or vdev spec
    LCORES = 1u << 9,     // EAL lcore list characters
    MODEL = 1u << 10,     // strings / array items: printable ASCII without spaces, 1..MAX_NAME_LEN
};

template <class S>
using FieldPtr = std::variant<bool S::*, uint16_t S::*, uint32_t S::*, uint64_t S::*, double S::*,
                              std::string S::*, std::vector<std::string> S::*, Ipv4Prefix S::*,
                              Endpoint S::*, PortRole S::*>;

template <class S>
struct KeyDef {
    std::string_view name;
    Kind kind;
    FieldPtr<S> field;
    std::string_view def;  // TOML literal of the default; empty with REQUIRED or OPTIONAL
    double lo = 0, hi = 0;  // inclusive bounds for UInt / Float
    std::vector<std::string_view> allowed;  // Enum
    unsigned flags = 0;
    std::string_view doc;
    std::shared_ptr<const toml::table> def_doc;  // `v = <def>` parsed once
};

template <class S>
std::vector<KeyDef<S>> finish(std::vector<KeyDef<S>> keys) {
    for (auto& k : keys)
        if (!k.def.empty())
            k.def_doc = std::make_shared<const toml::table>(
                toml::parse("v = " + std::string(k.def), std::string_view("<defaults>")));
    return keys;
}

constexpr double U16 = 65535, U32 = 4294967295.0;

const std::vector<KeyDef<Eal>>& eal_keys() {
    static const auto keys = finish<Eal>({
        {.name = "args", .kind = Kind::StringList, .field = &Eal::args,
         .def = R"(["--no-huge", "-m", "1024", "--no-pci"])",
         .doc = "Extra EAL arguments, passed to rte_eal_init() after the program name. The default "
                "runs without hugepages and without PCI scanning (virtual devices only); a "
                "bare-metal appliance uses e.g. [\"--huge-dir\", \"/dev/hugepages\", \"-m\", "
                "\"4096\"] and lets EAL probe its NICs. Do not put -l/-c/--lcores here when "
                "`lcores` is set."},
        {.name = "lcores", .kind = Kind::String, .field = &Eal::lcores, .def = R"("")",
         .flags = LCORES,
         .doc = "EAL lcore list (e.g. \"0-1\" or \"0,2\"): the first is the main (control-plane) "
                "lcore, the rest run workers. Empty: the application picks the main lcore plus "
                "`dataplane.workers` workers."},
    });
    return keys;
}

const std::vector<KeyDef<Port>>& port_keys() {
    static const auto keys = finish<Port>({
        {.name = "name", .kind = Kind::String, .field = &Port::name, .flags = REQUIRED | IDENT,
         .doc = "Unique port name used in logs, metrics and tokenlb-ctl."},
        {.name = "device", .kind = Kind::String, .field = &Port::device, .flags = REQUIRED | DEVICE,
         .doc = "A PCI address (\"0000:3b:00.0\") of a DPDK-bound NIC, or a vdev spec "
                "(\"net_af_packet0,iface=tlbc0\", \"net_tap0,iface=tlb0\", \"net_memif0,role=server\", "
                "\"net_ring0\", \"net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap\")."},
        {.name = "role", .kind = Kind::Role, .field = &Port::role, .allowed = {"client", "backend"},
         .flags = REQUIRED,
         .doc = "\"client\": faces clients and carries the VIP; \"backend\": faces the GPU servers."},
        {.name = "address", .kind = Kind::Prefix, .field = &Port::address, .flags = REQUIRED,
         .doc = "The appliance's own address on this port with its prefix length; it answers ARP "
                "and ICMP echo for it."},
        {.name = "gateway", .kind = Kind::Ipv4, .field = &Port::gateway, .flags = OPTIONAL,
         .doc = "Next hop for destinations outside `address`'s subnet; absent: only on-link "
                "destinations are reachable."},
        {.name = "rx_queues", .kind = Kind::UInt, .field = &Port::rx_queues, .def = "1", .lo = 1, .hi = 64,
         .doc = "Receive queues (one per worker when the NIC has RSS)."},
        {.name = "tx_queues", .kind = Kind::UInt, .field = &Port::tx_queues, .def = "1", .lo = 1, .hi = 64,
         .doc = "Transmit queues."},
        {.name = "rx_desc", .kind = Kind::UInt, .field = &Port::rx_desc, .def = "1024", .lo = 64,
         .hi = 32768, .flags = POW2, .doc = "Descriptors per receive queue."},
        {.name = "tx_desc", .kind = Kind::UInt, .field = &Port::tx_desc, .def = "1024", .lo = 64,
         .hi = 32768, .flags = POW2, .doc = "Descriptors per transmit queue."},
        {.name = "mtu", .kind = Kind::UInt, .field = &Port::mtu, .def = "1500", .lo = 576, .hi = 9216,
         .doc = "IP MTU of the port."},
        {.name = "mbufs", .kind = Kind::UInt, .field = &Port::mbufs, .def = "16383", .lo = 1023,
         .hi = 16777215,
         .doc = "Mbufs in this port's mempool (2^n - 1 is the most memory-efficient size). Must "
                "cover all rx/tx descriptors plus packets held by workers."},
    });
    return keys;
}

const std::vector<KeyDef<Vip>>& vip_keys() {
    static const auto keys = finish<Vip>({
        {.name = "address", .kind = Kind::Ipv4, .field = &Vip::address, .flags = REQUIRED,
         .doc = "Virtual IP clients connect to; must be inside a client port's subnet (it may be "
                "that port's own address)."},
        {.name = "port", .kind = Kind::UInt, .field = &Vip::port, .def = "80", .lo = 1, .hi = U16,
         .doc = "TCP port of the OpenAI-compatible HTTP/1.1 listener."},
    });
    return keys;
}

const std::vector<KeyDef<Backend>>& backend_keys() {
    static const auto keys = finish<Backend>({
        {.name = "name", .kind = Kind::String, .field = &Backend::name, .flags = REQUIRED | IDENT,
         .doc = "Unique backend name (metrics label, x-tokenlb-backend header, access log)."},
        {.name = "address", .kind = Kind::Endpoint, .field = &Backend::address, .flags = REQUIRED,
         .doc = "The GPU server's HTTP listener; reachable through a backend port (on-link or via "
                "its gateway)."},
        {.name = "models", .kind = Kind::StringList, .field = &Backend::models,
         .flags = REQUIRED | NONEMPTY | UNIQUE | MODEL,
         .doc = "Model names this backend serves, as clients write them in the request's `model`."},
        {.name = "tags", .kind = Kind::StringList, .field = &Backend::tags, .def = "[]",
         .flags = IDENT | UNIQUE,
         .doc = "Capability tags (e.g. \"code\", \"long-context\") matched against request tags."},
        {.name = "trust_zone", .kind = Kind::String, .field = &Backend::trust_zone, .def = R"("default")",
         .flags = IDENT,
         .doc = "Trust zone; requests tagged sensitive (e.g. PII) only go to allowed zones."},
        {.name = "max_context", .kind = Kind::UInt, .field = &Backend::max_context, .def = "8192",
         .lo = 1, .hi = 16777216, .doc = "Largest prompt + output, in tokens, this backend accepts."},
        {.name = "profile_name", .kind = Kind::String, .field = &Backend::profile_name, .def = R"("")",
         .doc = "Name of the GPU/model profile this backend runs (a conf/profiles/<name>.toml that "
                "gpu-emu and the simulator can load); informative for the appliance itself."},
        {.name = "weight", .kind = Kind::UInt, .field = &Backend::weight, .def = "100", .lo = 0,
         .hi = 1000,
         .doc = "Relative weight for weighted baselines; 0 drains the backend (no new requests)."},
        {.name = "metrics_url", .kind = Kind::String, .field = &Backend::metrics_url, .def = R"("")",
         .flags = HTTP_URL,
         .doc = "Optional vLLM-style Prometheus endpoint (\"http://host:port/metrics\") scraped for "
                "queue depth and KV-cache usage; empty: none."},
    });
    return keys;
}

const std::vector<KeyDef<BackendProfile>>& profile_keys() {
    static const auto keys = finish<BackendProfile>({
        {.name = "prefill_tokens_per_s", .kind = Kind::Float,
         .field = &BackendProfile::prefill_tokens_per_s, .def = "10000.0", .lo = 1, .hi = 1e9,
         .doc = "Prompt tokens per second the backend prefills."},
        {.name = "decode_tokens_per_s", .kind = Kind::Float,
         .field = &BackendProfile::decode_tokens_per_s, .def = "50.0", .lo = 0.1, .hi = 1e7,
         .doc = "Output tokens per second of one sequence at batch size 1."},
        {.name = "decode_batch_slowdown", .kind = Kind::Float,
         .field = &BackendProfile::decode_batch_slowdown, .def = "0.01", .lo = 0, .hi = 10,
         .doc = "Fractional per-sequence decode slowdown per extra running sequence."},
        {.name = "max_batch", .kind = Kind::UInt, .field = &BackendProfile::max_batch, .def = "256",
         .lo = 1, .hi = 65536, .doc = "Most sequences the backend decodes at once."},
        {.name = "cost_per_mtok", .kind = Kind::Float, .field = &BackendProfile::cost_per_mtok,
         .def = "1.0", .lo = 0, .hi = 1e9, .doc = "Cost units per million tokens (objective = \"cost\")."},
        {.name = "kv_capacity_tokens", .kind = Kind::UInt, .field = &BackendProfile::kv_capacity_tokens,
         .def = "0", .lo = 0, .hi = 1e9,
         .doc = "KV-cache capacity in tokens (bounds how long a served prefix stays cached); 0: unknown."},
        {.name = "chunk_tokens", .kind = Kind::UInt, .field = &BackendProfile::chunk_tokens, .def = "8192",
         .lo = 16, .hi = 1048576,
         .doc = "Token budget per engine step (vLLM max_num_batched_tokens): how much prefill is "
                "interleaved with decoding."},
    });
    return keys;
}

const std::vector<std::string_view> POLICY_NAMES = {
    "round_robin", "random", "least_requests", "power_of_two", "least_tokens", "prefix_hash",
    "token_aware"};

const std::vector<KeyDef<Policy>>& policy_keys() {
    static const auto keys = finish<Policy>({
        {.name = "name", .kind = Kind::Enum, .field = &Policy::name, .def = R"("token_aware")",
         .allowed = POLICY_NAMES,
         .doc = "Routing policy. token_aware predicts time to first/last token per eligible "
                "backend; the others are baselines."},
        {.name = "objective", .kind = Kind::Enum, .field = &Policy::objective, .def = R"("ttft")",
         .allowed = {"ttft", "e2e", "cost"},
         .doc = "What token_aware minimises: time to first token, end-to-end time, or cost within "
                "`latency_budget_s`."},
        {.name = "latency_budget_s", .kind = Kind::Float, .field = &Policy::latency_budget_s,
         .def = "10.0", .lo = 0.001, .hi = 3600, .doc = "End-to-end latency budget for objective = \"cost\"."},
        {.name = "prefix_bonus", .kind = Kind::Float, .field = &Policy::prefix_bonus, .def = "1.0",
         .lo = 0, .hi = 1,
         .doc = "Fraction of a recently served prompt prefix assumed still cached on that backend "
                "(prefix-cache bonus; 0 disables it)."},
        {.name = "bounded_load", .kind = Kind::Float, .field = &Policy::bounded_load, .def = "1.25",
         .lo = 1, .hi = 100,
         .doc = "prefix_hash: a backend takes a prefix's requests while its load is at most "
                "ceil(bounded_load x mean load), then they spill to the next in hash order "
                "(consistent hashing with bounded loads)."},
        {.name = "max_attempts", .kind = Kind::UInt, .field = &Policy::max_attempts, .def = "3",
         .lo = 1, .hi = 10,
         .doc = "Send attempts per request (retries on connect failure, 429 or 503 before any "
                "response byte reached the client)."},
        {.name = "prefix_block_bytes", .kind = Kind::UInt, .field = &Policy::prefix_block_bytes,
         .def = "256", .lo = 16, .hi = 65536, .flags = POW2,
         .doc = "Block size of the prompt-prefix fingerprint."},
        {.name = "tag_match", .kind = Kind::Enum, .field = &Policy::tag_match, .def = R"("prefer")",
         .allowed = {"prefer", "require", "off"},
         .doc = "How a request's content tags (from `tokens.rules_dir`: code, math, ...) use the "
                "backends' `tags` of the same name. prefer: among the backends every other filter "
                "allows, those with the tag when any is healthy; require: only backends with the "
                "tag (none: 503); off: content tags do not route. Tags no backend declares are "
                "ignored."},
        {.name = "sensitive_tags", .kind = Kind::StringList, .field = &Policy::sensitive_tags,
         .def = R"(["pii", "secrets"])", .flags = IDENT | UNIQUE,
         .doc = "Content tags that make a request sensitive: it is then routed only to backends in "
                "`sensitive_zones`. Each must be a tag of the rules in `tokens.rules_dir` (checked "
                "by `--check-config` and at start-up)."},
        {.name = "sensitive_zones", .kind = Kind::StringList, .field = &Policy::sensitive_zones,
         .def = "[]", .flags = IDENT | UNIQUE,
         .doc = "Trust zones that may serve sensitive requests (each the `trust_zone` of some "
                "backend); when none of them has a healthy backend the request gets a 503 "
                "(no_backend). []: no restriction."},
        {.name = "default_output_tokens", .kind = Kind::UInt, .field = &Policy::default_output_tokens,
         .def = "256", .lo = 1, .hi = 1048576,
         .doc = "Expected output length before a typical length has been learned (the estimate is "
                "min(max_tokens, this))."},
    });
    return keys;
}

const std::vector<KeyDef<ModelAlias>>& alias_keys() {
    static const auto keys = finish<ModelAlias>({
        {.name = "name", .kind = Kind::String, .field = &ModelAlias::name, .flags = REQUIRED | MODEL,
         .doc = "Alias clients may send as `model` (e.g. \"auto\"); must not be a served model."},
        {.name = "candidates", .kind = Kind::StringList, .field = &ModelAlias::candidates,
         .flags = REQUIRED | NONEMPTY | UNIQUE | MODEL,
         .doc = "Concrete models the alias may resolve to, each served by some backend."},
    });
    return keys;
}

const std::vector<KeyDef<Limits>>& limits_keys() {
    static const auto keys = finish<Limits>({
        {.name = "max_header_bytes", .kind = Kind::UInt, .field = &Limits::max_header_bytes,
         .def = "16384", .lo = 512, .hi = 1048576, .doc = "Largest request header block (431 beyond)."},
        {.name = "max_headers", .kind = Kind::UInt, .field = &Limits::max_headers, .def = "64", .lo = 4,
         .hi = 1024, .doc = "Most header fields per request (431 beyond)."},
        {.name = "max_body_bytes", .kind = Kind::UInt, .field = &Limits::max_body_bytes, .def = "8388608",
         .lo = 1024, .hi = 1073741824, .doc = "Largest request body (413 beyond)."},
        {.name = "header_timeout_ms", .kind = Kind::UInt, .field = &Limits::header_timeout_ms,
         .def = "10000", .lo = 1, .hi = 3600000,
         .doc = "Time allowed for a complete request header (slowloris guard)."},
        {.name = "body_timeout_ms", .kind = Kind::UInt, .field = &Limits::body_timeout_ms,
         .def = "30000", .lo = 1, .hi = 3600000, .doc = "Time allowed for a complete request body."},
        {.name = "keepalive_timeout_ms", .kind = Kind::UInt, .field = &Limits::keepalive_timeout_ms,
         .def = "60000", .lo = 1, .hi = 86400000, .doc = "Idle time before a client connection is closed."},
        {.name = "backend_connect_timeout_ms", .kind = Kind::UInt,
         .field = &Limits::backend_connect_timeout_ms, .def = "1000", .lo = 1, .hi = 600000,
         .doc = "Time allowed for a backend TCP handshake."},
        {.name = "first_byte_timeout_ms", .kind = Kind::UInt, .field = &Limits::first_byte_timeout_ms,
         .def = "60000", .lo = 1, .hi = 3600000,
         .doc = "Time from request sent to first response byte before the attempt fails (504)."},
        {.name = "max_flows", .kind = Kind::UInt, .field = &Limits::max_flows, .def = "65536", .lo = 64,
         .hi = 16777216, .flags = POW2, .doc = "Flow-table size per worker."},
        {.name = "max_ooo_segments", .kind = Kind::UInt, .field = &Limits::max_ooo_segments, .def = "16",
         .lo = 0, .hi = 1024, .doc = "Out-of-order segments held per connection (0: drop them)."},
        {.name = "pool_prewarm", .kind = Kind::UInt, .field = &Limits::pool_prewarm, .def = "2", .lo = 0,
         .hi = 65536, .doc = "Backend connections each worker opens per backend at start."},
        {.name = "pool_max", .kind = Kind::UInt, .field = &Limits::pool_max, .def = "256", .lo = 1,
         .hi = 65536, .doc = "Most backend connections per worker and backend."},
        {.name = "pool_idle_timeout_ms", .kind = Kind::UInt, .field = &Limits::pool_idle_timeout_ms,
         .def = "30000", .lo = 100, .hi = 3600000,
         .doc = "Idle pooled backend connections are closed after this. Keep it below the backends' "
                "own keep-alive timeout (vLLM's HTTP server closes idle connections after 5 s), or "
                "requests meet connections the backend is closing."},
    });
    return keys;
}

const std::vector<KeyDef<Telemetry>>& telemetry_keys() {
    static const auto keys = finish<Telemetry>({
        {.name = "metrics_listen", .kind = Kind::Endpoint, .field = &Telemetry::metrics_listen,
         .def = R"("127.0.0.1:9100")",
         .doc = "Kernel-socket address of the Prometheus /metrics endpoint (control plane)."},
        {.name = "access_log", .kind = Kind::String, .field = &Telemetry::access_log, .def = R"("")",
         .doc = "Access log: \"\" off, \"-\" stdout, else a file path (one JSON line per request)."},
        {.name = "backend_header", .kind = Kind::Bool, .field = &Telemetry::backend_header,
         .def = "false", .doc = "Add `x-tokenlb-backend: <name>` to responses (lab and debugging)."},
        {.name = "scrape_interval_ms", .kind = Kind::UInt, .field = &Telemetry::scrape_interval_ms,
         .def = "1000", .lo = 100, .hi = 3600000, .doc = "Polling interval of backends' `metrics_url`."},
        {.name = "scoreboard_shm", .kind = Kind::String, .field = &Telemetry::scoreboard_shm,
         .def = R"("/tokenlb-scoreboard")", .flags = SHM_NAME,
         .doc = "POSIX shared-memory name of the backend scoreboard (read by tokenlb-ctl)."},
    });
    return keys;
}

const std::vector<KeyDef<Dataplane>>& dataplane_keys() {
    static const auto keys = finish<Dataplane>({
        {.name = "workers", .kind = Kind::UInt, .field = &Dataplane::workers, .def = "1", .lo = 1,
         .hi = MAX_WORKERS, .doc = "Worker lcores running the poll loop."},
        {.name = "idle_backoff", .kind = Kind::Bool, .field = &Dataplane::idle_backoff, .def = "true",
         .doc = "Sleep after many empty polls so small machines (lab, CI) keep a core for clients "
                "and backends; turn off on dedicated cores. A worker that slept wakes with cold "
                "caches: in the lab the understand step of a lone request took ~50 us instead of "
                "~15 us polling (`tokenlb_understand_seconds_total`, docs/classify.md)."},
        {.name = "idle_polls_before_sleep", .kind = Kind::UInt,
         .field = &Dataplane::idle_polls_before_sleep, .def = "1024", .lo = 1, .hi = 1000000000,
         .doc = "Consecutive empty polls before the first sleep."},
        {.name = "idle_sleep_us", .kind = Kind::UInt, .field = &Dataplane::idle_sleep_us, .def = "100",
         .lo = 1, .hi = 1000000, .doc = "Length of one idle sleep."},
        {.name = "burst", .kind = Kind::UInt, .field = &Dataplane::burst, .def = "32", .lo = 1, .hi = 512,
         .doc = "Packets per rx/tx burst."},
    });
    return keys;
}

const std::vector<KeyDef<Tokens>>& tokens_keys() {
    static const auto keys = finish<Tokens>({
        {.name = "calibration", .kind = Kind::String, .field = &Tokens::calibration, .def = R"("")",
         .doc = "Token-estimator calibration file (conf/tokenizers/*.toml); \"\": built-in default."},
        {.name = "rules_dir", .kind = Kind::String, .field = &Tokens::rules_dir, .def = R"("conf/rules")",
         .doc = "Directory of Hyperscan classification rules (*.rules, docs/classify.md), compiled "
                "at start-up; every request's text is tagged with them (access log `tags`, "
                "`tokenlb_requests_tagged_total`, `policy.tag_match`, `policy.sensitive_zones`). "
                "A relative path is taken from the current directory; rules that do not load stop "
                "the start and `--check-config`. \"\": no content tags."},
    });
    return keys;
}

struct SectionDoc {
    std::string_view path;   // as written in TOML headers
    bool array;              // [[x]] vs [x]
    std::string_view doc;
};

// Order is the order of to_toml() and docs/config.md.
const std::vector<SectionDoc> SECTIONS = {
    {"eal", false, "DPDK Environment Abstraction Layer options."},
    {"ports", true,
     "One entry per DPDK port. At least one port with role = \"client\" and one with role = "
     "\"backend\" (they may not share a subnet)."},
    {"vip", false, "The virtual service clients connect to. Required."},
    {"backends", true, "GPU servers. At least one; names and address:port pairs are unique."},
    {"backends.profile", false,
     "Optional sub-table of a [[backends]] entry: the static performance profile routing uses "
     "before anything is learned."},
    {"policy", false, "Routing policy."},
    {"policy.aliases", true,
     "Model aliases (e.g. model \"auto\"): the policy picks one of `candidates` and rewrites the "
     "request body."},
    {"limits", false, "Request limits, timeouts and per-worker table sizes."},
    {"telemetry", false, "Metrics, access log and the shared scoreboard."},
    {"dataplane", false, "Worker poll loops."},
    {"tokens", false, "Token estimation and classification data."},
};

const std::vector<std::string_view> CROSS_RULES = {
    "Unknown sections and unknown keys are errors (the closest known name is suggested).",
    "`ports`: at least one port with role = \"client\" and one with role = \"backend\"; names unique; "
    "devices unique (vdevs compared by name, e.g. net_af_packet0); subnets of different ports do "
    "not overlap; `gateway` lies inside its port's subnet.",
    "`eal.lcores` set: `eal.args` must not contain -l, -c or --lcores.",
    "`vip.address` lies inside the subnet of a client port.",
    "`ports[].mbufs` >= rx_queues x rx_desc + tx_queues x tx_desc + dataplane.burst x (rx_queues + "
    "tx_queues) (the port driver adds per-lcore mempool caches on top).",
    "`backends`: 1 to 64; names unique; address:port pairs unique; each address lies inside a "
    "backend port's subnet unless a backend port has a gateway; no backend address equals an "
    "appliance address or the VIP.",
    "At most 64 distinct models, 64 distinct tags and 32 distinct trust zones (scoreboard capacity).",
    "`policy.sensitive_zones`: each is the `trust_zone` of some backend. `policy.sensitive_tags`: each "
    "is a tag of the rules in `tokens.rules_dir` (checked by `tokenlb --check-config` and at start, after compiling them).",
    "`policy.aliases`: names unique and not a served model; every candidate is a model served by "
    "some backend.",
    "`limits.pool_prewarm` <= `limits.pool_max`.",
};

// ---------------------------------------------------------------------------------------------
// Parsing.

struct Ctx {
    std::string file;
    std::map<std::string, uint32_t> lines;  // key path -> source line

    [[noreturn]] void fail(uint32_t line, const std::string& path, const std::string& what) const {
        throw ConfigError(file + ":" + std::to_string(line ? line : 1) + ": " + path + ": " + what);
    }
    uint32_t line_of(const std::string& path) const {
        auto it = lines.find(path);
        return it == lines.end() ? 1 : it->second;
    }
};

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        case '\r': out += "\\r"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out += char(c);
            }
        }
    }
    return out + "\"";
}

std::string num(double v) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    std::string s(buf, r.ptr);
    if (s.find_first_of(".eEni") == std::string::npos) s += ".0";
    return s;
}

std::string num(uint64_t v) { return std::to_string(v); }

// Bounds in messages and docs: "[0, 10]", "[0.001, 3600]", "[1, 1e+09]".
std::string bound(double v, Kind kind) {
    if (kind == Kind::UInt) return num(uint64_t(v));
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

std::string type_name(const toml::node& n) {
    switch (n.type()) {
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::array: return "array";
    case toml::node_type::table: return "table";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "none";
    }
}

std::string allowed_list(const std::vector<std::string_view>& allowed) {
    std::string s;
    for (size_t i = 0; i < allowed.size(); ++i) {
        if (i) s += i + 1 == allowed.size() ? " or " : ", ";
        s += quote(allowed[i]);
    }
    return s;
}

// Human description of what a key accepts; used in errors ("expected …") and in the docs.
template <class S>
std::string expected(const KeyDef<S>& k) {
    switch (k.kind) {
    case Kind::Bool: return "true or false";
    case Kind::UInt: {
        std::string s = "an integer in [" + bound(k.lo, k.kind) + ", " + bound(k.hi, k.kind) + "]";
        if (k.flags & POW2) s += ", a power of two";
        return s;
    }
    case Kind::Float: return "a number in [" + bound(k.lo, k.kind) + ", " + bound(k.hi, k.kind) + "]";
    case Kind::String:
        if (k.flags & IDENT) return "a name of 1-47 letters, digits, '.', '_' or '-'";
        if (k.flags & MODEL) return "a model name of 1-47 printable characters without spaces";
        if (k.flags & DEVICE)
            return "a PCI address such as \"0000:3b:00.0\" or a vdev spec such as "
                   "\"net_af_packet0,iface=tlbc0\"";
        if (k.flags & SHM_NAME) return "a shared-memory name such as \"/tokenlb-scoreboard\"";
        if (k.flags & HTTP_URL) return "\"\" or a URL such as \"http://10.20.0.11:8000/metrics\"";
        if (k.flags & LCORES) return "\"\" or an EAL lcore list such as \"0-1\"";
        return (k.flags & NONEMPTY) ? "a non-empty string" : "a string";
    case Kind::Enum:
    case Kind::Role: return allowed_list(k.allowed);
    case Kind::StringList: {
        std::string s = (k.flags & NONEMPTY) ? "a non-empty array of " : "an array of ";
        s += (k.flags & UNIQUE) ? "distinct " : "";
        s += (k.flags & IDENT) ? "names" : (k.flags & MODEL) ? "model names" : "strings";
        return s;
    }
    case Kind::Ipv4: return "an IPv4 address such as \"10.10.0.1\"";
    case Kind::Prefix: return "an IPv4 address/prefix length such as \"10.10.0.1/24\"";
    case Kind::Endpoint: return "an IPv4 address:port such as \"10.20.0.11:8000\"";
    }
    return "?";
}

static_assert(MAX_NAME_LEN == 47, "update the 1-47 in expected()");

bool is_model_name(std::string_view s) {
    if (s.empty() || s.size() > MAX_NAME_LEN) return false;
    for (char c : s)
        if (c <= ' ' || c > '~') return false;
    return true;
}

bool is_ident(std::string_view s) {
    if (s.empty() || s.size() > MAX_NAME_LEN) return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
            return false;
    return true;
}

bool is_hex(std::string_view s, size_t n) {
    if (s.size() != n) return false;
    for (char c : s)
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

// "0000:3b:00.0" or "3b:00.0" (DPDK accepts both), or "net_<driver><n>[,k=v…]".
bool is_device(std::string_view s) {
    if (s.rfind("net_", 0) == 0) {
        std::string_view name = s.substr(0, s.find(','));
        if (name.size() <= 4) return false;
        for (char c : name)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
        return s.find(' ') == std::string_view::npos;
    }
    if (s.size() == 12) {
        if (!is_hex(s.substr(0, 4), 4) || s[4] != ':') return false;
        s.remove_prefix(5);
    }
    return s.size() == 7 && is_hex(s.substr(0, 2), 2) && s[2] == ':' && is_hex(s.substr(3, 2), 2) &&
           s[5] == '.' && s[6] >= '0' && s[6] <= '7';
}

// Device identity for duplicate detection: a vdev is named by its first comma field; a PCI
// address is compared in its full, lower-case form.
std::string device_id(const std::string& d) {
    if (d.rfind("net_", 0) == 0) return d.substr(0, d.find(','));
    std::string id = d.size() == 7 ? "0000:" + d : d;
    for (char& c : id) c = char(std::tolower(static_cast<unsigned char>(c)));
    return id;
}

template <class S>
std::string check_string(const KeyDef<S>& k, const std::string& v) {
    if ((k.flags & NONEMPTY) && v.empty()) return "must not be empty";
    if ((k.flags & IDENT) && !is_ident(v)) return quote(v) + " is not a valid name";
    if ((k.flags & MODEL) && !is_model_name(v)) return quote(v) + " is not a valid model name";
    if ((k.flags & DEVICE) && !is_device(v)) return quote(v) + " is neither a PCI address nor a vdev spec";
    if (k.flags & SHM_NAME) {
        if (v.size() < 2 || v[0] != '/' || v.find('/', 1) != std::string::npos || v.size() > 255)
            return quote(v) + " is not a POSIX shared-memory name";
    }
    if ((k.flags & HTTP_URL) && !v.empty() && (v.rfind("http://", 0) != 0 || v.size() <= 7))
        return quote(v) + " is not an http:// URL";
    if (k.flags & LCORES) {
        for (char c : v)
            if (!(std::isdigit(static_cast<unsigned char>(c)) || std::strchr(",-@()", c)))
                return quote(v) + " is not an lcore list";
    }
    return {};
}

template <class S, class T>
T& field_ref(S& obj, const FieldPtr<S>& f) {
    return obj.*std::get<T S::*>(f);
}

// Parse one value into its field. `path` is the full key path used in errors.
template <class S>
void set_field(const KeyDef<S>& k, const toml::node& n, S& obj, const std::string& path, const Ctx& ctx) {
    const uint32_t line = n.source().begin.line;
    auto wrong_type = [&]() {
        ctx.fail(line, path, "has type " + type_name(n) +
                                 ", expected " + expected(k));
    };
    auto bad = [&](const std::string& what) { ctx.fail(line, path, what + " (expected " + expected(k) + ")"); };
    auto str = [&]() -> std::string {
        if (!n.is_string()) wrong_type();
        return std::string(n.value<std::string_view>().value_or(""));
    };
    switch (k.kind) {
    case Kind::Bool:
        if (!n.is_boolean()) wrong_type();
        field_ref<S, bool>(obj, k.field) = *n.value<bool>();
        return;
    case Kind::UInt: {
        if (!n.is_integer()) wrong_type();
        int64_t v = n.as_integer()->get();
        if (double(v) < k.lo || double(v) > k.hi) bad(std::to_string(v) + " is out of range");
        if ((k.flags & POW2) && (v & (v - 1))) bad(std::to_string(v) + " is not a power of two");
        std::visit(
            [&](auto ptr) {
                using T = std::remove_reference_t<decltype(obj.*ptr)>;
                if constexpr (std::is_same_v<T, uint16_t> || std::is_same_v<T, uint32_t> ||
                              std::is_same_v<T, uint64_t>)
                    obj.*ptr = T(v);
            },
            k.field);
        return;
    }
    case Kind::Float: {
        double v = 0;
        if (n.is_floating_point()) v = n.as_floating_point()->get();
        else if (n.is_integer()) v = double(n.as_integer()->get());
        else wrong_type();
        if (!std::isfinite(v) || v < k.lo || v > k.hi) bad(num(v) + " is out of range");
        field_ref<S, double>(obj, k.field) = v;
        return;
    }
    case Kind::String: {
        std::string v = str();
        if (auto e = check_string(k, v); !e.empty()) bad(e);
        field_ref<S, std::string>(obj, k.field) = v;
        return;
    }
    case Kind::Enum:
    case Kind::Role: {
        std::string v = str();
        auto it = std::find(k.allowed.begin(), k.allowed.end(), v);
        if (it == k.allowed.end()) bad(quote(v) + " is not allowed");
        if (k.kind == Kind::Role)
            field_ref<S, PortRole>(obj, k.field) = v == "client" ? PortRole::Client : PortRole::Backend;
        else
            field_ref<S, std::string>(obj, k.field) = v;
        return;
    }
    case Kind::StringList: {
        const toml::array* a = n.as_array();
        if (!a) wrong_type();
        if ((k.flags & NONEMPTY) && a->empty()) bad("must not be empty");
        std::vector<std::string> out;
        for (size_t i = 0; i < a->size(); ++i) {
            const toml::node& e = *a->get(i);
            std::string epath = path + "[" + std::to_string(i) + "]";
            uint32_t eline = e.source().begin.line ? e.source().begin.line : line;
            if (!e.is_string())
                ctx.fail(eline, epath, "has type " + type_name(e) +
                                           ", expected a string");
            std::string v(*e.value<std::string_view>());
            if (v.empty()) ctx.fail(eline, epath, "must not be empty (expected " + expected(k) + ")");
            if ((k.flags & IDENT) && !is_ident(v))
                ctx.fail(eline, epath, quote(v) + " is not a valid name (expected " + expected(k) + ")");
            if ((k.flags & MODEL) && !is_model_name(v))
                ctx.fail(eline, epath, quote(v) + " is not a valid model name (expected " + expected(k) + ")");
            if ((k.flags & UNIQUE) && std::find(out.begin(), out.end(), v) != out.end())
                ctx.fail(eline, epath, "duplicate " + quote(v) + " (expected " + expected(k) + ")");
            out.push_back(std::move(v));
        }
        field_ref<S, std::vector<std::string>>(obj, k.field) = std::move(out);
        return;
    }
    case Kind::Ipv4: {
        std::string v = str();
        uint32_t a;
        if (!parse_ipv4(v, a)) bad(quote(v) + " is not a valid IPv4 address");
        field_ref<S, uint32_t>(obj, k.field) = a;
        return;
    }
    case Kind::Prefix: {
        std::string v = str();
        Ipv4Prefix p;
        if (!parse_ipv4_prefix(v, p)) bad(quote(v) + " is not a valid IPv4 address/prefix length");
        field_ref<S, Ipv4Prefix>(obj, k.field) = p;
        return;
    }
    case Kind::Endpoint: {
        std::string v = str();
        Endpoint ep;
        if (!parse_endpoint(v, ep)) bad(quote(v) + " is not a valid IPv4 address:port");
        field_ref<S, Endpoint>(obj, k.field) = ep;
        return;
    }
    }
}

size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t up = row[j];
            bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                            std::tolower(static_cast<unsigned char>(b[j - 1])) ||
                        ((a[i - 1] == '-' || a[i - 1] == '_') && (b[j - 1] == '-' || b[j - 1] == '_'));
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (same ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

std::string suggestion(std::string_view name, const std::vector<std::string_view>& known) {
    std::string_view best;
    size_t best_d = SIZE_MAX;
    for (auto k : known) {
        size_t d = edit_distance(name, k);
        if (d < best_d) best_d = d, best = k;
    }
    if (!best.empty() && best_d <= std::max<size_t>(2, name.size() / 3))
        return " (did you mean '" + std::string(best) + "'?)";
    std::string s = " (expected one of: ";
    for (size_t i = 0; i < known.size(); ++i) s += (i ? ", " : "") + std::string(known[i]);
    return s + ")";
}

template <class S>
void parse_table(const toml::table& t, S& obj, const std::vector<KeyDef<S>>& keys, const std::string& prefix,
                 const std::vector<std::string_view>& subsections, Ctx& ctx, uint32_t table_line) {
    std::vector<std::string_view> known;
    for (auto& k : keys) known.push_back(k.name);
    for (auto s : subsections) known.push_back(s);
    for (auto&& [key, node] : t) {
        if (std::find(known.begin(), known.end(), key.str()) == known.end())
            ctx.fail(key.source().begin.line, prefix + "." + std::string(key.str()),
                     "unknown key" + suggestion(key.str(), known));
    }
    ctx.lines[prefix] = table_line;
    for (auto& k : keys) {
        std::string path = prefix + "." + std::string(k.name);
        if (const toml::node* n = t.get(k.name)) {
            ctx.lines[path] = n->source().begin.line;
            set_field(k, *n, obj, path, ctx);
        } else if (k.def_doc) {
            set_field(k, *k.def_doc->get("v"), obj, path, ctx);
        } else if (k.flags & REQUIRED) {
            ctx.fail(table_line, path, "missing required key (expected " + expected(k) + ")");
        }
    }
}

const toml::table& empty_table() {
    static const toml::table t;
    return t;
}

uint32_t line_of(const toml::node& n) { return n.source().begin.line; }

// A section that is a single table; absent = all defaults.
template <class S>
void parse_single(const toml::table& root, std::string_view name, S& obj, const std::vector<KeyDef<S>>& keys,
                  const std::vector<std::string_view>& subs, Ctx& ctx) {
    const toml::node* n = root.get(name);
    if (!n) return parse_table(empty_table(), obj, keys, std::string(name), subs, ctx, 1);
    if (!n->is_table())
        ctx.fail(line_of(*n), std::string(name),
                 "has type " + type_name(*n) + ", expected a table [" +
                     std::string(name) + "]");
    parse_table(*n->as_table(), obj, keys, std::string(name), subs, ctx, line_of(*n));
}

// A section that is an array of tables; absent = empty.
template <class S, class F>
void parse_array(const toml::table& parent, std::string_view name, const std::string& sname, std::vector<S>& out,
                 F&& each, Ctx& ctx) {
    const toml::node* n = parent.get(name);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a)
        ctx.fail(line_of(*n), sname,
                 "has type " + type_name(*n) +
                     ", expected an array of tables [[" + sname + "]]");
    ctx.lines[sname] = line_of(*n);
    for (size_t i = 0; i < a->size(); ++i) {
        const toml::node& e = *a->get(i);
        std::string path = sname + "[" + std::to_string(i) + "]";
        if (!e.is_table())
            ctx.fail(line_of(e) ? line_of(e) : line_of(*n), path,
                     "has type " + type_name(e) +
                         ", expected a table (write [[" + sname + "]] entries)");
        S obj{};
        each(*e.as_table(), obj, path, line_of(e) ? line_of(e) : line_of(*n));
        out.push_back(std::move(obj));
    }
}

std::string served_models(const Config& c) {
    std::set<std::string> models;
    for (auto& b : c.backends) models.insert(b.models.begin(), b.models.end());
    std::string s;
    for (auto& m : models) s += (s.empty() ? "" : ", ") + m;
    return s;
}

void validate(const Config& c, const Ctx& ctx) {
    auto P = [](const char* sec, size_t i, const char* key) {
        return std::string(sec) + "[" + std::to_string(i) + "]" + (key[0] ? "." : "") + key;
    };
    // Ports.
    if (c.ports.empty())
        ctx.fail(ctx.line_of("ports"), "ports",
                 "no ports configured (expected [[ports]] entries with role = \"client\" and role = \"backend\")");
    bool have_client = false, have_backend = false;
    for (size_t i = 0; i < c.ports.size(); ++i) {
        const Port& p = c.ports[i];
        (p.role == PortRole::Client ? have_client : have_backend) = true;
        for (size_t j = 0; j < i; ++j) {
            const Port& q = c.ports[j];
            if (p.name == q.name)
                ctx.fail(ctx.line_of(P("ports", i, "name")), P("ports", i, "name"),
                         "duplicate port name " + quote(p.name) + " (already used by ports[" + std::to_string(j) +
                             "] at line " + std::to_string(ctx.line_of(P("ports", j, "name"))) + ")");
            if (device_id(p.device) == device_id(q.device))
                ctx.fail(ctx.line_of(P("ports", i, "device")), P("ports", i, "device"),
                         "device " + quote(device_id(p.device)) + " is already used by ports[" + std::to_string(j) +
                             "] (expected one port per device)");
            Ipv4Prefix shorter = p.address.prefix_len < q.address.prefix_len ? p.address : q.address;
            if (prefix_contains(shorter, p.address.addr) && prefix_contains(shorter, q.address.addr))
                ctx.fail(ctx.line_of(P("ports", i, "address")), P("ports", i, "address"),
                         prefix_to_string(p.address) + " overlaps ports[" + std::to_string(j) + "] (" +
                             prefix_to_string(q.address) + ") (expected disjoint subnets)");
        }
        if (p.gateway != 0 && !prefix_contains(p.address, p.gateway))
            ctx.fail(ctx.line_of(P("ports", i, "gateway")), P("ports", i, "gateway"),
                     ipv4_to_string(p.gateway) + " is not inside " + prefix_to_string(p.address) +
                         " (expected a next hop on the port's subnet)");
        if (p.gateway != 0 && p.gateway == p.address.addr)
            ctx.fail(ctx.line_of(P("ports", i, "gateway")), P("ports", i, "gateway"),
                     "is the port's own address (expected another host on its subnet)");
    }
    for (size_t i = 0; i < c.ports.size(); ++i) {
        const Port& p = c.ports[i];
        uint64_t need = uint64_t(p.rx_queues) * p.rx_desc + uint64_t(p.tx_queues) * p.tx_desc +
                        uint64_t(c.dataplane.burst) * (p.rx_queues + p.tx_queues);
        if (p.mbufs < need)
            ctx.fail(ctx.line_of(P("ports", i, "mbufs")), P("ports", i, "mbufs"),
                     std::to_string(p.mbufs) + " is too few for " + std::to_string(p.rx_queues) + " x " +
                         std::to_string(p.rx_desc) + " rx + " + std::to_string(p.tx_queues) + " x " +
                         std::to_string(p.tx_desc) + " tx descriptors (expected at least " +
                         std::to_string(need) + ")");
    }
    if (!have_client)
        ctx.fail(ctx.line_of("ports"), "ports", "no port with role = \"client\" (expected at least one)");
    if (!have_backend)
        ctx.fail(ctx.line_of("ports"), "ports", "no port with role = \"backend\" (expected at least one)");

    // EAL.
    if (!c.eal.lcores.empty())
        for (size_t i = 0; i < c.eal.args.size(); ++i) {
            const std::string& a = c.eal.args[i];
            if (a == "-l" || a == "-c" || a.rfind("--lcores", 0) == 0 || a.rfind("-l", 0) == 0)
                ctx.fail(ctx.line_of("eal.args"), "eal.args[" + std::to_string(i) + "]",
                         quote(a) + " conflicts with eal.lcores (expected the lcore list in one place)");
        }

    // VIP.
    bool vip_ok = false;
    std::string client_nets;
    for (auto& p : c.ports)
        if (p.role == PortRole::Client) {
            vip_ok |= prefix_contains(p.address, c.vip.address);
            Ipv4Prefix net = p.address;
            net.addr &= net.prefix_len ? ~uint32_t(0) << (32 - net.prefix_len) : 0;
            client_nets += (client_nets.empty() ? "" : " or ") + prefix_to_string(net);
        }
    if (!vip_ok)
        ctx.fail(ctx.line_of("vip.address"), "vip.address",
                 ipv4_to_string(c.vip.address) + " is not inside any client port's prefix (expected an address in " +
                     client_nets + ")");

    // Backends.
    if (c.backends.empty())
        ctx.fail(ctx.line_of("backends"), "backends", "no backends configured (expected at least one [[backends]])");
    if (c.backends.size() > MAX_BACKENDS)
        ctx.fail(ctx.line_of(P("backends", MAX_BACKENDS, "")), "backends",
                 std::to_string(c.backends.size()) + " backends configured (expected at most " +
                     std::to_string(MAX_BACKENDS) + ")");
    {
        std::set<std::string> models, tags, zones;
        auto over = [&](std::set<std::string>& set, const std::string& v, uint32_t cap, size_t i,
                        const char* key, const char* what) {
            if (set.insert(v).second && set.size() > cap)
                ctx.fail(ctx.line_of(P("backends", i, key)), P("backends", i, key),
                         "more than " + std::to_string(cap) + " distinct " + what + " (expected at most " +
                             std::to_string(cap) + ")");
        };
        for (size_t i = 0; i < c.backends.size(); ++i) {
            for (auto& m : c.backends[i].models) over(models, m, MAX_MODELS, i, "models", "models");
            for (auto& t : c.backends[i].tags) over(tags, t, MAX_TAGS, i, "tags", "tags");
            over(zones, c.backends[i].trust_zone, MAX_ZONES, i, "trust_zone", "trust zones");
        }
    }
    bool any_gateway = false;
    for (auto& p : c.ports) any_gateway |= p.role == PortRole::Backend && p.gateway != 0;
    for (size_t i = 0; i < c.backends.size(); ++i) {
        const Backend& b = c.backends[i];
        for (size_t j = 0; j < i; ++j) {
            if (b.name == c.backends[j].name)
                ctx.fail(ctx.line_of(P("backends", i, "name")), P("backends", i, "name"),
                         "duplicate backend name " + quote(b.name) + " (already used by backends[" +
                             std::to_string(j) + "] at line " +
                             std::to_string(ctx.line_of(P("backends", j, "name"))) + ")");
            if (b.address == c.backends[j].address)
                ctx.fail(ctx.line_of(P("backends", i, "address")), P("backends", i, "address"),
                         endpoint_to_string(b.address) + " is already backends[" + std::to_string(j) + "] (" +
                             c.backends[j].name + ") (expected one entry per address:port)");
        }
        bool reachable = any_gateway;
        for (auto& p : c.ports) {
            if (p.address.addr == b.address.addr || c.vip.address == b.address.addr)
                ctx.fail(ctx.line_of(P("backends", i, "address")), P("backends", i, "address"),
                         ipv4_to_string(b.address.addr) + " is an address of the appliance itself");
            reachable |= p.role == PortRole::Backend && prefix_contains(p.address, b.address.addr);
        }
        if (!reachable)
            ctx.fail(ctx.line_of(P("backends", i, "address")), P("backends", i, "address"),
                     ipv4_to_string(b.address.addr) +
                         " is not inside any backend port's prefix and no backend port has a gateway");
    }

    // Aliases.
    std::set<std::string> models;
    for (auto& b : c.backends) models.insert(b.models.begin(), b.models.end());
    for (size_t i = 0; i < c.policy.aliases.size(); ++i) {
        const ModelAlias& a = c.policy.aliases[i];
        std::string base = "policy.aliases[" + std::to_string(i) + "]";
        for (size_t j = 0; j < i; ++j)
            if (a.name == c.policy.aliases[j].name)
                ctx.fail(ctx.line_of(base + ".name"), base + ".name",
                         "duplicate alias " + quote(a.name) + " (already policy.aliases[" + std::to_string(j) + "])");
        if (models.count(a.name))
            ctx.fail(ctx.line_of(base + ".name"), base + ".name",
                     quote(a.name) + " is a served model (expected an alias name no backend serves)");
        for (size_t j = 0; j < a.candidates.size(); ++j)
            if (!models.count(a.candidates[j]))
                ctx.fail(ctx.line_of(base + ".candidates"), base + ".candidates[" + std::to_string(j) + "]",
                         "unknown model " + quote(a.candidates[j]) + " (expected a model served by some backend: " +
                             served_models(c) + ")");
    }

    // Sensitive zones: each served by some backend (a typo would refuse every sensitive request).
    for (size_t j = 0; j < c.policy.sensitive_zones.size(); ++j) {
        const std::string& z = c.policy.sensitive_zones[j];
        bool found = false;
        std::string zones;
        std::set<std::string> seen;
        for (auto& b : c.backends) {
            found |= b.trust_zone == z;
            if (seen.insert(b.trust_zone).second) zones += (zones.empty() ? "" : ", ") + quote(b.trust_zone);
        }
        if (!found)
            ctx.fail(ctx.line_of("policy.sensitive_zones"), "policy.sensitive_zones[" + std::to_string(j) + "]",
                     "no backend is in trust zone " + quote(z) + " (expected one of the backends' trust_zone: " +
                         zones + ")");
    }

    // Limits.
    if (c.limits.pool_prewarm > c.limits.pool_max)
        ctx.fail(ctx.line_of("limits.pool_prewarm"), "limits.pool_prewarm",
                 std::to_string(c.limits.pool_prewarm) + " exceeds limits.pool_max (" +
                     std::to_string(c.limits.pool_max) + ")");
}

std::vector<std::string_view> section_roots() {
    std::vector<std::string_view> out;
    for (auto& s : SECTIONS)
        if (s.path.find('.') == std::string_view::npos) out.push_back(s.path);
    return out;
}

Config parse_root(const toml::table& root, const std::string& name) {
    Ctx ctx;
    ctx.file = name;
    Config c;
    c.source = name;
    const auto roots = section_roots();
    for (auto&& [key, node] : root) {
        if (std::find(roots.begin(), roots.end(), key.str()) != roots.end()) continue;
        std::string what = node.is_table() || node.is_array_of_tables()
                               ? "unknown section"
                               : "unknown top-level key (keys belong in a section)";
        ctx.fail(key.source().begin.line, std::string(key.str()), what + suggestion(key.str(), roots));
    }
    parse_single(root, "eal", c.eal, eal_keys(), {}, ctx);
    parse_array(root, "ports", "ports", c.ports,
                [&](const toml::table& t, Port& p, const std::string& path, uint32_t line) {
                    parse_table(t, p, port_keys(), path, {}, ctx, line);
                },
                ctx);
    parse_single(root, "vip", c.vip, vip_keys(), {}, ctx);
    parse_array(root, "backends", "backends", c.backends,
                [&](const toml::table& t, Backend& b, const std::string& path, uint32_t line) {
                    parse_table(t, b, backend_keys(), path, {"profile"}, ctx, line);
                    const toml::node* p = t.get("profile");
                    if (p && !p->is_table())
                        ctx.fail(line_of(*p), path + ".profile",
                                 "has type " + type_name(*p) +
                                     ", expected a table [backends.profile]");
                    parse_table(p ? *p->as_table() : empty_table(), b.profile, profile_keys(), path + ".profile",
                                {}, ctx, p ? line_of(*p) : line);
                },
                ctx);
    parse_single(root, "policy", c.policy, policy_keys(), {"aliases"}, ctx);
    if (const toml::node* pol = root.get("policy"); pol && pol->is_table())
        parse_array(*pol->as_table(), "aliases", "policy.aliases", c.policy.aliases,
                    [&](const toml::table& t, ModelAlias& a, const std::string& path, uint32_t line) {
                        parse_table(t, a, alias_keys(), path, {}, ctx, line);
                    },
                    ctx);
    parse_single(root, "limits", c.limits, limits_keys(), {}, ctx);
    parse_single(root, "telemetry", c.telemetry, telemetry_keys(), {}, ctx);
    parse_single(root, "dataplane", c.dataplane, dataplane_keys(), {}, ctx);
    parse_single(root, "tokens", c.tokens, tokens_keys(), {}, ctx);
    validate(c, ctx);
    return c;
}

// ---------------------------------------------------------------------------------------------
// Output: effective config and reference docs.

template <class S>
std::string value_toml(const KeyDef<S>& k, const S& obj) {
    switch (k.kind) {
    case Kind::Bool: return obj.*std::get<bool S::*>(k.field) ? "true" : "false";
    case Kind::UInt:
        return std::visit(
            [&](auto ptr) -> std::string {
                using T = std::remove_cvref_t<decltype(obj.*ptr)>;
                if constexpr (std::is_same_v<T, uint16_t> || std::is_same_v<T, uint32_t> ||
                              std::is_same_v<T, uint64_t>)
                    return num(uint64_t(obj.*ptr));
                else
                    return "?";
            },
            k.field);
    case Kind::Float: return num(obj.*std::get<double S::*>(k.field));
    case Kind::String:
    case Kind::Enum: return quote(obj.*std::get<std::string S::*>(k.field));
    case Kind::StringList: {
        std::string s = "[";
        const auto& v = obj.*std::get<std::vector<std::string> S::*>(k.field);
        for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + quote(v[i]);
        return s + "]";
    }
    case Kind::Ipv4: return quote(ipv4_to_string(obj.*std::get<uint32_t S::*>(k.field)));
    case Kind::Prefix: return quote(prefix_to_string(obj.*std::get<Ipv4Prefix S::*>(k.field)));
    case Kind::Endpoint: return quote(endpoint_to_string(obj.*std::get<Endpoint S::*>(k.field)));
    case Kind::Role: return obj.*std::get<PortRole S::*>(k.field) == PortRole::Client ? "\"client\"" : "\"backend\"";
    }
    return "?";
}

template <class S>
void emit(std::string& out, const std::string& header, const S& obj, const std::vector<KeyDef<S>>& keys) {
    out += "\n" + header + "\n";
    for (auto& k : keys) {
        if ((k.flags & OPTIONAL) && k.kind == Kind::Ipv4 && obj.*std::get<uint32_t S::*>(k.field) == 0) continue;
        out += std::string(k.name) + " = " + value_toml(k, obj) + "\n";
    }
}

std::string md_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '|') out += "\\|";
        else out += c;
    }
    return out;
}

template <class S>
void doc_table(std::string& out, const std::vector<KeyDef<S>>& keys) {
    out += "| key | accepts | default | description |\n|---|---|---|---|\n";
    for (auto& k : keys) {
        std::string def = (k.flags & REQUIRED) ? "**required**"
                          : (k.flags & OPTIONAL) ? "(unset)"
                                                 : "`" + std::string(k.def) + "`";
        out += "| `" + std::string(k.name) + "` | " + md_escape(expected(k)) + " | " + md_escape(def) + " | " +
               md_escape(k.doc) + " |\n";
    }
}

}  // namespace

Config load_string(const std::string& text, const std::string& name) {
    toml::table root;
    try {
        root = toml::parse(text, std::string_view(name));
    } catch (const toml::parse_error& e) {
        std::string what(e.description());
        std::replace(what.begin(), what.end(), '\n', ' ');  // errors are one line
        throw ConfigError(name + ":" + std::to_string(e.source().begin.line ? e.source().begin.line : 1) +
                          ": syntax error: " + what);
    }
    return parse_root(root, name);
}

Config load_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError(path + ":1: cannot open file: " + std::strerror(errno));
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw ConfigError(path + ":1: cannot read file: " + std::strerror(errno));
    return load_string(ss.str(), path);
}

std::string to_toml(const Config& c) {
    std::string out = "# tokenlb effective configuration";
    if (!c.source.empty()) out += " (loaded from " + c.source + ")";
    out += "\n# Every key with its value after defaults; see docs/config.md.\n";
    emit(out, "[eal]", c.eal, eal_keys());
    for (auto& p : c.ports) emit(out, "[[ports]]", p, port_keys());
    emit(out, "[vip]", c.vip, vip_keys());
    for (auto& b : c.backends) {
        emit(out, "[[backends]]", b, backend_keys());
        emit(out, "[backends.profile]", b.profile, profile_keys());
    }
    emit(out, "[policy]", c.policy, policy_keys());
    for (auto& a : c.policy.aliases) emit(out, "[[policy.aliases]]", a, alias_keys());
    emit(out, "[limits]", c.limits, limits_keys());
    emit(out, "[telemetry]", c.telemetry, telemetry_keys());
    emit(out, "[dataplane]", c.dataplane, dataplane_keys());
    emit(out, "[tokens]", c.tokens, tokens_keys());
    return out;
}

std::string reference_markdown() {
    std::string out =
        "# tokenlb configuration reference\n\n"
        "<!-- Generated from the key declarations in lib/config/config.cpp; do not edit.\n"
        "     Regenerate: build-x/lib/config/tlb-config-docgen > docs/config.md -->\n\n"
        "tokenlb reads one TOML file (`tokenlb --config FILE`; `tokenlb --check-config FILE` validates "
        "it and prints the effective configuration). The sample `conf/tokenlb.toml` documents a "
        "production layout; `conf/lab.toml` is the network-namespace lab.\n\n"
        "Errors are one line: `FILE:LINE: key.path: what is wrong (expected ...)`, for example\n\n"
        "```\nconf/x.toml:12: backends[1].address: \"10.0.0.300:80\" is not a valid IPv4 address:port "
        "(expected an IPv4 address:port such as \"10.20.0.11:8000\")\n```\n\n"
        "Array entries are numbered from 0 (`backends[1]` is the second `[[backends]]`). A missing "
        "required key is reported at the line of its table header, or at line 1 when the whole "
        "section is absent. Loading stops at the first error.\n\n"
        "## Rules across keys\n\n";
    for (auto r : CROSS_RULES) out += "- " + std::string(r) + "\n";
    for (auto& s : SECTIONS) {
        out += "\n## " + std::string(s.array ? "[[" : "[") + std::string(s.path) + (s.array ? "]]" : "]") +
               "\n\n" + std::string(s.doc) + "\n\n";
        if (s.path == "eal") doc_table(out, eal_keys());
        else if (s.path == "ports") doc_table(out, port_keys());
        else if (s.path == "vip") doc_table(out, vip_keys());
        else if (s.path == "backends") doc_table(out, backend_keys());
        else if (s.path == "backends.profile") doc_table(out, profile_keys());
        else if (s.path == "policy") doc_table(out, policy_keys());
        else if (s.path == "policy.aliases") doc_table(out, alias_keys());
        else if (s.path == "limits") doc_table(out, limits_keys());
        else if (s.path == "telemetry") doc_table(out, telemetry_keys());
        else if (s.path == "dataplane") doc_table(out, dataplane_keys());
        else if (s.path == "tokens") doc_table(out, tokens_keys());
    }
    return out;
}

}  // namespace tlb::config
