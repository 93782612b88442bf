// The per-lcore data-plane worker: one poll loop that wires lib/net, lib/tcp, lib/http,
// lib/openai, lib/tokens, lib/classify, lib/policy and lib/scoreboard together (../../docs/dataplane.md).
//
//   client port rx ─► ARP/ICMP ─► SYN cookie / flow lookup ─► client leg (tcp::input, reassembly)
//        ─► flat request buffer ─► http framing ─► understand (openai + tokens + classify + prefix)
//        ─► policy decision ─► pooled backend connection ─► request bytes by our sender
//   backend port rx ─► backend leg (tcp::input, no reassembly) ─► http response framing + usage
//        ─► splice (seq/ack/window rewrite) ─► client
//   client ACKs during a response ─► translated ─► backend
//   response complete and acked ─► unbind: backend conn back to the pool, next request routed anew
//
// One worker owns its flow table, client connections, backend pool, buffers and timers: nothing
// is shared with other workers except the scoreboard (single-writer lines). Worker-path rules:
// no allocation, no exceptions, no locks; the only syscall is the idle back-off sleep.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "dataplane/bufpool.hpp"
#include "dataplane/counters.hpp"
#include "classify/classify.hpp"
#include "http/request.hpp"
#include "http/response.hpp"
#include "net/net.hpp"
#include "openai/request.hpp"
#include "openai/usage.hpp"
#include "policy/policy.hpp"
#include "policy/prefix.hpp"
#include "scoreboard/scoreboard.hpp"
#include "tcp/tcp.hpp"
#include "telemetry/control.hpp"
#include "telemetry/worker_telemetry.hpp"
#include "tokens/tokens.hpp"

struct rte_mbuf;
struct rte_mempool;

namespace tlb::dataplane {

// Everything the control plane hands a worker at start-up.
struct Env {
    const config::Config* cfg = nullptr;
    uint32_t worker_id = 0;
    uint16_t client_port = 0, backend_port = 0;
    uint16_t queue = 0;
    net::MacAddr client_mac{}, backend_mac{};
    uint32_t client_addr_be = 0;   // our address on the client port (the VIP's subnet)
    uint32_t backend_addr_be = 0;  // our address on the backend port
    uint32_t backend_mask_be = 0;
    uint32_t backend_gateway_be = 0;  // 0: backends are on link
    net::TxOffloads client_tx, backend_tx;
    rte_mempool* pool = nullptr;      // mbufs for segments we build
    scoreboard::Scoreboard* scoreboard = nullptr;
    const tokens::Estimator* estimator = nullptr;
    const classify::Classifier* classifier = nullptr;  // null: no content tags
    uint64_t cookie_k0 = 0, cookie_k1 = 0;  // SYN-cookie master secret
    uint64_t iss_k0 = 0, iss_k1 = 0;        // RFC 6528 secret for backend ISNs
    uint64_t seed = 1;
    telemetry::WorkerTelemetry* telemetry = nullptr;  // metrics, access log, observations
    const telemetry::Controls* controls = nullptr;    // operator controls (policy set)
};

// Per-client-connection data-plane state (parallel to the tcp::ClientConn pool by index).
struct ClientExt {
    net::MacAddr mac{};
    Buf* buf = nullptr;            // request bytes: current request [0, req_len) + pipelined
    uint32_t buf_len = 0;
    http::RequestParser* parser = nullptr;  // while a request is being framed
    uint32_t req_len = 0;          // framed request length in buf (0 = not complete)
    bool parsing = false;
    // What is forwarded: buf [0, req_len) or a rewritten copy in fwd.
    Buf* fwd = nullptr;
    const uint8_t* fwd_ptr = nullptr;
    uint32_t fwd_len = 0;
    uint32_t src_base = 0;         // backend-leg seq of fwd_ptr[0]
    // The appliance's own response bytes (client-leg sender).
    Buf* out = nullptr;
    uint32_t out_base = 0;
    bool out_final = false;        // the response to the current request (not 100-continue)
    bool close_after = false;      // close the connection after the current response
    bool head_req = false;
    // Routing.
    policy::RequestFeatures feat;
    uint64_t tags = 0;             // content tags of the current request (classify::TagSet)
    int32_t backend = -1;          // scoreboard index of the current attempt
    uint64_t tried = 0;            // backends already tried for this request
    uint8_t attempts = 0;
    bool ticketed = false;
    scoreboard::Ticket ticket;
    float predicted_ttft = 0, predicted_tps = 0;
    uint8_t reason = 0;            // policy::Reason of the last decision
    bool routed = false;
    bool stream = false;
    uint64_t t_request_us = 0, t_route_us = 0, t_first_us = 0;
    uint32_t pending = tcp::HANDLE_INVALID;  // backend conn being opened for this request
    // Response observation.
    http::ResponseParser rparser;
    uint32_t parsed_b = 0;         // next backend seq the response framer expects
    bool backend_fin = false;      // backend closed after the response: do not pool its conn
};

class Worker {
public:
    explicit Worker(const Env& env);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Poll loop; returns when `stop` is true. Run on a worker lcore.
    void run(const std::atomic<bool>& stop);
    static int launch(void* arg);  // rte_eal_remote_launch entry; arg = LaunchArg*
    struct LaunchArg {
        Worker* worker;
        const std::atomic<bool>* stop;
    };

    const Counters& counters() const { return _c; }
    const tcp::Counters& tcp_counters() const { return _tc; }
    // Gauges (read from another thread they are approximate, which is all telemetry needs).
    uint32_t flows() const { return _flows.size(); }
    uint32_t client_conns() const { return _clients.in_use(); }
    uint32_t backend_conns() const { return _pool->in_use(); }
    uint32_t buffers_in_use() const { return _bufs->in_use(); }
    uint32_t pool_idle(uint16_t backend) const { return _pool->idle(backend); }
    uint32_t pool_total(uint16_t backend) const { return _pool->total(backend); }
    uint32_t backend_busy() const;
    // Requests whose text carried content tag `bit` (classify::Classifier's bits).
    uint64_t tagged(uint32_t bit) const { return bit < 64 ? _tagged[bit] : 0; }
    std::string summary() const;

private:
    // rx
    void handle_client_port(rte_mbuf* m, uint64_t now);
    void handle_backend_port(rte_mbuf* m, uint64_t now);
    bool handle_arp(rte_mbuf* m, uint8_t* frame, uint16_t len, bool client_side, uint64_t now);
    bool rx_l3(rte_mbuf* m, bool client_side, net::Ipv4Info& ip, net::TcpInfo& th, uint64_t now);
    void send_rst_reply(const uint8_t* frame, const net::Ipv4Info& ip, const net::TcpInfo& th,
                        bool client_side);
    // client leg
    void client_syn(rte_mbuf* m, const net::Ipv4Info& ip, const net::TcpInfo& th);
    void client_new(rte_mbuf* m, const net::Ipv4Info& ip, const net::TcpInfo& th, uint64_t now);
    void client_segment(uint32_t ci, rte_mbuf* m, const net::Ipv4Info& ip, const net::TcpInfo& th,
                        uint64_t now);
    void pump(uint32_t ci, uint64_t now);
    void on_request(uint32_t ci, uint64_t now);
    bool understand(uint32_t ci, openai::Endpoint ep, uint64_t now);
    void dispatch(uint32_t ci, uint64_t now);
    void bind_and_send(uint32_t ci, tcp::BackendConn* b, uint64_t now);
    void unbind(uint32_t ci, uint64_t now);
    void request_done(uint32_t ci, uint64_t now);
    void local_response(uint32_t ci, uint16_t status, const char* msg, const char* code,
                        const char* param, bool close, uint64_t now);
    void local_bytes(uint32_t ci, const uint8_t* p, uint32_t n, bool final, bool close,
                     uint64_t now);
    void flush_client(uint32_t ci, uint64_t now);
    void send_stream(tcp::TcpCb& cb, tcp::Timer* rto, const uint8_t* data, uint32_t data_seq,
                     uint32_t buffered, int32_t window, bool client_side, const net::MacAddr& dst,
                     uint64_t now);
    void send_client_ctl(uint32_t ci, uint8_t flags);
    void client_close(uint32_t ci, bool rst);  // free everything; RST to the client if rst
    void client_abort_backend(uint32_t ci);     // RST the bound backend, end the attempt
    void end_attempt(uint32_t ci, uint32_t prompt, uint32_t output);
    // One access-log record / metrics update per finished request (flags: AccessRecord::FLAG_*).
    void log_request(uint32_t ci, uint16_t status, uint8_t flags, uint64_t now,
                     const openai::Usage* usage);
    void arm_client_deadline(uint32_t ci, uint8_t kind, uint64_t at);
    // backend leg
    void backend_segment(tcp::BackendConn* b, rte_mbuf* m, const net::Ipv4Info& ip,
                         const net::TcpInfo& th, uint64_t now);
    void backend_response(tcp::BackendConn* b, uint32_t ci, rte_mbuf* m, const net::Ipv4Info& ip,
                          const net::TcpInfo& th, uint64_t now);
    void flush_backend(tcp::BackendConn* b, uint64_t now);
    void send_backend_ctl(tcp::BackendConn* b, uint8_t flags);
    void backend_reset_close(tcp::BackendConn* b);
    void backend_failed(tcp::BackendConn* b, uint64_t now);  // before or after first byte
    tcp::BackendConn* open_backend(uint16_t id, uint64_t now);
    // timers and housekeeping
    void on_timer(tcp::Timer* t, uint64_t now);
    void housekeeping(uint64_t now);
    void refresh_view(uint64_t now);
    // tx
    void tx_client(rte_mbuf* m);
    void tx_backend(rte_mbuf* m);
    void flush_tx();
    bool backend_mac(uint32_t ip_be, net::MacAddr& mac) const;
    rte_mbuf* alloc();
    void release_request_state(uint32_t ci);

    Env _env;
    const config::Config& _cfg;
    Counters _c;
    tcp::Counters _tc;
    tcp::TcpConfig _tcpcfg;
    tcp::SynCookies _cookies;
    tcp::FlowTable _flows;
    tcp::TimerWheel _wheel;
    tcp::ObjectPool<tcp::ClientConn> _clients;
    std::unique_ptr<ClientExt[]> _ext;
    std::unique_ptr<tcp::BackendPool> _pool;
    std::unique_ptr<BufPool> _bufs;
    tcp::ObjectPool<http::RequestParser> _parsers;
    net::NeighborTable _neigh;
    http::Limits _http_limits;
    openai::Extractor _extractor;
    openai::UsageParser _usage_parser;
    std::unique_ptr<std::optional<openai::UsageSink>[]> _usage;
    openai::Request _oreq;                 // the request being understood (one at a time)
    uint64_t _prefix_hashes[1024];
    // Content tags (lib/classify): a Hyperscan scratch of our own; per classifier tag bit, the
    // scoreboard tag bit of the backend capability of the same name (0: no backend declares it).
    std::unique_ptr<classify::Scanner> _scanner;
    uint64_t _tag_route[64] = {};
    uint64_t _routed_tags = 0;        // classifier tags with a non-zero _tag_route
    uint64_t _sensitive_tags = 0;     // classify::TagSet
    uint32_t _sensitive_zones = ~0u;  // allowed zones for sensitive requests (~0u: no restriction)
    bool _tags_required = false;      // policy.tag_match = "require" (else prefer, or off: no routes)
    uint64_t _tagged[64] = {};
    void classify_request(ClientExt& e, const openai::Request& rq);
    void explain_content(const ClientExt& e, char* msg, size_t cap, size_t len) const;
    std::unique_ptr<uint8_t[]> _scratch;  // decoded prompt text
    uint32_t _scratch_cap = 0;
    // routing
    policy::Params _params;
    policy::State _pstate;
    policy::Rng _rng;
    std::unique_ptr<policy::PrefixDirectory> _prefix_dir;
    std::unique_ptr<scoreboard::View> _view;
    uint64_t _view_us = 0;
    struct BackendInfo {
        uint32_t ip_be = 0;
        uint16_t port_be = 0;
        std::string name;
        std::string header_line;  // "x-tokenlb-backend: name\r\n"
    };
    std::vector<BackendInfo> _backends;
    // Worker-local passive health: a backend whose connects fail is skipped for an exponentially
    // growing hold-down (100 ms .. 5 s), so a dead backend costs neither SYN storms nor a retry
    // per request. The control plane's health checks (scoreboard) stay authoritative.
    struct BackendHealth {
        uint64_t down_until_us = 0;
        uint32_t fails = 0;
    };
    std::vector<BackendHealth> _health;
    uint64_t _down_mask = 0;
    void connect_failed(uint16_t id, uint64_t now);
    void connect_ok(uint16_t id);
    struct ModelEntry {
        std::string name;
        int32_t id;                // scoreboard model id
        int32_t alias = -1;        // index into _aliases when this name is an alias
    };
    std::vector<ModelEntry> _models;
    std::vector<policy::Alias> _aliases;
    std::string _models_json;      // GET /v1/models body
    // tx staging
    static constexpr uint32_t TX_BURST = 64;
    rte_mbuf* _txc[TX_BURST];
    uint32_t _ntxc = 0;
    rte_mbuf* _txb[TX_BURST];
    uint32_t _ntxb = 0;
    uint64_t _next_housekeeping = 0;
    uint64_t _last_arp_us = 0;  // last ARP round for unresolved backends
    uint16_t _ip_id = 0;
};

}  // namespace tlb::dataplane
