// Data-plane worker: see worker.hpp and docs/dataplane.md.
#include "dataplane/worker.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string_view>

#include "http/error_response.hpp"

namespace tlb::dataplane {

namespace {

const char* const DP_NAMES[] = {
#define TLB_DP_N(name) #name,
    TLB_DP_COUNTERS(TLB_DP_N)
#undef TLB_DP_N
};

inline uint64_t now_us_from_tsc(uint64_t tsc, uint64_t hz) {
    return uint64_t((__uint128_t)tsc * 1000000u / hz);
}

std::string_view sv(const uint8_t* base, http::Span s) {
    return {reinterpret_cast<const char*>(base) + s.off, s.len};
}

bool ieq_prefix(const uint8_t* p, size_t n, std::string_view pfx) {
    if (n < pfx.size()) return false;
    for (size_t i = 0; i < pfx.size(); i++) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z') c = uint8_t(c + 32);
        if (c != uint8_t(pfx[i])) return false;
    }
    return true;
}

tokens::Role token_role(openai::Role r) {
    switch (r) {
    case openai::Role::SYSTEM: return tokens::Role::System;
    case openai::Role::DEVELOPER: return tokens::Role::Developer;
    case openai::Role::USER: return tokens::Role::User;
    case openai::Role::ASSISTANT: return tokens::Role::Assistant;
    case openai::Role::TOOL: return tokens::Role::Tool;
    case openai::Role::FUNCTION: return tokens::Role::Function;
    case openai::Role::OTHER: return tokens::Role::Other;
    default: return tokens::Role::None;
    }
}

void set_macs(uint8_t* frame, const net::MacAddr& dst, const net::MacAddr& src) {
    std::memcpy(frame, &dst, 6);
    std::memcpy(frame + 6, &src, 6);
}

constexpr uint32_t MAX_PREFIX_BLOCKS = 1024;

}  // namespace

const char* const* dp_counter_names() { return DP_NAMES; }

// ---------------------------------------------------------------------------------------------
// Construction (control plane: may allocate and throw).

Worker::Worker(const Env& env)
    : _env(env),
      _cfg(*env.cfg),
      _cookies(env.cookie_k0, env.cookie_k1),
      // Client connections plus every backend connection the pool may hold.
      _flows(env.cfg->limits.max_flows +
                 std::max<uint32_t>(64, env.cfg->limits.pool_max * uint32_t(env.cfg->backends.size()) + 64),
             env.seed),
      _wheel(4096, 1000, 0),
      _clients(env.cfg->limits.max_flows),
      _parsers(1024),
      _neigh(1024),
      _rng(env.seed) {
    const auto& L = _cfg.limits;
    _tcpcfg.ooo_limit = L.max_ooo_segments;
    _tcpcfg.rcv_wnd_max = 256 * 1024;
    _tcpcfg.sender.rto_initial_us = 200000;  // LAN legs; backs off exponentially from there

    _ext.reset(new ClientExt[_clients.capacity()]);
    _usage_parser.init(1 << 20);
    _usage.reset(new std::optional<openai::UsageSink>[_clients.capacity()]);
    for (uint32_t i = 0; i < _clients.capacity(); i++) _usage[i].emplace(&_usage_parser);

    uint32_t big = L.max_header_bytes + uint32_t(L.max_body_bytes) + 4096;
    uint32_t med = std::min<uint32_t>(big, (1u << 20) + L.max_header_bytes + 4096);
    BufPool::Tier tiers[BufPool::TIERS] = {
        {std::min<uint32_t>(big, 64 * 1024), 1024}, {med, 96}, {big, 8}};
    _bufs = std::make_unique<BufPool>(tiers);

    _http_limits.max_header_bytes = L.max_header_bytes;
    _http_limits.max_headers = L.max_headers;
    _http_limits.max_body_bytes = L.max_body_bytes;
    for (uint32_t i = 0; i < _parsers.capacity(); i++) _parsers.at(i)->set_limits(_http_limits);
    if (!_extractor.init(L.max_body_bytes)) throw std::runtime_error("openai extractor init failed");
    _scratch_cap = uint32_t(L.max_body_bytes) + BufPool::PADDING;
    _scratch.reset(new uint8_t[_scratch_cap]);

    // Backends, in scoreboard order (the app adds them in config order).
    tcp::PoolConfig pc;
    pc.max_conns = std::max<uint32_t>(64, L.pool_max * uint32_t(_cfg.backends.size()) + 64);
    pc.max_per_backend = L.pool_max;
    pc.prewarm = L.pool_prewarm;
    pc.connect_timeout_us = uint64_t(L.backend_connect_timeout_ms) * 1000;
    pc.idle_timeout_us = uint64_t(L.pool_idle_timeout_ms) * 1000;
    pc.local_ip_be = env.backend_addr_be;
    // Worker-owned local port range: replies to these ports belong to this worker.
    pc.port_lo = uint16_t(10000 + env.worker_id * 8000);
    pc.port_hi = uint16_t(pc.port_lo + 8000);
    pc.iss_k0 = env.iss_k0;
    pc.iss_k1 = env.iss_k1;
    _pool = std::make_unique<tcp::BackendPool>(pc, _tcpcfg, uint32_t(_cfg.backends.size()), _flows,
                                               _wheel, _tc);
    for (size_t i = 0; i < _cfg.backends.size(); i++) {
        const auto& b = _cfg.backends[i];
        BackendInfo bi;
        bi.ip_be = rte_cpu_to_be_32(b.address.addr);
        bi.port_be = rte_cpu_to_be_16(b.address.port);
        bi.name = b.name;
        bi.header_line = "x-tokenlb-backend: " + b.name + "\r\n";
        _pool->set_backend(uint16_t(i), bi.ip_be, bi.port_be);
        _backends.push_back(std::move(bi));
    }
    _health.resize(_backends.size());

    // Model catalog: served models and aliases.
    scoreboard::Scoreboard& sb = *env.scoreboard;
    std::string data;
    for (const auto& b : _cfg.backends)
        for (const auto& m : b.models) {
            bool seen = false;
            for (const auto& e : _models) seen |= e.name == m;
            if (seen) continue;
            int id = sb.model_id(m, false);
            if (id < 0) continue;
            _models.push_back({m, id, -1});
            if (!data.empty()) data += ",";
            data += "{\"id\":\"" + m + "\",\"object\":\"model\",\"created\":0,\"owned_by\":\"tokenlb\"}";
        }
    for (const auto& a : _cfg.policy.aliases) {
        policy::Alias al;
        for (const auto& c : a.candidates) {
            int id = sb.model_id(c, false);
            if (id >= 0 && al.n < policy::MAX_ALIAS_CANDIDATES) al.candidates[al.n++] = uint32_t(id);
        }
        _aliases.push_back(al);
        _models.push_back({a.name, -1, int32_t(_aliases.size() - 1)});
        if (!data.empty()) data += ",";
        data += "{\"id\":\"" + a.name +
                "\",\"object\":\"model\",\"created\":0,\"owned_by\":\"tokenlb\"}";
    }
    _models_json = "{\"object\":\"list\",\"data\":[" + data + "]}";

    policy::parse_kind(_cfg.policy.name, _params.kind);
    policy::parse_objective(_cfg.policy.objective, _params.objective);
    _params.latency_budget_s = float(_cfg.policy.latency_budget_s);
    _params.prefix_bonus = float(_cfg.policy.prefix_bonus);
    _params.bounded_load = float(_cfg.policy.bounded_load);
    _params.default_output_tokens = _cfg.policy.default_output_tokens;
    _prefix_dir = std::make_unique<policy::PrefixDirectory>(1u << 16);
    _pstate.prefix = _prefix_dir.get();
    _view = std::make_unique<scoreboard::View>();
    sb.snapshot(*_view, 0);

    // Content tags: which classifier tags route (backend capabilities of the same name) and which
    // make a request sensitive (docs/classify.md, "On the data plane").
    if (env.classifier) {
        const classify::Classifier& cl = *env.classifier;
        _scanner = std::make_unique<classify::Scanner>(cl);
        if (!_scanner->ok()) throw std::runtime_error("classify: cannot allocate a Hyperscan scratch");
        _tags_required = _cfg.policy.tag_match == "require";
        if (_cfg.policy.tag_match != "off")
            for (uint32_t t = 0; t < cl.tag_count() && t < 64; t++) {
                int id = sb.tag_id(cl.tag_name(t), false);
                if (id >= 0 && id < 64) {
                    _tag_route[t] = 1ull << id;
                    _routed_tags |= 1ull << t;
                }
            }
        for (const auto& name : _cfg.policy.sensitive_tags) _sensitive_tags |= cl.tag_mask(name);
        if (!_cfg.policy.sensitive_zones.empty()) {
            _sensitive_zones = 0;
            for (const auto& z : _cfg.policy.sensitive_zones) {
                int id = sb.zone_id(z, false);
                if (id >= 0 && id < 32) _sensitive_zones |= 1u << id;
            }
        }
    }
}

// Content tags of the request's decoded text (one contiguous run: one hs_scan per database), and
// what they mean for routing. Worker path: Scanner::scan is noexcept and allocates nothing.
void Worker::classify_request(ClientExt& e, const openai::Request& rq) {
    e.tags = 0;
    if (!_scanner) return;
    uint64_t errs = _scanner->errors();
    const uint64_t t0 = rte_rdtsc();
    uint64_t tags = _scanner->scan(std::string_view(reinterpret_cast<const char*>(rq.text), rq.text_len));
    _c.classify_cycles += rte_rdtsc() - t0;
    const uint64_t scan_errors = _scanner->errors() - errs;
    _c.classify_errors += scan_errors;
    e.tags = tags;
    uint64_t route = 0;
    for (uint64_t t = tags; t; t &= t - 1) {
        uint32_t bit = uint32_t(__builtin_ctzll(t));
        _tagged[bit]++;
        route |= _tag_route[bit];
    }
    if (_tags_required) e.feat.required_tags = route;
    else e.feat.preferred_tags = route;
    // A scan that failed part-way may have missed a sensitive tag: with zones configured, such a
    // request is kept to them too (fail closed), and says so if it cannot be served.
    if ((tags & _sensitive_tags) || (scan_errors && _sensitive_zones != ~0u)) {
        _c.requests_sensitive++;
        e.feat.allowed_zones = _sensitive_zones;
    }
}

Worker::~Worker() = default;

int Worker::launch(void* arg) {
    auto* a = static_cast<LaunchArg*>(arg);
    a->worker->run(*a->stop);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Poll loop.

void Worker::run(const std::atomic<bool>& stop) {
    const uint64_t hz = rte_get_tsc_hz();
    const uint16_t burst = uint16_t(std::min<uint32_t>(_cfg.dataplane.burst, 64));
    rte_mbuf* pkts[64];
    uint32_t idle = 0;
    uint64_t now = now_us_from_tsc(rte_rdtsc(), hz);
    _wheel.advance(now, [](tcp::Timer*) {});
    uint64_t t0 = rte_rdtsc();
    while (!stop.load(std::memory_order_relaxed)) {
        now = now_us_from_tsc(rte_rdtsc(), hz);
        uint32_t work = 0;
        uint16_t n = rte_eth_rx_burst(_env.client_port, _env.queue, pkts, burst);
        for (uint16_t i = 0; i < n; i++) handle_client_port(pkts[i], now);
        work += n;
        if (_env.backend_port != _env.client_port) {
            n = rte_eth_rx_burst(_env.backend_port, _env.queue, pkts, burst);
            for (uint16_t i = 0; i < n; i++) handle_backend_port(pkts[i], now);
            work += n;
        }
        work += _wheel.advance(now, [&](tcp::Timer* t) {
            _tc.timer_fired++;
            on_timer(t, now);
        });
        if (now >= _next_housekeeping) {
            housekeeping(now);
            _next_housekeeping = now + 10000;
        }
        flush_tx();
        if (work) {
            idle = 0;
        } else if (_cfg.dataplane.idle_backoff && ++idle >= _cfg.dataplane.idle_polls_before_sleep) {
            usleep(_cfg.dataplane.idle_sleep_us);
        }
        if (_env.telemetry) {
            uint64_t t1 = rte_rdtsc();
            _env.telemetry->busy.poll(t0, t1, work != 0);
            t0 = t1;
        }
    }
    flush_tx();
}

void Worker::housekeeping(uint64_t now) {
    _cookies.set_time(now / 1000000);
    if (_env.controls) {  // `tokenlb-ctl policy set NAME`
        auto k = policy::Kind(_env.controls->policy.load(std::memory_order_relaxed));
        if (k != _params.kind && k < policy::Kind::COUNT) _params.kind = k;
    }
    // Resolve backends and keep the pool pre-warmed.
    static constexpr uint64_t ARP_RETRY_US = 500000;
    bool arp_due = now - _last_arp_us >= ARP_RETRY_US;
    for (size_t i = 0; i < _backends.size(); i++) {
        net::MacAddr mac;
        if (!backend_mac(_backends[i].ip_be, mac)) {
            if (arp_due) {
                rte_mbuf* m = alloc();
                if (!m) continue;
                uint32_t target = _env.backend_gateway_be ? _env.backend_gateway_be : _backends[i].ip_be;
                size_t len = net::write_arp_request(net::mbuf_data(m), rte_pktmbuf_tailroom(m),
                                                    _env.backend_mac, _env.backend_addr_be, target);
                net::mbuf_set_len(m, uint16_t(len));
                tx_backend(m);
                _c.arp_requests_sent++;
            }
            continue;
        }
        uint16_t id = uint16_t(i);
        if (now < _health[i].down_until_us) continue;
        _down_mask &= ~(1ull << id);
        if (_pool->total(id) < _pool->config().prewarm && _pool->connecting(id) == 0) {
            if (!(_view->available & (1ull << id))) continue;
            open_backend(id, now);
        }
    }
    if (arp_due) _last_arp_us = now;
}

void Worker::refresh_view(uint64_t now) {
    if (now - _view_us < 50) return;
    _env.scoreboard->snapshot(*_view, now * 1000);
    _view_us = now;
}

// ---------------------------------------------------------------------------------------------
// tx

rte_mbuf* Worker::alloc() {
    rte_mbuf* m = rte_pktmbuf_alloc(_env.pool);
    if (!m) _c.no_mbuf++;
    return m;
}

void Worker::tx_client(rte_mbuf* m) {
    if (_ntxc == TX_BURST) flush_tx();
    _txc[_ntxc++] = m;
}

void Worker::tx_backend(rte_mbuf* m) {
    if (_env.backend_port == _env.client_port) return tx_client(m);
    if (_ntxb == TX_BURST) flush_tx();
    _txb[_ntxb++] = m;
}

void Worker::flush_tx() {
    auto send = [&](uint16_t port, rte_mbuf** v, uint32_t& n) {
        uint32_t sent = 0;
        for (int tries = 0; sent < n && tries < 4; tries++)
            sent += rte_eth_tx_burst(port, _env.queue, v + sent, uint16_t(n - sent));
        _c.tx_packets += sent;
        for (uint32_t i = sent; i < n; i++) {
            rte_pktmbuf_free(v[i]);
            _c.tx_dropped++;
        }
        n = 0;
    };
    if (_ntxc) send(_env.client_port, _txc, _ntxc);
    if (_ntxb) send(_env.backend_port, _txb, _ntxb);
}

bool Worker::backend_mac(uint32_t ip_be, net::MacAddr& mac) const {
    return _neigh.lookup(_env.backend_gateway_be ? _env.backend_gateway_be : ip_be, mac);
}

// ---------------------------------------------------------------------------------------------
// rx: L2/L3

bool Worker::handle_arp(rte_mbuf* m, uint8_t* frame, uint16_t len, bool client_side, uint64_t now) {
    net::ArpInfo a;
    if (net::parse_arp(frame, len, a) != net::DropReason::NONE) return false;
    uint32_t ours = client_side ? rte_cpu_to_be_32(_cfg.vip.address) : _env.backend_addr_be;
    uint32_t ours2 = client_side ? _env.client_addr_be : _env.backend_addr_be;
    const net::MacAddr& mac = client_side ? _env.client_mac : _env.backend_mac;
    if (!client_side && a.spa_be) {
        if (_neigh.learn(a.spa_be, a.sha, _env.backend_port, now)) _c.arp_learned++;
    }
    if (a.op == RTE_ARP_OP_REQUEST && (a.tpa_be == ours || a.tpa_be == ours2)) {
        if (net::arp_reply_in_place(frame, len, mac, a.tpa_be)) {
            _c.arp_answered++;
            if (client_side) tx_client(m);
            else tx_backend(m);
            return true;
        }
    }
    return false;
}

// Shared front end of both ports: ARP, ICMP echo, header checks. Returns true when `m` is a TCP
// segment addressed to us on this side (ip/th filled); otherwise `m` was consumed and counted.
bool Worker::rx_l3(rte_mbuf* m, bool client_side, net::Ipv4Info& ip, net::TcpInfo& th,
                   uint64_t now) {
    _c.rx_packets++;
    uint8_t* frame = net::mbuf_data(m);
    uint16_t len = net::mbuf_len(m);
    uint16_t et = net::parse_ether(frame, len);
    if (et == RTE_ETHER_TYPE_ARP) {
        if (!handle_arp(m, frame, len, client_side, now)) rte_pktmbuf_free(m);
        return false;
    }
    auto drop = [&](uint64_t& counter) {
        counter++;
        rte_pktmbuf_free(m);
        return false;
    };
    if (et != RTE_ETHER_TYPE_IPV4) return drop(_c.rx_not_ipv4);
    if (net::parse_ipv4(frame, len, ip) != net::DropReason::NONE) return drop(_c.rx_bad_l3);
    const uint32_t vip_be = rte_cpu_to_be_32(_cfg.vip.address);
    bool ours = client_side ? (ip.dst_be == vip_be || ip.dst_be == _env.client_addr_be)
                            : ip.dst_be == _env.backend_addr_be;
    if (!ours) return drop(_c.rx_not_for_us);
    if (ip.proto == IPPROTO_ICMP) {
        size_t rl = net::icmp_echo_reply_in_place(frame, len, ip,
                                                  client_side ? _env.client_mac : _env.backend_mac);
        if (!rl) {
            rte_pktmbuf_free(m);
            return false;
        }
        net::mbuf_set_len(m, uint16_t(rl));
        _c.icmp_echo_replies++;
        if (client_side) tx_client(m);
        else tx_backend(m);
        return false;
    }
    if (ip.proto != IPPROTO_TCP) return drop(_c.rx_non_tcp);
    if (net::parse_tcp(frame, ip, th) != net::DropReason::NONE) return drop(_c.rx_bad_l4);
    return true;
}

// RST answering a segment that belongs to no connection of ours (RFC 9293 §3.10.7.1).
void Worker::send_rst_reply(const uint8_t* frame, const net::Ipv4Info& ip, const net::TcpInfo& th,
                            bool client_side) {
    if (th.flags & net::TCP_RST) return;
    net::TcpSegmentSpec s;
    tcp::fill_rst_reply(ip, th, s);
    s.src_mac = client_side ? _env.client_mac : _env.backend_mac;
    std::memcpy(&s.dst_mac, frame + 6, 6);
    rte_mbuf* r = alloc();
    if (!r) return;
    if (net::build_tcp_segment_mbuf(r, s, client_side ? _env.client_tx : _env.backend_tx) != 0) {
        rte_pktmbuf_free(r);
        return;
    }
    if (client_side) {
        tx_client(r);
        _tc.client_reset_sent++;
    } else {
        tx_backend(r);
        _tc.backend_reset_sent++;
    }
}

void Worker::handle_client_port(rte_mbuf* m, uint64_t now) {
    net::Ipv4Info ip;
    net::TcpInfo th;
    if (!rx_l3(m, true, ip, th, now)) return;
    if (ip.dst_be != rte_cpu_to_be_32(_cfg.vip.address) ||
        th.dst_port_be != rte_cpu_to_be_16(_cfg.vip.port)) {
        send_rst_reply(net::mbuf_data(m), ip, th, true);  // not the service: refuse politely
        _c.rx_not_for_us++;
        rte_pktmbuf_free(m);
        return;
    }
    tcp::FlowKey key{ip.src_be, ip.dst_be, th.src_port_be, th.dst_port_be};
    uint32_t h = _flows.lookup(key);
    if (h == tcp::FlowTable::NOT_FOUND) {
        if ((th.flags & (net::TCP_SYN | net::TCP_ACK | net::TCP_RST)) == net::TCP_SYN) {
            client_syn(m, ip, th);
        } else if ((th.flags & (net::TCP_ACK | net::TCP_SYN | net::TCP_RST)) == net::TCP_ACK) {
            client_new(m, ip, th, now);
        } else {
            rte_pktmbuf_free(m);
        }
        return;
    }
    if (tcp::handle_is_backend(h)) {  // a client reusing one of our backend 4-tuples: impossible
        rte_pktmbuf_free(m);
        return;
    }
    client_segment(tcp::handle_index(h), m, ip, th, now);
}

// ---------------------------------------------------------------------------------------------
// Client leg: handshake

void Worker::client_syn(rte_mbuf* m, const net::Ipv4Info& ip, const net::TcpInfo& th) {
    uint8_t* frame = net::mbuf_data(m);
    net::TcpOptions opts;
    if (th.opt_len && net::parse_tcp_options(frame + th.opt_off, th.opt_len, opts) != net::OptError::OK)
        opts = net::TcpOptions{};
    tcp::CookieOptions co;
    uint32_t cookie = _cookies.make(ip.src_be, ip.dst_be, th.src_port_be, th.dst_port_be, th.seq,
                                    opts.has_mss ? opts.mss : 0,
                                    opts.has_wscale ? int(opts.wscale) : -1, &co);
    net::TcpSegmentSpec s;
    uint8_t optbuf[40];
    tcp::fill_syn_ack(ip, th, cookie, co, _tcpcfg, optbuf, s);
    std::memcpy(&s.src_mac, &_env.client_mac, 6);
    std::memcpy(&s.dst_mac, frame + 6, 6);
    _tc.syn_rcvd++;
    // Reuse the SYN's mbuf for the SYN-ACK.
    rte_pktmbuf_reset(m);
    if (net::build_tcp_segment_mbuf(m, s, _env.client_tx) == 0) tx_client(m);
    else rte_pktmbuf_free(m);
}

void Worker::client_new(rte_mbuf* m, const net::Ipv4Info& ip, const net::TcpInfo& th,
                        uint64_t now) {
    uint8_t* frame = net::mbuf_data(m);
    tcp::CookieOptions co;
    auto rst = [&](bool count_bad) {
        if (count_bad) _tc.cookie_bad++;
        send_rst_reply(frame, ip, th, true);
        rte_pktmbuf_free(m);
    };
    if (!_cookies.check(ip.src_be, ip.dst_be, th.src_port_be, th.dst_port_be, th.seq - 1,
                        th.ack - 1, &co))
        return rst(true);
    tcp::ClientConn* c = _clients.alloc();
    if (!c) {
        _tc.client_pool_empty++;
        _tc.cookie_flow_full++;
        return rst(false);
    }
    uint32_t ci = _clients.index(c);
    tcp::FlowKey key{ip.src_be, ip.dst_be, th.src_port_be, th.dst_port_be};
    if (_flows.insert(key, tcp::handle_client(ci)) != 0) {
        _clients.free(c);
        _tc.flow_insert_fail++;
        _tc.cookie_flow_full++;
        return rst(false);
    }
    _tc.cookie_ok++;
    tcp::open_from_cookie(c->cb, key, th, co, _tcpcfg);
    c->phase = tcp::ClientPhase::IDLE;
    c->opts = co;
    c->backend = tcp::HANDLE_INVALID;
    c->first_byte_sent = false;
    c->rto.owner = c->deadline.owner = tcp::handle_client(ci);
    c->rto.kind = tcp::TIMER_RTO;
    ClientExt& e = _ext[ci];
    std::memcpy(&e.mac, frame + 6, 6);
    e.buf = nullptr;
    e.buf_len = 0;
    e.parser = nullptr;
    e.req_len = 0;
    e.parsing = false;
    e.fwd = nullptr;
    e.out = nullptr;
    e.close_after = false;
    e.tried = 0;
    e.attempts = 0;
    e.ticketed = false;
    e.pending = tcp::HANDLE_INVALID;
    arm_client_deadline(ci, tcp::TIMER_CLIENT_IDLE, now + uint64_t(_cfg.limits.keepalive_timeout_ms) * 1000);
    // The ACK may carry the first request bytes.
    client_segment(ci, m, ip, th, now);
}

void Worker::arm_client_deadline(uint32_t ci, uint8_t kind, uint64_t at) {
    tcp::ClientConn* c = _clients.at(ci);
    c->deadline.kind = kind;
    _wheel.arm(&c->deadline, at);
}

// ---------------------------------------------------------------------------------------------
// Client leg: segments

void Worker::client_segment(uint32_t ci, rte_mbuf* m, const net::Ipv4Info& ip,
                            const net::TcpInfo& th, uint64_t now) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    const bool splicing = c->phase == tcp::ClientPhase::RESPONSE && c->first_byte_sent;
    // While a response is spliced the client ACKs bytes our own sender never sent: move the
    // sender's idea of the stream to what was forwarded so those ACKs are not "unsent data".
    if (c->phase == tcp::ClientPhase::RESPONSE && c->cb.tx.all_acked())
        c->cb.tx.resync(c->bind.sent_max_c);
    const bool has_payload = th.payload_len > 0;
    tcp::InputResult r = tcp::input(
        c->cb, th, m, th.payload_off, c->request.bytes(), now, _tc, true,
        [&](void* h, uint32_t off, uint32_t len) {
            c->request.append_range(static_cast<rte_mbuf*>(h), off, len);
        },
        [](void* h) { rte_pktmbuf_free(static_cast<rte_mbuf*>(h)); });
    // From here `m` is ours only when the segment had no payload.
    if (r.rst) {
        if (!has_payload) rte_pktmbuf_free(m);
        _tc.client_closed_rst++;
        if (c->phase == tcp::ClientPhase::RESPONSE || c->phase == tcp::ClientPhase::DISPATCH) {
            _c.client_aborts++;
            log_request(ci, e.rparser.status(), telemetry::AccessRecord::FLAG_ABORTED, now, nullptr);
        }
        client_close(ci, false);
        return;
    }
    bool m_used = has_payload;
    // Translate the client's ACK to the bound backend (window updates included).
    if (splicing && (th.flags & net::TCP_ACK) && c->backend != tcp::HANDLE_INVALID && !r.drop) {
        tcp::BackendConn* b = _pool->at(tcp::handle_index(c->backend));
        net::MacAddr bmac;
        if (backend_mac(b->cb.key.remote_ip_be, bmac)) {
            if (!m_used && !(th.flags & (net::TCP_FIN | net::TCP_SYN))) {
                uint8_t* frame = net::mbuf_data(m);
                tcp::splice_c2b_ack_in_place(frame, ip, th, c->bind, b->cb.tx.nxt());
                set_macs(frame, bmac, _env.backend_mac);
                tx_backend(m);
                m_used = true;
                _tc.splice_c2b_ack++;
            } else {
                uint32_t ack_b;
                uint16_t win_b;
                tcp::splice_c2b_values(c->bind, th.ack, th.window, &ack_b, &win_b);
                rte_mbuf* a = alloc();
                if (a) {
                    net::TcpSegmentSpec s;
                    tcp::fill_spec(b->cb, net::TCP_ACK, 0, s);
                    s.ack = ack_b;
                    s.window = win_b;
                    s.src_mac = _env.backend_mac;
                    s.dst_mac = bmac;
                    if (net::build_tcp_segment_mbuf(a, s, _env.backend_tx) == 0) tx_backend(a);
                    else rte_pktmbuf_free(a);
                    _tc.splice_c2b_ack++;
                }
            }
            // Our backend-leg receive point follows what the client has acknowledged.
            if (tcp::seq_gt(c->bind.client_max_b, b->cb.rx.rcv_nxt()))
                b->cb.rx.set_rcv_nxt(c->bind.client_max_b);
        }
    }
    if (!m_used) rte_pktmbuf_free(m);
    // The response is complete and the client has all of it: rebind for the next request.
    if (splicing && c->backend != tcp::HANDLE_INVALID && c->bind.done()) {
        unbind(ci, now);
        if (_clients.at(ci) != c || c->cb.state == tcp::TcpState::CLOSED) return;
    }

    if (r.acked || r.fast_retransmit) {
        if (e.out) {
            if (c->cb.tx.una() == c->cb.tx.end()) {  // every byte of ours acknowledged
                bool final = e.out_final;
                _bufs->put(e.out);
                e.out = nullptr;
                e.out_final = false;
                if (final && c->phase == tcp::ClientPhase::LOCAL_RESPONSE) request_done(ci, now);
            } else {
                flush_client(ci, now);
            }
        } else if (c->cb.tx.fin_sent() && !c->cb.tx.fin_acked()) {
            flush_client(ci, now);
        }
        if (!c->cb.tx.timer_needed()) _wheel.cancel(&c->rto);
    }
    if (r.closed) {
        _tc.client_closed_fin++;
        client_close(ci, false);
        return;
    }
    if (r.fin) {
        switch (c->phase) {
        case tcp::ClientPhase::RESPONSE:
            // The client went away mid-response: stop the backend generating for nobody.
            _c.client_aborts++;
            log_request(ci, e.rparser.status(), telemetry::AccessRecord::FLAG_ABORTED, now, nullptr);
            client_abort_backend(ci);
            tcp::close(c->cb);
            c->phase = tcp::ClientPhase::CLOSING;
            flush_client(ci, now);
            break;
        case tcp::ClientPhase::DISPATCH:
        case tcp::ClientPhase::LOCAL_RESPONSE:
            e.close_after = true;  // half-close after a complete request: answer, then close
            break;
        case tcp::ClientPhase::CLOSING:
            break;
        default:
            // IDLE / HEADERS / BODY: nothing (more) to answer.
            tcp::close(c->cb);
            c->phase = tcp::ClientPhase::CLOSING;
            release_request_state(ci);
            flush_client(ci, now);
            arm_client_deadline(ci, tcp::TIMER_CLIENT_IDLE, now + 5000000);
            break;
        }
    }
    if (r.delivered) pump(ci, now);
    if (r.ack_now) send_client_ctl(ci, net::TCP_ACK);
}

void Worker::send_client_ctl(uint32_t ci, uint8_t flags) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    rte_mbuf* m = alloc();
    if (!m) return;
    net::TcpSegmentSpec s;
    tcp::fill_spec(c->cb, flags, c->request.bytes(), s);
    if (c->phase == tcp::ClientPhase::RESPONSE && c->first_byte_sent) s.seq = c->bind.sent_max_c;
    s.src_mac = _env.client_mac;
    s.dst_mac = e.mac;
    if (net::build_tcp_segment_mbuf(m, s, _env.client_tx) == 0) tx_client(m);
    else rte_pktmbuf_free(m);
}

// Send what a leg's sender allows now (new data, retransmissions, FIN). Payload bytes come from
// `data`, whose first byte has sequence number `data_seq`; `window` >= 0 overrides the window we
// advertise. Arms or cancels the leg's retransmission timer.
void Worker::send_stream(tcp::TcpCb& cb, tcp::Timer* rto, const uint8_t* data, uint32_t data_seq,
                         uint32_t buffered, int32_t window, bool client_side,
                         const net::MacAddr& dst, uint64_t now) {
    tcp::SendState::Segment seg;
    while (cb.tx.next(&seg)) {
        rte_mbuf* m = alloc();
        if (!m) {
            _tc.tx_no_mbuf++;
            break;  // the RTO timer resends
        }
        net::TcpSegmentSpec s;
        uint8_t flags = net::TCP_ACK;
        if (seg.len) flags |= net::TCP_PSH;
        if (seg.fin) flags |= net::TCP_FIN;
        tcp::fill_spec(cb, flags, buffered, s);
        s.seq = seg.seq;
        if (window >= 0) s.window = uint16_t(window);
        if (seg.len && data) {
            s.payload = data + (seg.seq - data_seq);
            s.payload_len = uint16_t(seg.len);
        }
        s.src_mac = client_side ? _env.client_mac : _env.backend_mac;
        s.dst_mac = dst;
        if (net::build_tcp_segment_mbuf(m, s, client_side ? _env.client_tx : _env.backend_tx) != 0) {
            rte_pktmbuf_free(m);
            break;
        }
        if (client_side) tx_client(m);
        else tx_backend(m);
        cb.tx.on_sent(seg, now);
        if (seg.retransmit) _tc.tx_retransmits++;
        else _tc.tx_segments++;
    }
    if (cb.tx.timer_needed()) _wheel.arm(rto, now + cb.tx.rto_us());
    else _wheel.cancel(rto);
}

void Worker::flush_client(uint32_t ci, uint64_t now) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    send_stream(c->cb, &c->rto, e.out ? e.out->data : nullptr, e.out_base, c->request.bytes(), -1,
                true, e.mac, now);
}

// Copy received request bytes into the flat buffer and frame them.
void Worker::pump(uint32_t ci, uint64_t now) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    if (c->phase != tcp::ClientPhase::IDLE && c->phase != tcp::ClientPhase::HEADERS &&
        c->phase != tcp::ClientPhase::BODY)
        return;  // pipelined bytes wait in the queue until the current response is done
    if (c->request.empty() && e.buf_len == 0) return;
    if (!e.buf) {
        e.buf = _bufs->get(std::min<uint32_t>(64 * 1024, _bufs->max_size()));
        if (!e.buf) {
            _c.buffers_exhausted++;
            local_response(ci, 503, "The load balancer is out of request buffers; retry shortly.",
                           "overloaded", nullptr, true, now);
            return;
        }
    }
    if (!e.parser) {
        e.parser = _parsers.alloc();
        if (!e.parser) {
            _c.buffers_exhausted++;
            local_response(ci, 503, "The load balancer is out of request parsers; retry shortly.",
                           "overloaded", nullptr, true, now);
            return;
        }
        e.parser->reset();
    }
    if (c->phase == tcp::ClientPhase::IDLE) {
        c->phase = tcp::ClientPhase::HEADERS;
        e.t_request_us = now;
        arm_client_deadline(ci, tcp::TIMER_HEADER, now + uint64_t(_cfg.limits.header_timeout_ms) * 1000);
    }
    for (;;) {
        uint32_t room = e.buf->cap - e.buf_len;
        uint32_t n = std::min(room, c->request.bytes());
        if (n) {
            c->request.copy_out(0, n, e.buf->data + e.buf_len);
            c->request.consume(n);
            e.buf_len += n;
        }
        int64_t rc = e.parser->parse(e.buf->data, e.buf_len);
        if (rc < 0) {
            _c.http_errors++;
            http::Error err = e.parser->error();
            uint8_t tmp[1024];
            int64_t len = http::build_error_response(tmp, sizeof(tmp), err);
            if (http::error_status(err) >= 500) _c.status_5xx++;
            else _c.status_4xx++;
            e.t_request_us = now;
            e.routed = false;
            e.backend = -1;
            e.feat.model = telemetry::NO_MODEL;
            e.feat.prompt_tokens = 0;
            log_request(ci, http::error_status(err), telemetry::AccessRecord::FLAG_LOCAL, now, nullptr);
            if (len > 0) local_bytes(ci, tmp, uint32_t(len), true, true, now);
            c->phase = tcp::ClientPhase::LOCAL_RESPONSE;
            e.close_after = true;
            return;
        }
        if (rc > 0) {
            e.req_len = uint32_t(rc);
            _c.requests++;
            _c.requests_fast_framed += e.parser->fast_framed();
            on_request(ci, now);
            return;
        }
        // Need more bytes.
        if (e.parser->headers_complete() && c->phase == tcp::ClientPhase::HEADERS) {
            c->phase = tcp::ClientPhase::BODY;
            arm_client_deadline(ci, tcp::TIMER_BODY, now + uint64_t(_cfg.limits.body_timeout_ms) * 1000);
            if (e.parser->expect_continue()) {
                auto cr = http::RequestParser::CONTINUE_RESPONSE;
                local_bytes(ci, reinterpret_cast<const uint8_t*>(cr.data()), uint32_t(cr.size()),
                            false, false, now);
            }
        }
        if (e.buf_len < e.buf->cap) return;  // wait for the peer
        // Buffer full: move to a larger tier.
        uint64_t need = uint64_t(e.buf->cap) * 2;
        if (e.parser->headers_complete() && e.parser->has_content_length())
            need = e.parser->headers_end() + e.parser->content_length();
        if (need > _bufs->max_size()) need = _bufs->max_size();
        Buf* nb = need > e.buf->cap ? _bufs->get(uint32_t(need)) : nullptr;
        if (!nb) {
            if (e.buf->cap >= _bufs->max_size() || !e.parser->headers_complete()) {
                _c.http_errors++;
                uint16_t st = e.parser->headers_complete() ? 413 : 431;
                local_response(ci, st,
                               st == 413 ? "Request body too large." : "Request headers too large.",
                               st == 413 ? "body_too_large" : "headers_too_large", nullptr, true, now);
            } else {
                _c.buffers_exhausted++;
                local_response(ci, 503, "The load balancer is out of request buffers; retry shortly.",
                               "overloaded", nullptr, true, now);
            }
            return;
        }
        std::memcpy(nb->data, e.buf->data, e.buf_len);
        _bufs->put(e.buf);
        e.buf = nb;
    }
}

// ---------------------------------------------------------------------------------------------
// A complete request: answer it locally or route it.

void Worker::on_request(uint32_t ci, uint64_t now) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    http::RequestParser& p = *e.parser;
    _wheel.cancel(&c->deadline);
    c->phase = tcp::ClientPhase::DISPATCH;
    e.close_after = !p.keep_alive();
    e.head_req = p.method() == http::Method::HEAD;
    e.tried = 0;
    e.attempts = 0;
    e.routed = false;
    e.stream = false;
    e.backend = -1;
    e.t_request_us = now;
    e.t_first_us = 0;
    e.feat.model = telemetry::NO_MODEL;
    e.feat.prompt_tokens = 0;
    e.tags = 0;
    std::string_view path = sv(e.buf->data, p.path());
    const bool get = p.method() == http::Method::GET || p.method() == http::Method::HEAD;
    const bool post = p.method() == http::Method::POST;
    auto json_ok = [&](std::string_view body) {
        char hdr[256];
        int n = snprintf(hdr, sizeof(hdr),
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                         "Connection: %s\r\n\r\n",
                         body.size(), e.close_after ? "close" : "keep-alive");
        local_bytes(ci, reinterpret_cast<const uint8_t*>(hdr), uint32_t(n), false, false, now);
        if (!e.head_req)
            local_bytes(ci, reinterpret_cast<const uint8_t*>(body.data()), uint32_t(body.size()),
                        false, false, now);
        e.out_final = true;
        c->phase = tcp::ClientPhase::LOCAL_RESPONSE;
        _c.responses_local++;
        _c.status_2xx++;
        log_request(ci, 200, telemetry::AccessRecord::FLAG_LOCAL, now, nullptr);
        if (e.close_after) {
            tcp::close(c->cb);
        }
        flush_client(ci, now);
    };
    if (path == "/health" || path == "/healthz") {
        if (!get) goto not_allowed;
        json_ok("{\"status\":\"ok\"}");
        return;
    }
    if (path == "/v1/models") {
        if (!get) goto not_allowed;
        json_ok(_models_json);
        return;
    }
    if (path == "/v1/chat/completions" || path == "/v1/completions") {
        if (!post) goto not_allowed;
        if (!understand(ci, path == "/v1/completions" ? openai::Endpoint::COMPLETIONS
                                                      : openai::Endpoint::CHAT_COMPLETIONS,
                        now))
            return;  // an error response was queued
        dispatch(ci, now);
        return;
    }
    {
        _c.not_found++;
        char msg[160];
        snprintf(msg, sizeof(msg), "Unknown path '%.*s'.", int(std::min<size_t>(path.size(), 100)),
                 path.data());
        local_response(ci, 404, msg, "not_found", nullptr, e.close_after, now);
        return;
    }
not_allowed:
    _c.method_not_allowed++;
    local_response(ci, 405, "Method not allowed for this path.", "method_not_allowed", nullptr,
                   e.close_after, now);
}

// Rebuild the request head with a new body: every header but Content-Length and
// Transfer-Encoding is copied, then Content-Length for `body_len`.
static int64_t reframe(const uint8_t* head, uint32_t head_len, const uint8_t* body,
                       uint32_t body_len, uint8_t* out, uint32_t cap) {
    uint32_t o = 0;
    uint32_t i = 0;
    uint32_t end = head_len >= 2 ? head_len - 2 : 0;  // drop the final empty line
    while (i < end) {
        uint32_t j = i;
        while (j + 1 < end + 2 && !(head[j] == '\r' && head[j + 1] == '\n')) j++;
        uint32_t line = j + 2 - i;
        bool skip = ieq_prefix(head + i, j - i, "content-length:") ||
                    ieq_prefix(head + i, j - i, "transfer-encoding:");
        if (!skip) {
            if (o + line > cap) return -1;
            std::memcpy(out + o, head + i, line);
            o += line;
        }
        i = j + 2;
    }
    int n = snprintf(reinterpret_cast<char*>(out + o), cap > o ? cap - o : 0,
                     "Content-Length: %u\r\n\r\n", body_len);
    if (n < 0 || o + uint32_t(n) + body_len > cap) return -1;
    o += uint32_t(n);
    std::memmove(out + o, body, body_len);
    return int64_t(o) + body_len;
}

bool Worker::understand(uint32_t ci, openai::Endpoint ep, uint64_t now) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    http::RequestParser& p = *e.parser;
    // Our buffer: extract() may borrow the padding after the body.
    uint8_t* body = const_cast<uint8_t*>(p.body_data(e.buf->data));
    uint32_t body_len = uint32_t(p.body_length());
    size_t capacity = size_t(e.buf->data + e.buf->cap + BufPool::PADDING - body);
    openai::Request& rq = _oreq;
    const uint64_t t_start = rte_rdtsc();
    openai::Error err = _extractor.extract(ep, body, body_len, capacity, _scratch.get(),
                                           _scratch_cap, rq);
    if (err != openai::Error::NONE) {
        _c.openai_errors++;
        local_response(ci, openai::error_status(err), _extractor.message(), openai::error_name(err),
                       _extractor.param(), e.close_after, now);
        return false;
    }
    policy::RequestFeatures& f = e.feat;
    f = policy::RequestFeatures{};
    f.model = telemetry::NO_MODEL;
    e.stream = rq.stream;
    int32_t model = -1, alias = -1;
    for (const auto& me : _models)
        if (me.name == rq.model) {
            model = me.id;
            alias = me.alias;
            break;
        }
    if (model < 0 && alias < 0) {
        _c.unknown_model++;
        char msg[200];
        snprintf(msg, sizeof(msg), "The model '%.*s' does not exist.",
                 int(std::min<size_t>(rq.model.size(), 120)), rq.model.data());
        local_response(ci, 404, msg, "model_not_found", "model", e.close_after, now);
        return false;
    }
    classify_request(e, rq);
    // Each text field is encoded on its own by the backend's tokenizer: one estimator pass over
    // all of them gives the sum of per-field estimates (as lib/understand computes it).
    uint64_t est = rq.text_len / 4;
    if (_env.estimator) {
        tokens::TextField fields[openai::MAX_SPANS];
        for (uint32_t i = 0; i < rq.span_count; i++) fields[i] = {rq.spans[i].off, rq.spans[i].len};
        est = (_env.estimator->estimate_fields_fixed(reinterpret_cast<const char*>(rq.text), fields, rq.span_count) +
               128) >> 8;
    }
    est += rq.prompt_token_ids;
    f.prompt_tokens = uint32_t(std::min<uint64_t>(est, UINT32_MAX));
    f.max_tokens = rq.max_tokens > 0 ? uint32_t(std::min<int64_t>(rq.max_tokens, UINT32_MAX)) : 0;
    f.request_hash = _flows.hash(c->cb.key);
    // Prefix points for prefix-cache affinity.
    {
        tokens::TextSpan spans[openai::MAX_SPANS];
        for (uint32_t i = 0; i < rq.span_count; i++) {
            spans[i].data = reinterpret_cast<const char*>(rq.text) + rq.spans[i].off;
            spans[i].size = rq.spans[i].len;
            spans[i].role = token_role(rq.spans[i].role);
        }
        uint32_t block = _cfg.policy.prefix_block_bytes;
        size_t nb = tokens::prefix_fingerprint(spans, rq.span_count, _prefix_hashes,
                                               MAX_PREFIX_BLOCKS, block);
        double tok_per_byte = rq.text_len ? double(f.prompt_tokens) / rq.text_len : 0.25;
        policy::set_prefix_points(f, _prefix_hashes, uint32_t(nb), float(block * tok_per_byte));
    }
    _c.understood++;
    _c.understand_cycles += rte_rdtsc() - t_start;
    // Forwarded bytes: as received, unless chunked (re-framed) or the model is an alias.
    e.fwd_ptr = e.buf->data;
    e.fwd_len = e.req_len;
    if (alias >= 0) {
        refresh_view(now);
        policy::ModelChoice mc = policy::select_model(_aliases[alias], _params, f, *_view, _pstate, _rng);
        if (mc.model < 0) {
            _c.no_backend++;
            local_response(ci, 503, "No model behind this alias can serve the request now.",
                           "no_backend", "model", e.close_after, now);
            return false;
        }
        model = mc.model;
    }
    f.model = uint32_t(model);
    if (alias >= 0 || p.chunked()) {
        const char* new_name = nullptr;
        for (const auto& me : _models)
            if (me.id == model && me.alias < 0) new_name = me.name.c_str();
        e.fwd = _bufs->get(e.req_len + 256);
        if (!e.fwd) {
            _c.buffers_exhausted++;
            local_response(ci, 503, "The load balancer is out of request buffers; retry shortly.",
                           "overloaded", nullptr, e.close_after, now);
            return false;
        }
        // New body first (at the end of the fwd buffer), then the head in front of it.
        const uint8_t* nbody = body;
        uint32_t nlen = body_len;
        if (alias >= 0 && new_name) {
            uint8_t* tmp = _scratch.get();  // the prompt text is no longer needed
            int64_t l = openai::rewrite_model(body, body_len, rq, new_name, tmp, _scratch_cap);
            if (l > 0) {
                nbody = tmp;
                nlen = uint32_t(l);
            }
        }
        int64_t l = reframe(e.buf->data, p.headers_end(), nbody, nlen, e.fwd->data, e.fwd->cap);
        if (l < 0) {
            _bufs->put(e.fwd);
            e.fwd = nullptr;
            local_response(ci, 413, "Request too large after rewriting.", "body_too_large", nullptr,
                           e.close_after, now);
            return false;
        }
        e.fwd_ptr = e.fwd->data;
        e.fwd_len = uint32_t(l);
    }
    return true;
}

// A request whose content narrowed its candidates (policy.sensitive_zones, tag_match = "require")
// and could not be served: say why, after the message's final '.', e.g. "...: its text is tagged
// pii and only trust zones private may serve it." msg holds len bytes and a NUL; no allocation.
void Worker::explain_content(const ClientExt& e, char* msg, size_t cap, size_t len) const {
    const uint64_t zoned = e.feat.allowed_zones != ~0u ? e.tags & _sensitive_tags : 0;
    const uint64_t required = _tags_required ? e.tags & _routed_tags : 0;  // became required_tags
    if ((!zoned && !required) || !_env.classifier || len == 0 || len >= cap) return;
    size_t o = len - 1;  // over the final '.'
    auto put = [&](std::string_view p) {
        const size_t n = std::min(p.size(), cap - 1 - o);
        std::memcpy(msg + o, p.data(), n);
        o += n;
    };
    auto put_list = [&](size_t n, auto&& name) {  // "a, b, c"
        for (size_t i = 0; i < n; i++) {
            if (i) put(", ");
            put(name(i));
        }
    };
    auto put_tags = [&](uint64_t tags) {
        uint32_t bits[64], n = 0;
        for (uint64_t t = tags; t; t &= t - 1) bits[n++] = uint32_t(__builtin_ctzll(t));
        put_list(n, [&](size_t i) -> std::string_view { return _env.classifier->tag_name(bits[i]); });
    };
    put(": its text is tagged ");
    if (zoned) {
        put_tags(zoned);
        put(" and only trust zones ");
        const auto& zones = _cfg.policy.sensitive_zones;
        put_list(zones.size(), [&](size_t i) -> std::string_view { return zones[i]; });
        put(" may serve it");
        if (required) put("; it is tagged ");
    }
    if (required) {
        put_tags(required);
        put(" and policy.tag_match = \"require\" allows only backends with that capability");
    }
    put(".");
    msg[o] = 0;
}

void Worker::dispatch(uint32_t ci, uint64_t now) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    c->phase = tcp::ClientPhase::DISPATCH;
    for (;;) {
        if (e.attempts >= _cfg.policy.max_attempts) {
            char msg[400] = "Every backend tried for this request failed.";
            explain_content(e, msg, sizeof(msg), std::strlen(msg));
            local_response(ci, 502, msg, "upstream_failed", nullptr, e.close_after, now);
            return;
        }
        refresh_view(now);
        uint64_t saved = _view->available;
        _view->available = saved & ~(e.tried | _down_mask);
        policy::Decision d = policy::decide(_params, e.feat, *_view, _pstate, _rng);
        if (!d.ok() && (saved & ~e.tried & _down_mask)) {
            // Every candidate left is on hold-down: fail open and try them (as Envoy's panic
            // threshold does) rather than refuse the request outright.
            _view->available = saved & ~e.tried;
            d = policy::decide(_params, e.feat, *_view, _pstate, _rng);
        }
        _view->available = saved;
        if (!d.ok()) {
            if (e.attempts == 0) {
                _c.no_backend++;
                char msg[400];
                int n = snprintf(msg, sizeof(msg), "No backend available for this request (%s).", d.text());
                explain_content(e, msg, sizeof(msg), n > 0 ? size_t(n) : 0);
                local_response(ci, 503, msg, "no_backend", nullptr, e.close_after, now);
            } else {
                char msg[400] = "Every backend tried for this request failed.";
                explain_content(e, msg, sizeof(msg), std::strlen(msg));
                local_response(ci, 502, msg, "upstream_failed", nullptr, e.close_after, now);
            }
            return;
        }
        uint16_t id = uint16_t(d.backend);
        e.tried |= 1ull << id;
        if (e.attempts++ > 0) _c.retries++;
        e.backend = d.backend;
        e.predicted_ttft = d.predicted_ttft_s;
        e.reason = uint8_t(d.reason);
        e.routed = true;
        e.predicted_tps = d.predicted_decode_tps;
        uint32_t uncached = e.feat.prompt_tokens > d.cached_tokens ? e.feat.prompt_tokens - d.cached_tokens : 0;
        e.ticket = _env.scoreboard->on_route(_env.worker_id, id, uncached, d.expected_output_tokens);
        e.ticketed = true;
        _view->apply_route(id, float(uncached), float(d.expected_output_tokens));
        if (e.feat.n_prefix)
            _prefix_dir->record(e.feat.prefix_hash, e.feat.prefix_tokens, e.feat.n_prefix, id,
                                uncached + d.expected_output_tokens);
        e.t_route_us = now;
        _c.requests_routed++;
        tcp::BackendConn* b = _pool->acquire(id);
        if (b) {
            bind_and_send(ci, b, now);
            return;
        }
        b = nullptr;
        net::MacAddr mac;
        if (backend_mac(_backends[id].ip_be, mac)) {
            b = _pool->open(id, now);
            if (b) {
                uint8_t opt[40];
                net::TcpSegmentSpec s;
                tcp::fill_syn(b->cb, _tcpcfg, opt, s);
                s.src_mac = _env.backend_mac;
                s.dst_mac = mac;
                rte_mbuf* m = alloc();
                if (m && net::build_tcp_segment_mbuf(m, s, _env.backend_tx) == 0) {
                    tx_backend(m);
                    b->client = tcp::handle_client(ci);
                    e.pending = _pool->handle(b);
                    arm_client_deadline(ci, tcp::TIMER_FIRST_BYTE,
                                        now + uint64_t(_cfg.limits.first_byte_timeout_ms) * 1000);
                    return;
                }
                if (m) rte_pktmbuf_free(m);
                _pool->close(b);
            }
        } else {
            _c.no_neighbour++;
        }
        end_attempt(ci, 0, 0);  // could not even connect: try the next best
    }
}

void Worker::bind_and_send(uint32_t ci, tcp::BackendConn* b, uint64_t now) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    e.pending = tcp::HANDLE_INVALID;
    b->phase = tcp::BackendPhase::BUSY;
    b->client = tcp::handle_client(ci);
    c->backend = _pool->handle(b);
    c->bind.bind(c->cb.key, b->cb.key, c->cb.tx.nxt(), b->cb.rx.rcv_nxt(), c->cb.rcv_wscale,
                 b->cb.snd_wscale, c->opts.mss);
    c->first_byte_sent = false;
    e.parsed_b = b->cb.rx.rcv_nxt();
    e.backend_fin = false;
    e.rparser.reset(e.head_req);
    _usage[ci]->reset();
    e.rparser.set_sink(&*_usage[ci]);
    e.src_base = b->cb.tx.end();
    b->cb.tx.push(e.fwd_len);
    c->phase = tcp::ClientPhase::RESPONSE;
    arm_client_deadline(ci, tcp::TIMER_FIRST_BYTE,
                        now + uint64_t(_cfg.limits.first_byte_timeout_ms) * 1000);
    flush_backend(b, now);
}

void Worker::flush_backend(tcp::BackendConn* b, uint64_t now) {
    if (b->client == tcp::HANDLE_INVALID) return;
    ClientExt& e = _ext[tcp::handle_index(b->client)];
    const tcp::ClientConn* c = _clients.at(tcp::handle_index(b->client));
    net::MacAddr mac;
    if (!backend_mac(b->cb.key.remote_ip_be, mac)) {
        _c.no_neighbour++;
        return;  // retried by the RTO timer
    }
    // Never let the backend send more than the client can take.
    send_stream(b->cb, &b->rto, e.fwd_ptr, e.src_base, 0,
                int32_t(c->bind.backend_window(c->cb.tx.peer_wnd())), false, mac, now);
}

// ---------------------------------------------------------------------------------------------
// Backend leg

void Worker::handle_backend_port(rte_mbuf* m, uint64_t now) {
    net::Ipv4Info ip;
    net::TcpInfo th;
    if (!rx_l3(m, false, ip, th, now)) return;
    tcp::FlowKey key{ip.src_be, ip.dst_be, th.src_port_be, th.dst_port_be};
    uint32_t h = _flows.lookup(key);
    if (h == tcp::FlowTable::NOT_FOUND || !tcp::handle_is_backend(h)) {
        send_rst_reply(net::mbuf_data(m), ip, th, false);
        _tc.splice_no_binding++;
        rte_pktmbuf_free(m);
        return;
    }
    backend_segment(_pool->at(tcp::handle_index(h)), m, ip, th, now);
}

void Worker::send_backend_ctl(tcp::BackendConn* b, uint8_t flags) {
    net::MacAddr mac;
    if (!backend_mac(b->cb.key.remote_ip_be, mac)) return;
    rte_mbuf* m = alloc();
    if (!m) return;
    net::TcpSegmentSpec s;
    tcp::fill_spec(b->cb, flags, 0, s);
    s.src_mac = _env.backend_mac;
    s.dst_mac = mac;
    if (net::build_tcp_segment_mbuf(m, s, _env.backend_tx) == 0) tx_backend(m);
    else rte_pktmbuf_free(m);
}

void Worker::backend_reset_close(tcp::BackendConn* b) {
    if (b->cb.state != tcp::TcpState::CLOSED && b->cb.state != tcp::TcpState::SYN_SENT) {
        send_backend_ctl(b, net::TCP_RST | net::TCP_ACK);
        _tc.backend_reset_sent++;
    }
    b->client = tcp::HANDLE_INVALID;
    _pool->close(b);
}

tcp::BackendConn* Worker::open_backend(uint16_t id, uint64_t now) {
    net::MacAddr mac;
    if (!backend_mac(_backends[id].ip_be, mac)) {
        _c.no_neighbour++;
        return nullptr;
    }
    tcp::BackendConn* b = _pool->open(id, now);
    if (!b) return nullptr;
    b->client = tcp::HANDLE_INVALID;
    uint8_t opt[40];
    net::TcpSegmentSpec s;
    tcp::fill_syn(b->cb, _tcpcfg, opt, s);
    s.src_mac = _env.backend_mac;
    s.dst_mac = mac;
    rte_mbuf* m = alloc();
    if (!m || net::build_tcp_segment_mbuf(m, s, _env.backend_tx) != 0) {
        if (m) rte_pktmbuf_free(m);
        _pool->close(b);
        return nullptr;
    }
    tx_backend(m);
    return b;
}

void Worker::backend_segment(tcp::BackendConn* b, rte_mbuf* m, const net::Ipv4Info& ip,
                             const net::TcpInfo& th, uint64_t now) {
    switch (b->phase) {
    case tcp::BackendPhase::CONNECTING: {
        net::TcpOptions opts;
        if (th.opt_len &&
            net::parse_tcp_options(net::mbuf_data(m) + th.opt_off, th.opt_len, opts) != net::OptError::OK)
            opts = net::TcpOptions{};
        int rc = tcp::input_syn_sent(b->cb, th, opts, _tcpcfg, _tc);
        if (rc == -2) send_rst_reply(net::mbuf_data(m), ip, th, false);
        rte_pktmbuf_free(m);
        if (rc == 1) {
            connect_ok(b->backend_id);
            _pool->connected(b);
            send_backend_ctl(b, net::TCP_ACK);
            if (b->client != tcp::HANDLE_INVALID) bind_and_send(tcp::handle_index(b->client), b, now);
            else _pool->release(b, now);
        } else if (rc == -1) {
            connect_failed(b->backend_id, now);
            backend_failed(b, now);
        }
        return;
    }
    case tcp::BackendPhase::IDLE:
        if (th.flags & net::TCP_RST) {
            _tc.backend_closed_rst++;
            _pool->close(b);
        } else if (th.flags & net::TCP_FIN) {
            _tc.backend_closed_fin++;
            backend_reset_close(b);
        } else if (th.payload_len) {
            backend_reset_close(b);  // bytes nobody asked for
        }
        rte_pktmbuf_free(m);
        return;
    case tcp::BackendPhase::BUSY:
        if (b->client == tcp::HANDLE_INVALID) {
            rte_pktmbuf_free(m);
            backend_reset_close(b);
            return;
        }
        backend_response(b, tcp::handle_index(b->client), m, ip, th, now);
        return;
    default:
        rte_pktmbuf_free(m);
        return;
    }
}

void Worker::backend_response(tcp::BackendConn* b, uint32_t ci, rte_mbuf* m,
                              const net::Ipv4Info& ip, const net::TcpInfo& th, uint64_t now) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    const bool fin = th.flags & net::TCP_FIN;
    tcp::InputResult r = tcp::input(b->cb, th, m, th.payload_off, 0, now, _tc, false,
                                    [](void*, uint32_t, uint32_t) {}, [](void*) {});
    if (r.rst) {
        rte_pktmbuf_free(m);
        _tc.backend_closed_rst++;
        backend_failed(b, now);
        return;
    }
    if (r.drop) {
        rte_pktmbuf_free(m);
        if (r.ack_now) send_backend_ctl(b, net::TCP_ACK);
        return;
    }
    if (r.acked || r.fast_retransmit || b->cb.tx.unsent()) flush_backend(b, now);
    uint32_t len = th.payload_len;
    if (len == 0 && !fin) {
        rte_pktmbuf_free(m);
        return;
    }
    uint32_t seq = th.seq;
    if (tcp::seq_gt(seq, e.parsed_b)) {
        // A hole before this segment: the framer must see bytes in order, so drop it; the
        // backend retransmits (no SACK on this leg).
        _c.b2c_out_of_order++;
        rte_pktmbuf_free(m);
        return;
    }
    uint8_t* frame = net::mbuf_data(m);
    uint32_t end = seq + len;
    bool was_complete = e.rparser.complete();
    if (len && tcp::seq_gt(end, e.parsed_b) && !was_complete) {
        uint32_t skip = e.parsed_b - seq;
        int64_t rc = e.rparser.feed(frame + th.payload_off + skip, len - skip);
        if (rc < 0) {
            _c.response_framing_errors++;
            rte_pktmbuf_free(m);
            backend_failed(b, now);
            return;
        }
        if (!c->first_byte_sent && e.rparser.headers_complete() &&
            (e.rparser.status() == 429 || e.rparser.status() == 503) &&
            e.attempts < _cfg.policy.max_attempts) {
            // Retryable refusal before anything reached the client: try the next best.
            _c.retry_status++;
            rte_pktmbuf_free(m);
            end_attempt(ci, 0, 0);
            c->backend = tcp::HANDLE_INVALID;
            backend_reset_close(b);
            dispatch(ci, now);
            return;
        }
        if (rc > 0) {
            c->bind.end_known = true;
            c->bind.resp_end_b = seq + skip + uint32_t(rc);
        }
        e.parsed_b = end;
    }
    if (fin) {
        e.backend_fin = true;
        if (!e.rparser.complete()) {
            if (e.rparser.finish() > 0 && e.rparser.complete()) {
                c->bind.forward_fin = true;  // close-delimited: the FIN is the response's end
                c->bind.end_known = true;
                c->bind.resp_end_b = end;
                e.close_after = true;
            }
        }
    }
    if (!c->first_byte_sent && len) {
        if (_cfg.telemetry.backend_header && seq == c->bind.resp_start_b) {
            const uint8_t* p = frame + th.payload_off;
            for (uint32_t i = 0; i + 1 < len; i++)
                if (p[i] == '\r' && p[i + 1] == '\n') {
                    const std::string& hl = _backends[e.backend].header_line;
                    c->bind.set_insert(seq + i + 2, reinterpret_cast<const uint8_t*>(hl.data()),
                                       uint32_t(hl.size()));
                    break;
                }
        }
        c->first_byte_sent = true;
        e.t_first_us = now;
        if (e.ticketed) {
            _env.scoreboard->on_first_byte(e.ticket);
            _view->apply_first_byte(uint32_t(e.backend), float(e.ticket.uncached_prompt_tokens));
        }
        _wheel.cancel(&c->deadline);
    }
    if (len || c->bind.forward_fin) {
        uint32_t ack = c->cb.rx.rcv_nxt();
        uint16_t win = c->cb.advertise(c->request.bytes());
        if (c->bind.needs_rebuild(seq, len)) {
            rte_mbuf* outs[16];
            int n = tcp::splice_b2c_rebuild(frame, ip, th, c->bind, ack, win, _env.pool, outs, 16);
            if (n == 0) _c.b2c_rebuild_fail++;  // the backend retransmits it
            for (int i = 0; i < n; i++) {
                set_macs(net::mbuf_data(outs[i]), e.mac, _env.client_mac);
                tx_client(outs[i]);
            }
            _tc.splice_b2c_rebuilt++;
            rte_pktmbuf_free(m);
        } else {
            tcp::splice_b2c_in_place(frame, ip, th, c->bind, ack, win);
            set_macs(frame, e.mac, _env.client_mac);
            tx_client(m);
            _tc.splice_b2c++;
        }
    } else {
        rte_pktmbuf_free(m);
    }
    if (fin && !e.rparser.complete()) {
        // The backend closed before the response's end.
        if (c->first_byte_sent) {
            _c.backend_fail_after_first_byte++;
            log_request(ci, 0, telemetry::AccessRecord::FLAG_ABORTED, now, nullptr);
            end_attempt(ci, 0, 0);
            c->backend = tcp::HANDLE_INVALID;
            backend_reset_close(b);
            client_close(ci, true);
        } else {
            backend_failed(b, now);
        }
    }
}

// The backend connection failed (RST, connect failure/timeout, retransmissions exhausted,
// malformed response). Before the first response byte reached the client the request is re-sent
// to the next best backend; after it, the client connection is reset.
void Worker::backend_failed(tcp::BackendConn* b, uint64_t now) {
    uint32_t h = b->client;
    b->client = tcp::HANDLE_INVALID;
    backend_reset_close(b);
    if (h == tcp::HANDLE_INVALID) return;
    uint32_t ci = tcp::handle_index(h);
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    c->backend = tcp::HANDLE_INVALID;
    e.pending = tcp::HANDLE_INVALID;
    if (!c->first_byte_sent) {
        _c.backend_fail_before_first_byte++;
        end_attempt(ci, 0, 0);
        dispatch(ci, now);
    } else {
        _c.backend_fail_after_first_byte++;
        log_request(ci, 0, telemetry::AccessRecord::FLAG_ABORTED, now, nullptr);
        end_attempt(ci, 0, 0);
        client_close(ci, true);
    }
}

void Worker::log_request(uint32_t ci, uint16_t status, uint8_t flags, uint64_t now,
                         const openai::Usage* u) {
    if (!_env.telemetry) return;
    const tcp::ClientConn* c = _clients.at(ci);
    const ClientExt& e = _ext[ci];
    telemetry::AccessRecord r;
    r.t_request_us = e.t_request_us;
    r.client_ip = c->cb.key.remote_ip_be;
    r.client_port = c->cb.key.remote_port_be;
    r.status = status;
    r.model = uint16_t(e.feat.model < telemetry::NO_MODEL ? e.feat.model : telemetry::NO_MODEL);
    r.backend = e.backend >= 0 ? uint16_t(e.backend) : telemetry::NO_BACKEND;
    r.estimated_prompt_tokens = e.feat.prompt_tokens;
    if (u && u->present()) {
        r.prompt_tokens = u->prompt_tokens > 0 ? uint32_t(u->prompt_tokens) : 0;
        r.completion_tokens = u->completion_tokens > 0 ? uint32_t(u->completion_tokens) : 0;
        flags |= telemetry::AccessRecord::FLAG_USAGE;
    }
    r.tags = e.tags;
    r.policy = uint8_t(_params.kind);
    r.reason = e.reason;
    r.attempts = e.attempts;
    if (e.routed) flags |= telemetry::AccessRecord::FLAG_ROUTED;
    if (e.stream) flags |= telemetry::AccessRecord::FLAG_STREAM;
    r.flags = flags;
    r.ttft_us = e.t_first_us > e.t_request_us ? uint32_t(std::min<uint64_t>(e.t_first_us - e.t_request_us, UINT32_MAX)) : 0;
    r.e2e_us = uint32_t(std::min<uint64_t>(now - e.t_request_us, UINT32_MAX));
    r.worker = uint8_t(_env.worker_id);
    _env.telemetry->request_done(r);
}

void Worker::connect_failed(uint16_t id, uint64_t now) {
    BackendHealth& h = _health[id];
    uint32_t shift = h.fails < 6 ? h.fails : 6;
    uint64_t hold = std::min<uint64_t>(100000ull << shift, 5000000);
    h.fails++;
    h.down_until_us = now + hold;
    _down_mask |= 1ull << id;
    _c.backend_held_down++;
}

void Worker::connect_ok(uint16_t id) {
    _health[id].fails = 0;
    _health[id].down_until_us = 0;
    _down_mask &= ~(1ull << id);
}

void Worker::end_attempt(uint32_t ci, uint32_t prompt, uint32_t output) {
    ClientExt& e = _ext[ci];
    if (!e.ticketed) return;
    bool fb = e.ticket.first_byte;
    uint32_t uncached = e.ticket.uncached_prompt_tokens;
    uint32_t expected = e.ticket.expected_output_tokens;
    _env.scoreboard->on_complete(e.ticket, prompt, output);
    _view->apply_complete(uint32_t(e.backend), float(expected), fb, float(uncached));
    e.ticketed = false;
}

// The response is complete and the client acknowledged all of it.
void Worker::unbind(uint32_t ci, uint64_t now) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    tcp::BackendConn* b = _pool->at(tcp::handle_index(c->backend));
    openai::UsageSink& us = *_usage[ci];
    us.finish();
    const openai::Usage& u = us.usage();
    if (u.present()) _c.usage_seen++;
    if (_env.telemetry && u.completion_tokens >= 0 && e.ticketed && e.t_first_us) {
        scoreboard::Observation o;
        o.backend = uint32_t(e.backend);
        o.model = e.feat.model;
        o.ttft_s = double(e.t_first_us - e.t_route_us) * 1e-6;
        o.predicted_ttft_s = e.predicted_ttft;
        o.decode_s = double(now - e.t_first_us) * 1e-6;
        o.predicted_decode_tps = e.predicted_tps;
        o.uncached_prompt_tokens = e.ticket.uncached_prompt_tokens;
        o.output_tokens = uint32_t(u.completion_tokens);
        _env.telemetry->observe(o);
    }
    log_request(ci, e.rparser.status(), e.rparser.event_stream() ? telemetry::AccessRecord::FLAG_STREAM : 0,
                now, &u);
    end_attempt(ci, u.prompt_tokens > 0 ? uint32_t(u.prompt_tokens) : 0,
                u.completion_tokens > 0 ? uint32_t(u.completion_tokens) : 0);
    uint16_t st = e.rparser.status();
    if (st >= 200 && st < 300) _c.status_2xx++;
    else if (st >= 400 && st < 500) _c.status_4xx++;
    else if (st >= 500 && st < 600) _c.status_5xx++;
    else _c.status_other++;
    _c.responses_complete++;
    c->cb.tx.resync(c->bind.client_end());
    bool keep = e.rparser.keep_alive() && !e.backend_fin && b->cb.state == tcp::TcpState::ESTABLISHED;
    c->backend = tcp::HANDLE_INVALID;
    b->client = tcp::HANDLE_INVALID;
    if (keep) _pool->release(b, now);
    else backend_reset_close(b);
    if (c->bind.forward_fin) e.close_after = true;
    request_done(ci, now);
}

// After the response to the current request: next request or close.
void Worker::request_done(uint32_t ci, uint64_t now) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    if (e.req_len && e.buf) {
        std::memmove(e.buf->data, e.buf->data + e.req_len, e.buf_len - e.req_len);
        e.buf_len -= e.req_len;
    }
    e.req_len = 0;
    if (e.fwd) {
        _bufs->put(e.fwd);
        e.fwd = nullptr;
    }
    if (e.parser) e.parser->reset();
    e.tried = 0;
    e.attempts = 0;
    c->first_byte_sent = false;
    if (e.close_after) {
        release_request_state(ci);
        if (c->cb.state == tcp::TcpState::ESTABLISHED || c->cb.state == tcp::TcpState::CLOSE_WAIT)
            tcp::close(c->cb);
        c->phase = tcp::ClientPhase::CLOSING;
        flush_client(ci, now);
        arm_client_deadline(ci, tcp::TIMER_CLIENT_IDLE, now + 5000000);
        return;
    }
    c->phase = tcp::ClientPhase::IDLE;
    const bool queued = !c->request.empty();
    if (e.buf_len == 0 && !queued) {
        release_request_state(ci);
        arm_client_deadline(ci, tcp::TIMER_CLIENT_IDLE,
                            now + uint64_t(_cfg.limits.keepalive_timeout_ms) * 1000);
        return;
    }
    pump(ci, now);
    // Pipelined bytes left the queue: tell the client its window opened again.
    if (queued && c->cb.state == tcp::TcpState::ESTABLISHED) send_client_ctl(ci, net::TCP_ACK);
}

void Worker::release_request_state(uint32_t ci) {
    ClientExt& e = _ext[ci];
    if (e.buf) {
        _bufs->put(e.buf);
        e.buf = nullptr;
    }
    e.buf_len = 0;
    e.req_len = 0;
    if (e.parser) {
        _parsers.free(e.parser);
        e.parser = nullptr;
    }
    if (e.fwd) {
        _bufs->put(e.fwd);
        e.fwd = nullptr;
    }
}

void Worker::local_bytes(uint32_t ci, const uint8_t* p, uint32_t n, bool final, bool close,
                         uint64_t now) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    if (!e.out) {
        e.out = _bufs->get(std::min<uint32_t>(64 * 1024, _bufs->max_size()));
        if (!e.out) {
            _c.buffers_exhausted++;
            client_close(ci, true);
            return;
        }
        e.out_base = c->cb.tx.end();
    }
    uint32_t used = c->cb.tx.end() - e.out_base;
    if (used + n > e.out->cap) {
        _c.buffers_exhausted++;
        return;
    }
    std::memcpy(e.out->data + used, p, n);
    c->cb.tx.push(n);
    if (final) {
        e.out_final = true;
        c->phase = tcp::ClientPhase::LOCAL_RESPONSE;
        _c.responses_local++;
    }
    if (close) {
        e.close_after = true;
        tcp::close(c->cb);
    }
    flush_client(ci, now);
}

void Worker::local_response(uint32_t ci, uint16_t status, const char* msg, const char* code,
                            const char* param, bool close, uint64_t now) {
    ClientExt& e = _ext[ci];
    uint8_t tmp[1024];
    http::ErrorBody body{msg ? msg : "", "", code ? code : "", param ? param : ""};
    int64_t n = http::build_error_response(tmp, sizeof(tmp), status, body, !close);
    if (status >= 500) _c.status_5xx++;
    else if (status >= 400) _c.status_4xx++;
    log_request(ci, status, telemetry::AccessRecord::FLAG_LOCAL, now, nullptr);
    if (n <= 0) {
        client_close(ci, true);
        return;
    }
    e.close_after = close;
    local_bytes(ci, tmp, uint32_t(n), true, close, now);
}

void Worker::client_abort_backend(uint32_t ci) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    end_attempt(ci, 0, 0);
    if (c->backend != tcp::HANDLE_INVALID) {
        tcp::BackendConn* b = _pool->at(tcp::handle_index(c->backend));
        b->client = tcp::HANDLE_INVALID;
        backend_reset_close(b);
        c->backend = tcp::HANDLE_INVALID;
    }
    if (e.pending != tcp::HANDLE_INVALID) {
        // Let the connection finish opening and join the pool.
        _pool->at(tcp::handle_index(e.pending))->client = tcp::HANDLE_INVALID;
        e.pending = tcp::HANDLE_INVALID;
    }
}

void Worker::client_close(uint32_t ci, bool rst) {
    tcp::ClientConn* c = _clients.at(ci);
    ClientExt& e = _ext[ci];
    if (rst && c->cb.state != tcp::TcpState::CLOSED) {
        send_client_ctl(ci, net::TCP_RST | net::TCP_ACK);
        _tc.client_reset_sent++;
    }
    client_abort_backend(ci);
    release_request_state(ci);
    if (e.out) {
        _bufs->put(e.out);
        e.out = nullptr;
    }
    e.out_final = false;
    c->request.clear();
    c->cb.rx.clear([](void* h) { rte_pktmbuf_free(static_cast<rte_mbuf*>(h)); });
    _wheel.cancel(&c->rto);
    _wheel.cancel(&c->deadline);
    _flows.erase(c->cb.key);
    c->cb.state = tcp::TcpState::CLOSED;
    c->phase = tcp::ClientPhase::IDLE;
    _clients.free(c);
}

// ---------------------------------------------------------------------------------------------
// Timers

void Worker::on_timer(tcp::Timer* t, uint64_t now) {
    uint32_t h = t->owner;
    if (tcp::handle_is_backend(h)) {
        tcp::BackendConn* b = _pool->at(tcp::handle_index(h));
        switch (t->kind) {
        case tcp::TIMER_RTO:
            if (!b->cb.tx.on_timeout()) {
                _tc.tx_give_up++;
                backend_failed(b, now);
            } else {
                _tc.tx_rto++;
                flush_backend(b, now);
            }
            break;
        case tcp::TIMER_CONNECT:
            _tc.backend_connect_timeout++;
            connect_failed(b->backend_id, now);
            backend_failed(b, now);
            break;
        case tcp::TIMER_BACKEND_IDLE:
            _tc.backend_idle_expired++;
            backend_reset_close(b);
            break;
        default: break;
        }
        return;
    }
    uint32_t ci = tcp::handle_index(h);
    tcp::ClientConn* c = _clients.at(ci);
    switch (t->kind) {
    case tcp::TIMER_RTO:
        if (!c->cb.tx.on_timeout()) {
            _tc.tx_give_up++;
            client_close(ci, true);
        } else {
            _tc.tx_rto++;
            flush_client(ci, now);
        }
        break;
    case tcp::TIMER_CLIENT_IDLE:
        if (c->phase == tcp::ClientPhase::CLOSING) {
            client_close(ci, true);  // the peer never finished the close
        } else {
            _tc.client_idle_timeout++;
            release_request_state(ci);
            tcp::close(c->cb);
            c->phase = tcp::ClientPhase::CLOSING;
            flush_client(ci, now);
            arm_client_deadline(ci, tcp::TIMER_CLIENT_IDLE, now + 5000000);
        }
        break;
    case tcp::TIMER_HEADER:
    case tcp::TIMER_BODY:
        if (t->kind == tcp::TIMER_HEADER) {
            _tc.client_header_timeout++;
            _c.header_timeouts++;
        } else {
            _tc.client_body_timeout++;
            _c.body_timeouts++;
        }
        local_response(ci, 408, "The request was not received in time.", "request_timeout",
                       nullptr, true, now);
        break;
    case tcp::TIMER_FIRST_BYTE:
        if (!c->first_byte_sent) {
            _c.first_byte_timeouts++;
            client_abort_backend(ci);
            local_response(ci, 504, "The backend did not answer in time.", "upstream_timeout",
                           nullptr, true, now);
        }
        break;
    default: break;
    }
}

uint32_t Worker::backend_busy() const {
    uint32_t n = 0;
    for (size_t i = 0; i < _backends.size(); i++)
        n += _pool->total(uint16_t(i)) - _pool->idle(uint16_t(i)) - _pool->connecting(uint16_t(i));
    return n;
}

std::string Worker::summary() const {
    std::string s;
    char buf[96];
    const uint64_t* v = reinterpret_cast<const uint64_t*>(&_c);
    for (size_t i = 0; i < DP_COUNTER_COUNT; i++) {
        if (!v[i]) continue;
        snprintf(buf, sizeof(buf), "%s=%llu ", DP_NAMES[i], (unsigned long long)v[i]);
        s += buf;
    }
    const uint64_t* t = reinterpret_cast<const uint64_t*>(&_tc);
    const char* const* tn = tcp::counter_names();
    for (size_t i = 0; i < tcp::COUNTER_COUNT; i++) {
        if (!t[i]) continue;
        snprintf(buf, sizeof(buf), "tcp_%s=%llu ", tn[i], (unsigned long long)t[i]);
        s += buf;
    }
    snprintf(buf, sizeof(buf), "flows=%u clients=%u backend_conns=%u buffers=%u", _flows.size(),
             _clients.in_use(), _pool->in_use(), _bufs->in_use());
    s += buf;
    return s;
}

}  // namespace tlb::dataplane
