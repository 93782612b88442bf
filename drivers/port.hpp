// tokenlb drivers: bring-up of one DPDK ethdev port from its config::Port section.
//
// Works for any PMD: a PCI device (probed by EAL at init unless --no-pci) or a virtual device
// given as a vdev spec ("net_af_packet0,iface=tlbc0", "net_tap0,iface=x", "net_memif0,...",
// "net_ring0", "net_pcap0,..."), which is hot-plugged here with rte_eal_hotplug_add when EAL was
// not already given it with --vdev. Decisions, following DPDK's examples (l3fwd, testpmd):
// - one mempool per port, sized from config (Port.mbufs), on the device's NUMA socket; the size
//   is checked against what the queues can hold so rx never starves silently;
// - offloads are requested only when the device reports them (rx IPv4/TCP checksum, tx IPv4/TCP/UDP
//   checksum); what was granted is exported as net::TxOffloads / rx flags so the data path picks
//   hardware or software checksums per port. af_packet, for one, reports none;
// - RSS only when rx_queues > 1 and the device has it; af_packet gets qpairs=N added to its spec;
// - promiscuous mode off: the appliance answers for its own MAC only;
// - link wait polls rte_eth_link_get_nowait with a timeout; a link still down is reported, not fatal
//   (a veth peer or cable can come up later);
// - close() stops, closes, detaches a hot-plugged vdev and frees the pool; it is idempotent.
// All of this is control-plane code: it may throw PortError. The data path only uses id(), pool(),
// mac() and the offload flags.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "net/net.hpp"

struct rte_mempool;

namespace tlb::drivers {

class PortError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// ---- pure helpers (no EAL), unit-tested --------------------------------------------------------

// "0000:3b:00.0" or "3b:00.0" (domain optional).
bool is_pci_address(std::string_view dev);
// Split a vdev spec "name,k=v,k2=v2" into its name and its argument string ("" when none).
void split_vdev(std::string_view spec, std::string& name, std::string& args);
// af_packet needs qpairs=N for N queue pairs; other specs are returned unchanged.
std::string vdev_spec_for_queues(std::string_view spec, uint16_t queues);
// Fewest mbufs that keep every rx ring full and every tx ring in flight, plus a burst of slack per
// queue for packets the worker holds while replying (the same rule lib/config validates).
uint32_t min_mbufs(uint16_t rxq, uint16_t txq, uint16_t rx_desc, uint16_t tx_desc, uint32_t burst);
// Per-lcore mempool cache that fits in what is left above min_mbufs (and rte_mempool's limits).
uint32_t mempool_cache_size(uint32_t mbufs, uint32_t min_needed, uint32_t lcores, uint32_t wanted);

struct OffloadChoice {
    uint64_t rx = 0;               // RTE_ETH_RX_OFFLOAD_* requested
    uint64_t tx = 0;               // RTE_ETH_TX_OFFLOAD_* requested
    net::TxOffloads tx_csum;       // what the data path may leave to the NIC
    bool rx_ip_csum = false;       // NIC validates IPv4 header checksums (mbuf flags)
    bool rx_l4_csum = false;       // NIC validates TCP/UDP checksums
};
// Choose the offloads to request from the device's capabilities.
OffloadChoice choose_offloads(uint64_t rx_capa, uint64_t tx_capa);

// ---- a port ------------------------------------------------------------------------------------

struct PortStats {
    uint64_t ipackets = 0, opackets = 0, ibytes = 0, obytes = 0;
    uint64_t imissed = 0, ierrors = 0, oerrors = 0, rx_nombuf = 0;
};

struct OpenOptions {
    uint32_t mempool_cache = 256;  // per-lcore mbuf cache
    uint32_t lcores = 2;           // lcores that allocate from the pool (cache sizing)
    uint32_t burst = 32;           // worker rx burst ([dataplane] burst)
};

class Port {
public:
    explicit Port(const config::Port& cfg) : _cfg(cfg) {}
    ~Port();
    Port(const Port&) = delete;
    Port& operator=(const Port&) = delete;

    // Attach (hot-plug vdevs), create the mempool, configure queues and offloads, start.
    // Throws PortError naming the port and the failing step. Requires EAL.
    void open(const OpenOptions& opt = {});
    // Poll the link until it is up or `timeout_ms` passed. true when up.
    bool wait_link(uint32_t timeout_ms);
    // Stop, close, detach, free. Safe to call twice and on a port that failed to open.
    void close();

    bool is_open() const { return _started; }
    uint16_t id() const { return _port_id; }
    rte_mempool* pool() const { return _pool; }
    const net::MacAddr& mac() const { return _mac; }
    const OffloadChoice& offloads() const { return _offloads; }
    const config::Port& config() const { return _cfg; }
    uint32_t address_be() const;
    uint16_t rx_queues() const { return _rxq; }
    uint16_t tx_queues() const { return _txq; }
    std::string driver_name() const { return _driver; }

    PortStats stats() const;
    // One line for logs: name, device, port id, driver, MAC, queues, offloads, link.
    std::string describe() const;

private:
    config::Port _cfg;
    uint16_t _port_id = 0xffff;
    bool _attached = false;
    bool _hotplugged = false;     // we attached the vdev, so we detach it
    bool _configured = false;
    bool _started = false;
    std::string _vdev_name;
    std::string _driver;
    rte_mempool* _pool = nullptr;
    net::MacAddr _mac{};
    OffloadChoice _offloads;
    uint16_t _rxq = 0, _txq = 0;
};

}  // namespace tlb::drivers
