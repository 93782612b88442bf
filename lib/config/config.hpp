// tokenlb configuration: conf/tokenlb.toml -> typed, validated structs.
//
// Every key is declared exactly once (name, type, default, bounds, doc) in config.cpp's key
// table; the loader, the validator, `tokenlb --check-config` and docs/config.md all come from
// that table. Config loading runs on the control plane and may throw; workers only ever see the
// resulting immutable structs.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tlb::config {

// Capacities enforced at load time so that `--check-config` rejects what the shared scoreboard
// (scoreboard/layout.hpp: MAX_BACKENDS, MAX_WORKERS, MAX_MODELS, MAX_TAGS, MAX_ZONES, NAME_LEN)
// could not hold. config does not depend on scoreboard; the scoreboard side should
// static_assert that its constants are at least these.
inline constexpr uint32_t MAX_BACKENDS = 64;
inline constexpr uint32_t MAX_WORKERS = 16;
inline constexpr uint32_t MAX_MODELS = 64;    // distinct served models
inline constexpr uint32_t MAX_TAGS = 64;      // distinct backend tags
inline constexpr uint32_t MAX_ZONES = 32;     // distinct trust zones
inline constexpr uint32_t MAX_NAME_LEN = 47;  // backend/port/model/tag/zone names, bytes

// Thrown for any invalid configuration. what() is one line naming file, line, key and the problem:
//   "conf/x.toml:12: backends[1].address: '10.0.0.300:80' is not a valid IPv4 address:port"
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct Ipv4Prefix {
    uint32_t addr = 0;  // host byte order
    uint8_t prefix_len = 32;
    bool operator==(const Ipv4Prefix&) const = default;
};

struct Endpoint {
    uint32_t addr = 0;  // host byte order
    uint16_t port = 0;
    bool operator==(const Endpoint&) const = default;
};

struct Eal {
    std::vector<std::string> args = {"--no-huge", "-m", "1024", "--no-pci"};  // extra EAL args
    std::string lcores;             // e.g. "0-1"; empty: let the app choose (main + 1 worker)
    bool operator==(const Eal&) const = default;
};

enum class PortRole { Client, Backend };

struct Port {
    std::string name;     // unique
    std::string device;   // PCI address ("0000:3b:00.0") or vdev spec ("net_af_packet0,iface=veth0")
    PortRole role = PortRole::Client;
    Ipv4Prefix address;   // appliance address on this port
    uint32_t gateway = 0; // optional next hop (host order), 0 = none
    uint16_t rx_queues = 1;
    uint16_t tx_queues = 1;
    uint16_t rx_desc = 1024;
    uint16_t tx_desc = 1024;
    uint16_t mtu = 1500;
    uint32_t mbufs = 16383;  // mempool size for this port
    bool operator==(const Port&) const = default;
};

struct Vip {
    uint32_t address = 0;  // host order
    uint16_t port = 80;
    bool operator==(const Vip&) const = default;
};

struct BackendProfile {
    // Static profile used by routing before anything is learned.
    double prefill_tokens_per_s = 10000.0;
    double decode_tokens_per_s = 50.0;      // per sequence at batch size 1
    double decode_batch_slowdown = 0.01;    // fractional per-sequence slowdown per extra running seq
    uint32_t max_batch = 256;
    double cost_per_mtok = 1.0;             // cost units per million tokens
    uint32_t kv_capacity_tokens = 0;        // KV-cache capacity in tokens, 0 = unknown
    uint32_t chunk_tokens = 8192;           // token budget per engine step (vLLM max_num_batched_tokens)
    bool operator==(const BackendProfile&) const = default;
};

struct Backend {
    std::string name;                 // unique
    Endpoint address;
    std::vector<std::string> models;  // non-empty
    std::vector<std::string> tags;    // capability tags, e.g. "code", "long-context"
    std::string trust_zone = "default";
    uint32_t max_context = 8192;      // tokens
    std::string profile_name;         // optional: a conf/profiles/<name>.toml this backend emulates
    BackendProfile profile;
    uint32_t weight = 100;            // 0..1000, 0 = no new requests (drained)
    std::string metrics_url;          // optional "http://host:port/metrics"
    bool operator==(const Backend&) const = default;
};

struct ModelAlias {
    std::string name;                 // e.g. "auto"
    std::vector<std::string> candidates;  // non-empty; each a model served by some backend
    bool operator==(const ModelAlias&) const = default;
};

struct Policy {
    std::string name = "token_aware";  // round_robin|random|least_requests|power_of_two|least_tokens|prefix_hash|token_aware
    std::string objective = "ttft";    // ttft|e2e|cost
    double latency_budget_s = 10.0;    // for objective=cost
    double prefix_bonus = 1.0;         // 0..1: fraction of matched prefix tokens assumed cached
    double bounded_load = 1.25;        // prefix_hash: max load = ceil(bounded_load * mean)
    uint32_t max_attempts = 3;         // send attempts per request (retries on failure/429/503)
    uint32_t prefix_block_bytes = 256; // prefix fingerprint block size
    uint32_t default_output_tokens = 256; // expected output length before anything is learned
                                          // (used as min(max_tokens, this) when max_tokens is absent too)
    // Content tags (lib/classify, [tokens] rules_dir) in routing: tag_match says how a request's
    // tags use backend `tags` of the same name (prefer | require | off); requests with one of
    // sensitive_tags go only to backends in sensitive_zones (empty: no restriction).
    std::string tag_match = "prefer";
    std::vector<std::string> sensitive_tags = {"pii", "secrets"};
    std::vector<std::string> sensitive_zones;
    std::vector<ModelAlias> aliases;
    bool operator==(const Policy&) const = default;
};

struct Limits {
    uint32_t max_header_bytes = 16384;
    uint32_t max_headers = 64;
    uint64_t max_body_bytes = 8u << 20;
    uint32_t header_timeout_ms = 10000;
    uint32_t body_timeout_ms = 30000;
    uint32_t keepalive_timeout_ms = 60000;
    uint32_t backend_connect_timeout_ms = 1000;
    uint32_t first_byte_timeout_ms = 60000;
    uint32_t max_flows = 65536;          // per worker
    uint32_t max_ooo_segments = 16;      // out-of-order segments held per connection
    uint32_t pool_prewarm = 2;           // backend connections opened per worker and backend at start
    uint32_t pool_max = 256;             // per worker and backend
    uint32_t pool_idle_timeout_ms = 30000;  // idle pooled backend connections are closed after this
    bool operator==(const Limits&) const = default;
};

struct Telemetry {
    Endpoint metrics_listen;             // Prometheus endpoint, default 127.0.0.1:9100
    std::string access_log = "";         // "" = off, "-" = stdout, else a file path
    bool backend_header = false;         // add x-tokenlb-backend to responses
    uint32_t scrape_interval_ms = 1000;  // backends' /metrics polling
    std::string scoreboard_shm = "/tokenlb-scoreboard";
    bool operator==(const Telemetry&) const = default;
};

struct Dataplane {
    uint32_t workers = 1;
    bool idle_backoff = true;            // sleep after many empty polls (lab/CI); off on dedicated cores
    uint32_t idle_polls_before_sleep = 1024;
    uint32_t idle_sleep_us = 100;
    uint32_t burst = 32;
    bool operator==(const Dataplane&) const = default;
};

struct Tokens {
    std::string calibration = "";        // path to a conf/tokenizers/*.toml; "" = built-in default
    std::string rules_dir = "conf/rules";  // "" = no content tags
    bool operator==(const Tokens&) const = default;
};

struct Config {
    std::string source;                  // file it was loaded from
    Eal eal;
    std::vector<Port> ports;
    Vip vip;
    std::vector<Backend> backends;
    Policy policy;
    Limits limits;
    Telemetry telemetry;
    Dataplane dataplane;
    Tokens tokens;
    // Compares every field including `source`.
    bool operator==(const Config&) const = default;
};

// Parse and validate a TOML file. Throws ConfigError.
Config load_file(const std::string& path);
// Parse and validate TOML text; `name` is used in error messages. Throws ConfigError.
Config load_string(const std::string& text, const std::string& name = "<string>");
// The effective config (all defaults filled in) as TOML text.
std::string to_toml(const Config& cfg);
// Reference documentation of every key (Markdown), generated from the key declarations.
std::string reference_markdown();

// Helpers shared with other components.
std::string ipv4_to_string(uint32_t host_order_addr);
// Strict dotted quad: four decimal octets, no leading zeros, no spaces.
bool parse_ipv4(const std::string& s, uint32_t& host_order_addr);
// "a.b.c.d/len", len in [1, 32]; host bits may be set (it is an interface address).
bool parse_ipv4_prefix(const std::string& s, Ipv4Prefix& out);
std::string prefix_to_string(const Ipv4Prefix& p);
// "a.b.c.d:port", port in [1, 65535].
bool parse_endpoint(const std::string& s, Endpoint& out);
std::string endpoint_to_string(const Endpoint& e);
// True when `host_order_addr` is inside the subnet of `p`.
bool prefix_contains(const Ipv4Prefix& p, uint32_t host_order_addr);
// True when a port's device is a vdev spec ("net_<driver>…"), false for a PCI address.
bool is_vdev(const Port& p);

}  // namespace tlb::config
