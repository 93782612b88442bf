// tokenlb first packet path: see l2_worker.hpp.
#include "l2_worker.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

namespace tlb::app {

using net::DropReason;

bool L2Worker::handle_arp(const WorkerPort& p, uint8_t* data, uint16_t len, uint64_t now_tsc) {
    net::ArpInfo a;
    DropReason r = net::parse_arp(data, len, a);
    if (r != DropReason::NONE) {
        drop(r);
        return false;
    }
    // Learn from requests and replies alike (RFC 826 "merge"), but only on-link senders and never
    // our own addresses (a conflicting host must not redirect our traffic).
    if (a.spa_be != 0 && p.on_link(a.spa_be) && !p.owns(a.spa_be) && !net::mac_is_broadcast(a.sha) &&
        !(a.sha.addr_bytes[0] & 0x01)) {
        bool known = _neigh.find(a.spa_be) != nullptr;
        uint64_t ev = _neigh.evictions();
        _neigh.learn(a.spa_be, a.sha, p.port_id, now_tsc);
        if (!known) _c.neighbours_learned.add();
        if (_neigh.evictions() != ev) _c.neighbour_evictions.add();
    }
    if (a.op == RTE_ARP_OP_REPLY) {
        _c.arp_replies_received.add();
        drop(DropReason::ARP_REPLY);  // consumed by learning
        return false;
    }
    if (!p.owns(a.tpa_be) || a.spa_be == a.tpa_be) {  // not ours, or a gratuitous announcement
        drop(DropReason::ARP_NOT_FOR_US);
        return false;
    }
    uint32_t tpa = a.tpa_be;
    if (!net::arp_reply_in_place(data, len, p.mac, tpa)) {
        drop(DropReason::ARP_MALFORMED);
        return false;
    }
    _c.arp_requests_answered.add();
    return true;
}

bool L2Worker::handle_ipv4(const WorkerPort& p, rte_mbuf* m, uint8_t* data, uint16_t len) {
    net::Ipv4Info ip;
    bool ip_ok_hw = p.rx_ip_csum_hw &&
                    (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD;
    DropReason r = net::parse_ipv4(data, len, ip, ip_ok_hw);
    if (r != DropReason::NONE) {
        drop(r);
        return false;
    }
    if (!p.owns(ip.dst_be)) {
        drop(DropReason::IPV4_NOT_FOR_US);
        return false;
    }
    if (ip.proto == IPPROTO_ICMP) {
        if (ip.l4_len < net::ICMP_HDR_LEN) {
            drop(DropReason::ICMP_MALFORMED);
            return false;
        }
        const auto* icmp = reinterpret_cast<const rte_icmp_hdr*>(data + ip.l4_off);
        if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST) {
            drop(DropReason::ICMP_TYPE);
            return false;
        }
        size_t n = net::icmp_echo_reply_in_place(data, len, ip, p.mac);
        if (n == 0) {
            drop(DropReason::ICMP_MALFORMED);
            return false;
        }
        net::mbuf_set_len(m, uint16_t(n));
        m->ol_flags = 0;
        _c.icmp_echo_replies.add();
        return true;
    }
    if (ip.proto == IPPROTO_TCP) {
        net::TcpInfo t;
        bool l4_ok_hw = (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD;
        r = net::parse_tcp(data, ip, t, l4_ok_hw);
        drop(r != DropReason::NONE ? r : DropReason::TCP_NO_FLOW);
        return false;
    }
    drop(DropReason::IPV4_PROTO);
    return false;
}

bool L2Worker::handle(int port_idx, rte_mbuf* m, uint64_t now_tsc) {
    const WorkerPort& p = _cfg.ports[port_idx];
    uint8_t* data = rte_pktmbuf_mtod(m, uint8_t*);
    // Headers must be in the first segment; every PMD we run puts >= 128 bytes there.
    uint16_t len = rte_pktmbuf_data_len(m);
    if (len < net::ETH_HDR_LEN) {
        drop(DropReason::TOO_SHORT);
        return false;
    }
    const auto* eth = reinterpret_cast<const rte_ether_hdr*>(data);
    // af_packet (and promiscuous NICs) hand us frames for other MACs too.
    if (!net::mac_equal(eth->dst_addr, p.mac) && !net::mac_is_broadcast(eth->dst_addr)) {
        drop(DropReason::NOT_FOR_US_L2);
        return false;
    }
    switch (net::parse_ether(data, len)) {
    case RTE_ETHER_TYPE_ARP:
        return handle_arp(p, data, len, now_tsc);
    case RTE_ETHER_TYPE_IPV4:
        return handle_ipv4(p, m, data, len);
    default:
        drop(DropReason::ETHERTYPE);
        return false;
    }
}

void L2Worker::run(const std::atomic<bool>& stop) {
    constexpr uint16_t MAX_BURST = 64;
    uint16_t burst = _cfg.burst == 0 || _cfg.burst > MAX_BURST ? MAX_BURST : _cfg.burst;
    rte_mbuf* rx[MAX_BURST];
    rte_mbuf* tx[MAX_BURST];
    uint32_t idle = 0;
    const uint64_t hz = rte_get_tsc_hz();
    const uint64_t age_every = hz * 10;
    const uint64_t max_age = hz * _cfg.neighbour_max_age_s;
    uint64_t next_age = rte_get_tsc_cycles() + age_every;

    while (!stop.load(std::memory_order_relaxed)) {
        _c.polls.add();
        uint32_t got = 0;
        uint64_t now = rte_get_tsc_cycles();
        for (int pi = 0; pi < _cfg.n_ports; ++pi) {
            const WorkerPort& p = _cfg.ports[pi];
            PortCounters& pc = _c.ports[pi];
            uint16_t n = rte_eth_rx_burst(p.port_id, p.queue, rx, burst);
            if (n == 0) continue;
            got += n;
            pc.rx_packets.add(n);
            uint16_t ntx = 0;
            uint64_t bytes = 0;
            for (uint16_t i = 0; i < n; ++i) {
                bytes += rte_pktmbuf_pkt_len(rx[i]);
                if (handle(pi, rx[i], now))
                    tx[ntx++] = rx[i];
                else
                    rte_pktmbuf_free(rx[i]);
            }
            pc.rx_bytes.add(bytes);
            if (ntx) {
                uint16_t sent = rte_eth_tx_burst(p.port_id, p.queue, tx, ntx);
                uint64_t txb = 0;
                for (uint16_t i = 0; i < sent; ++i) txb += rte_pktmbuf_pkt_len(tx[i]);
                pc.tx_packets.add(sent);
                pc.tx_bytes.add(txb);
                for (uint16_t i = sent; i < ntx; ++i) {
                    rte_pktmbuf_free(tx[i]);
                    drop(DropReason::TX_FULL);
                }
            }
        }
        if (now >= next_age) {
            _neigh.age(now, max_age);
            next_age = now + age_every;
        }
        if (got) {
            idle = 0;
        } else if (_cfg.idle_backoff && ++idle >= _cfg.idle_polls_before_sleep) {
            // The one syscall on the worker: a short sleep keeps a core free on small lab
            // machines. Off on dedicated cores ([dataplane] idle_backoff = false).
            rte_delay_us_sleep(_cfg.idle_sleep_us);
            _c.idle_sleeps.add();
        }
    }
}

int L2Worker::launch(void* arg) {
    auto* a = static_cast<LaunchArg*>(arg);
    a->worker->run(*a->stop);
    return 0;
}

std::string L2Worker::summary() const {
    uint64_t rx = 0, tx = 0;
    for (int i = 0; i < _cfg.n_ports; ++i) {
        rx += _c.ports[i].rx_packets.get();
        tx += _c.ports[i].tx_packets.get();
    }
    std::string s = "rx=" + std::to_string(rx) + " tx=" + std::to_string(tx) +
                    " arp_answered=" + std::to_string(_c.arp_requests_answered.get()) +
                    " arp_replies=" + std::to_string(_c.arp_replies_received.get()) +
                    " neighbours_learned=" + std::to_string(_c.neighbours_learned.get()) +
                    " icmp_echo_replies=" + std::to_string(_c.icmp_echo_replies.get()) +
                    " drops=" + std::to_string(_c.total_drops());
    for (size_t i = 1; i < net::DROP_REASON_COUNT; ++i) {
        uint64_t v = _c.drops[i].get();
        if (v) s += std::string(" drop_") + net::drop_reason_name(DropReason(i)) + "=" + std::to_string(v);
    }
    s += " polls=" + std::to_string(_c.polls.get()) +
         " idle_sleeps=" + std::to_string(_c.idle_sleeps.get());
    return s;
}

}  // namespace tlb::app
