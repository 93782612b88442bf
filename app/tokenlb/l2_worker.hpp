// tokenlb first packet path: the worker lcore's poll loop for L2/L3 — answers ARP for the
// appliance's addresses, learns neighbours, answers ICMP echo, counts and drops everything else
// under one DropReason each. lib/dataplane will take this loop over and hand TCP to lib/tcp; until
// then TCP is counted as tcp_no_flow.
//
// Worker-path rules hold here: after start no allocation, no locks, no exceptions; the only
// syscall is the idle back-off sleep. Counters are single-writer relaxed atomics the main lcore
// may read at any time.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "net/net.hpp"

struct rte_mempool;

namespace tlb::app {

// A single-writer counter readable from another thread without a data race. The writer uses
// load+store, not a locked read-modify-write.
class Counter {
public:
    void add(uint64_t n = 1) { _v.store(_v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    uint64_t get() const { return _v.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> _v{0};
};

constexpr int MAX_WORKER_PORTS = 8;
constexpr int MAX_PORT_ADDRS = 4;

struct WorkerPort {
    std::string name;
    uint16_t port_id = 0;
    uint16_t queue = 0;
    net::MacAddr mac{};
    uint32_t addrs_be[MAX_PORT_ADDRS] = {};  // addresses the appliance owns on this port
    int n_addrs = 0;
    uint32_t subnet_be = 0;                  // port address & mask (neighbours are learned only here)
    uint32_t mask_be = 0;
    bool rx_ip_csum_hw = false;              // trust RTE_MBUF_F_RX_IP_CKSUM_GOOD

    bool owns(uint32_t ip_be) const {
        for (int i = 0; i < n_addrs; ++i)
            if (addrs_be[i] == ip_be) return true;
        return false;
    }
    bool on_link(uint32_t ip_be) const { return (ip_be & mask_be) == subnet_be; }
};

struct PortCounters {
    Counter rx_packets, rx_bytes, tx_packets, tx_bytes;
};

struct WorkerCounters {
    Counter polls, idle_sleeps;
    Counter arp_requests_answered, arp_replies_received, neighbours_learned, neighbour_evictions;
    Counter icmp_echo_replies;
    Counter drops[net::DROP_REASON_COUNT];
    PortCounters ports[MAX_WORKER_PORTS];

    uint64_t total_drops() const {
        uint64_t t = 0;
        for (const auto& d : drops) t += d.get();
        return t;
    }
};

struct WorkerConfig {
    WorkerPort ports[MAX_WORKER_PORTS];
    int n_ports = 0;
    uint16_t burst = 32;
    bool idle_backoff = true;
    uint32_t idle_polls_before_sleep = 1024;
    uint32_t idle_sleep_us = 100;
    uint64_t neighbour_max_age_s = 300;
};

class L2Worker {
public:
    L2Worker(const WorkerConfig& cfg, uint32_t neighbour_capacity = 1024)
        : _cfg(cfg), _neigh(neighbour_capacity) {}

    // The poll loop; returns when `stop` becomes true. Run on a worker lcore.
    void run(const std::atomic<bool>& stop);
    // rte_eal_remote_launch entry point; `arg` is a LaunchArg.
    struct LaunchArg {
        L2Worker* worker;
        const std::atomic<bool>* stop;
    };
    static int launch(void* arg);

    const WorkerCounters& counters() const { return _c; }
    const WorkerConfig& config() const { return _cfg; }
    // Neighbour table: owned by the worker; read it only after the worker stopped.
    const net::NeighborTable& neighbours() const { return _neigh; }

    // One line: "rx=.. tx=.. arp_answered=.. ... drops: name=N ...". Callable while running.
    std::string summary() const;

private:
    // Returns true when `m` was turned into a reply and must be transmitted on the same port.
    bool handle(int port_idx, struct rte_mbuf* m, uint64_t now_tsc);
    bool handle_arp(const WorkerPort& p, uint8_t* data, uint16_t len, uint64_t now_tsc);
    bool handle_ipv4(const WorkerPort& p, struct rte_mbuf* m, uint8_t* data, uint16_t len);
    void drop(net::DropReason r) { _c.drops[size_t(r)].add(); }

    WorkerConfig _cfg;
    net::NeighborTable _neigh;
    WorkerCounters _c;
};

}  // namespace tlb::app
