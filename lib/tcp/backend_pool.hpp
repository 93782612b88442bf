// Backend connection pool, one per worker: established keep-alive connections to every backend,
// opened from the worker's own local port range so the backends' replies come back to the
// worker that owns the connection (RSS/rte_flow rules or software dispatch by destination port).
//
// Decisions:
// - Idle connections per backend are a LIFO list (the most recently used connection is the one
//   least likely to have been closed by the backend's keep-alive timer; HAProxy's "safe" reuse
//   and Envoy's pool do the same).
// - Local ports: a FIFO ring of free ports per worker, shared by all backends. FIFO maximises the
//   time before a port is reused, so a backend that still has the old connection in TIME_WAIT
//   has had the longest time to expire it; we close with RST so we hold no TIME_WAIT ourselves.
// - ISS for active opens: RFC 6528, SipHash(secret, 4-tuple) + a 4 µs clock.
// - Size: prewarm(n) opens n connections per backend at start; acquire() takes an idle one, and
//   open() grows the pool on demand up to max_per_backend. Idle connections close after
//   idle_timeout (TIMER_BACKEND_IDLE), on the backend's FIN/RST or any error.
// - The pool arms/cancels the connect and idle timers itself (it is given the worker's wheel);
//   the RTO timer is the data plane's (it drives the sender).
// - Every connection is in the flow table under handle_backend(index) from open() to close().
#pragma once

#include <cstdint>
#include <memory>

#include "tcp/conn.hpp"
#include "tcp/counters.hpp"
#include "tcp/flow_table.hpp"
#include "tcp/timer_wheel.hpp"

namespace tlb::tcp {

struct PoolConfig {
    uint32_t max_conns = 1024;           // backend connection objects per worker (all backends)
    uint32_t max_per_backend = 256;      // limits.pool_max
    uint32_t prewarm = 2;                // limits.pool_prewarm
    uint64_t connect_timeout_us = 1000000;
    uint64_t idle_timeout_us = 30000000; // keep below the backends' keep-alive timeout
    uint32_t local_ip_be = 0;            // our address on the backend port
    uint16_t port_lo = 10000;            // worker-owned local port range [lo, hi)
    uint16_t port_hi = 20000;
    uint64_t iss_k0 = 0, iss_k1 = 0;     // RFC 6528 secret
};

class BackendPool {
public:
    static constexpr uint32_t MAX_BACKENDS = 1024;
    BackendPool(const PoolConfig& cfg, const TcpConfig& tcp, uint32_t n_backends, FlowTable& flows,
                TimerWheel& wheel, Counters& c);

    // Backend `id`'s address (network order). Call at start for every backend.
    void set_backend(uint16_t id, uint32_t ip_be, uint16_t port_be);

    // An idle established connection to `id` (now BUSY, idle timer cancelled) or nullptr.
    BackendConn* acquire(uint16_t id);
    // Start an active open to `id`: the connection is CONNECTING, in the flow table, with its
    // connect timer armed; the caller sends the SYN (fill_syn). nullptr when the backend is at
    // max_per_backend, or no object / local port / flow slot is free (counted).
    BackendConn* open(uint16_t id, uint64_t now_us);
    // SYN-ACK accepted (input_syn_sent returned 1): cancel the connect timer. The caller then
    // either uses it (phase BUSY, when a request waits for it) or calls release() to park it.
    void connected(BackendConn* b);
    // Response done: back to the idle list (keep-alive), idle timer armed. Clears the binding.
    void release(BackendConn* b, uint64_t now_us);
    // Remove entirely: flow entry, timers, local port, object. The caller has sent the RST/FIN it
    // wanted to send. Safe in any phase except FREE.
    void close(BackendConn* b);

    BackendConn* at(uint32_t index) { return _conns.at(index); }
    uint32_t index(const BackendConn* b) const { return _conns.index(b); }
    uint32_t handle(const BackendConn* b) const { return handle_backend(_conns.index(b)); }

    uint32_t idle(uint16_t id) const { return _be[id].idle; }
    uint32_t total(uint16_t id) const { return _be[id].total; }       // all phases
    uint32_t connecting(uint16_t id) const { return _be[id].connecting; }
    uint32_t in_use() const { return _conns.in_use(); }
    uint32_t free_ports() const { return _ports_n; }
    const PoolConfig& config() const { return _cfg; }

private:
    struct PerBackend {
        uint32_t ip_be = 0;
        uint16_t port_be = 0;
        uint32_t idle = 0, total = 0, connecting = 0;
        BackendConn* idle_head = nullptr;  // LIFO
    };
    void idle_push(PerBackend& pb, BackendConn* b);
    void idle_remove(PerBackend& pb, BackendConn* b);
    uint32_t make_iss(const FlowKey& k, uint64_t now_us) const;

    PoolConfig _cfg;
    TcpConfig _tcp;
    uint32_t _n_backends;
    std::unique_ptr<PerBackend[]> _be;
    ObjectPool<BackendConn> _conns;
    std::unique_ptr<uint16_t[]> _ports;  // FIFO ring of free local ports (host order)
    uint32_t _ports_cap = 0, _ports_head = 0, _ports_n = 0;
    FlowTable& _flows;
    TimerWheel& _wheel;
    Counters& _c;
};

}  // namespace tlb::tcp
