#include "tcp/backend_pool.hpp"

namespace tlb::tcp {

BackendPool::BackendPool(const PoolConfig& cfg, const TcpConfig& tcp, uint32_t n_backends,
                         FlowTable& flows, TimerWheel& wheel, Counters& c)
    : _cfg(cfg),
      _tcp(tcp),
      _n_backends(n_backends > MAX_BACKENDS ? MAX_BACKENDS : n_backends),
      _be(new PerBackend[n_backends ? n_backends : 1]),
      _conns(cfg.max_conns),
      _flows(flows),
      _wheel(wheel),
      _c(c) {
    uint32_t lo = cfg.port_lo, hi = cfg.port_hi > cfg.port_lo ? cfg.port_hi : cfg.port_lo;
    _ports_cap = hi - lo;
    _ports.reset(new uint16_t[_ports_cap ? _ports_cap : 1]);
    for (uint32_t i = 0; i < _ports_cap; i++) _ports[i] = uint16_t(lo + i);
    _ports_n = _ports_cap;
    _ports_head = 0;
}

void BackendPool::set_backend(uint16_t id, uint32_t ip_be, uint16_t port_be) {
    if (id >= _n_backends) return;
    _be[id].ip_be = ip_be;
    _be[id].port_be = port_be;
}

void BackendPool::idle_push(PerBackend& pb, BackendConn* b) {
    b->idle_prev = nullptr;
    b->idle_next = pb.idle_head;
    if (pb.idle_head) pb.idle_head->idle_prev = b;
    pb.idle_head = b;
    pb.idle++;
}

void BackendPool::idle_remove(PerBackend& pb, BackendConn* b) {
    if (b->idle_prev)
        b->idle_prev->idle_next = b->idle_next;
    else
        pb.idle_head = b->idle_next;
    if (b->idle_next) b->idle_next->idle_prev = b->idle_prev;
    b->idle_next = b->idle_prev = nullptr;
    pb.idle--;
}

uint32_t BackendPool::make_iss(const FlowKey& k, uint64_t now_us) const {
    uint64_t h = siphash24(_cfg.iss_k0, _cfg.iss_k1, &k, sizeof(k));
    return uint32_t(h) + uint32_t(now_us / 4);
}

BackendConn* BackendPool::acquire(uint16_t id) {
    if (id >= _n_backends) return nullptr;
    PerBackend& pb = _be[id];
    BackendConn* b = pb.idle_head;
    if (!b) return nullptr;
    idle_remove(pb, b);
    _wheel.cancel(&b->deadline);
    b->phase = BackendPhase::BUSY;
    return b;
}

BackendConn* BackendPool::open(uint16_t id, uint64_t now_us) {
    if (id >= _n_backends) return nullptr;
    PerBackend& pb = _be[id];
    if (pb.total >= _cfg.max_per_backend) return nullptr;
    if (_ports_n == 0) {
        _c.backend_port_exhausted++;
        return nullptr;
    }
    BackendConn* b = _conns.alloc();
    if (!b) {
        _c.backend_pool_empty++;
        return nullptr;
    }
    uint16_t port = _ports[_ports_head];
    FlowKey k{pb.ip_be, _cfg.local_ip_be, pb.port_be, rte_cpu_to_be_16(port)};
    uint32_t h = handle_backend(_conns.index(b));
    if (_flows.insert(k, h) != 0) {
        // -2 (exists) cannot happen for a port we own; -1 is a full table.
        _c.flow_insert_fail++;
        _conns.free(b);
        return nullptr;
    }
    _ports_head = (_ports_head + 1) % _ports_cap;
    _ports_n--;
    open_active(b->cb, k, make_iss(k, now_us), _tcp);
    b->phase = BackendPhase::CONNECTING;
    b->backend_id = id;
    b->client = HANDLE_INVALID;
    b->src = nullptr;
    b->src_base = 0;
    b->idle_next = b->idle_prev = nullptr;
    b->rto.owner = b->deadline.owner = h;
    b->rto.kind = TIMER_RTO;
    b->deadline.kind = TIMER_CONNECT;
    _wheel.arm(&b->deadline, now_us + _cfg.connect_timeout_us);
    pb.total++;
    pb.connecting++;
    _c.backend_connect++;
    return b;
}

void BackendPool::connected(BackendConn* b) {
    PerBackend& pb = _be[b->backend_id];
    if (b->phase == BackendPhase::CONNECTING) pb.connecting--;
    _wheel.cancel(&b->deadline);
    b->phase = BackendPhase::BUSY;
}

void BackendPool::release(BackendConn* b, uint64_t now_us) {
    PerBackend& pb = _be[b->backend_id];
    if (b->phase == BackendPhase::CONNECTING) pb.connecting--;
    if (b->phase == BackendPhase::IDLE) return;
    b->client = HANDLE_INVALID;
    b->src = nullptr;
    b->phase = BackendPhase::IDLE;
    if (b->cb.tx.all_acked()) _wheel.cancel(&b->rto);  // nothing left to retransmit
    idle_push(pb, b);
    b->deadline.kind = TIMER_BACKEND_IDLE;
    _wheel.arm(&b->deadline, now_us + _cfg.idle_timeout_us);
}

void BackendPool::close(BackendConn* b) {
    if (b->phase == BackendPhase::FREE) return;
    PerBackend& pb = _be[b->backend_id];
    if (b->phase == BackendPhase::IDLE) idle_remove(pb, b);
    if (b->phase == BackendPhase::CONNECTING) pb.connecting--;
    pb.total--;
    _wheel.cancel(&b->deadline);
    _wheel.cancel(&b->rto);
    _flows.erase(b->cb.key);
    // Return the port to the tail of the FIFO.
    _ports[(_ports_head + _ports_n) % _ports_cap] = rte_be_to_cpu_16(b->cb.key.local_port_be);
    _ports_n++;
    b->cb.state = TcpState::CLOSED;
    b->phase = BackendPhase::FREE;
    b->client = HANDLE_INVALID;
    b->src = nullptr;
    _conns.free(b);
}

}  // namespace tlb::tcp
