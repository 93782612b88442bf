// tokenlb drivers: port bring-up. See port.hpp for the decisions.
#include "drivers/port.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <thread>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

namespace tlb::drivers {

namespace {

bool all_hex(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    return true;
}

std::string err_str(int rc) {
    if (rc == -1) return "failed (-1; see the EAL/PMD message above)";
    int e = rc < 0 ? -rc : rc;
    return std::string(rte_strerror(e)) + " (" + std::to_string(rc) + ")";
}

}  // namespace

bool is_pci_address(std::string_view dev) {
    // [DDDD:]BB:DD.F
    size_t dot = dev.rfind('.');
    if (dot == std::string_view::npos || dot + 2 != dev.size() || !all_hex(dev.substr(dot + 1)))
        return false;
    std::string_view head = dev.substr(0, dot);
    size_t c2 = head.rfind(':');
    if (c2 == std::string_view::npos) return false;
    std::string_view devno = head.substr(c2 + 1), rest = head.substr(0, c2);
    if (devno.size() != 2 || !all_hex(devno)) return false;
    size_t c1 = rest.rfind(':');
    std::string_view bus = c1 == std::string_view::npos ? rest : rest.substr(c1 + 1);
    if (bus.size() != 2 || !all_hex(bus)) return false;
    if (c1 != std::string_view::npos) {
        std::string_view dom = rest.substr(0, c1);
        if (dom.size() != 4 || !all_hex(dom)) return false;
    }
    return true;
}

void split_vdev(std::string_view spec, std::string& name, std::string& args) {
    size_t comma = spec.find(',');
    if (comma == std::string_view::npos) {
        name.assign(spec);
        args.clear();
    } else {
        name.assign(spec.substr(0, comma));
        args.assign(spec.substr(comma + 1));
    }
}

std::string vdev_spec_for_queues(std::string_view spec, uint16_t queues) {
    std::string s(spec);
    if (queues <= 1 || s.rfind("net_af_packet", 0) != 0) return s;
    if (s.find("qpairs=") != std::string::npos) return s;
    return s + ",qpairs=" + std::to_string(queues);
}

uint32_t min_mbufs(uint16_t rxq, uint16_t txq, uint16_t rx_desc, uint16_t tx_desc, uint32_t burst) {
    return uint32_t(rxq) * rx_desc + uint32_t(txq) * tx_desc + burst * (uint32_t(rxq) + txq);
}

uint32_t mempool_cache_size(uint32_t mbufs, uint32_t min_needed, uint32_t lcores, uint32_t wanted) {
    // mbufs parked in lcore caches are not available to rx rings: only spend the surplus.
    if (lcores == 0) lcores = 1;
    uint32_t spare = mbufs > min_needed ? (mbufs - min_needed) / lcores : 0;
    uint32_t c = std::min<uint32_t>({wanted, spare, uint32_t(RTE_MEMPOOL_CACHE_MAX_SIZE)});
    // rte_mempool rejects a cache larger than size / 1.5.
    while (c > 0 && uint64_t(c) * 3 / 2 > mbufs) c /= 2;
    return c;
}

OffloadChoice choose_offloads(uint64_t rx_capa, uint64_t tx_capa) {
    OffloadChoice c;
    if (rx_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) {
        c.rx |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
        c.rx_ip_csum = true;
    }
    if (rx_capa & RTE_ETH_RX_OFFLOAD_TCP_CKSUM) {
        c.rx |= RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
        c.rx_l4_csum = true;
    }
    if (tx_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) {
        c.tx |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
        c.tx_csum.ipv4_cksum = true;
    }
    if (tx_capa & RTE_ETH_TX_OFFLOAD_TCP_CKSUM) {
        c.tx |= RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
        c.tx_csum.tcp_cksum = true;
    }
    if (tx_capa & RTE_ETH_TX_OFFLOAD_UDP_CKSUM) {
        c.tx |= RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
        c.tx_csum.udp_cksum = true;
    }
    // Chained mbufs on tx let the tcp sender send header + payload segments without a copy.
    if (tx_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) c.tx |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
    return c;
}

Port::~Port() { close(); }

uint32_t Port::address_be() const { return rte_cpu_to_be_32(_cfg.address.addr); }

void Port::open(const OpenOptions& opt) {
    if (_started) return;
    const std::string where = "port '" + _cfg.name + "' (" + _cfg.device + "): ";
    _rxq = _cfg.rx_queues ? _cfg.rx_queues : 1;
    _txq = _cfg.tx_queues ? _cfg.tx_queues : 1;

    // 1. Find or attach the device.
    int rc;
    if (is_pci_address(_cfg.device)) {
        rc = rte_eth_dev_get_port_by_name(_cfg.device.c_str(), &_port_id);
        if (rc != 0)
            throw PortError(where + "PCI device not found by EAL (bound to vfio-pci? --no-pci in "
                                    "[eal] args?)");
    } else {
        std::string spec = vdev_spec_for_queues(_cfg.device, std::max(_rxq, _txq));
        std::string args;
        split_vdev(spec, _vdev_name, args);
        if (rte_eth_dev_get_port_by_name(_vdev_name.c_str(), &_port_id) != 0) {
            rc = rte_eal_hotplug_add("vdev", _vdev_name.c_str(), args.c_str());
            if (rc != 0) throw PortError(where + "vdev attach failed: " + err_str(rc));
            _hotplugged = true;
            rc = rte_eth_dev_get_port_by_name(_vdev_name.c_str(), &_port_id);
            if (rc != 0) throw PortError(where + "vdev attached but no ethdev named " + _vdev_name);
        }
    }
    _attached = true;

    rte_eth_dev_info info{};
    rc = rte_eth_dev_info_get(_port_id, &info);
    if (rc != 0) throw PortError(where + "dev_info_get: " + err_str(rc));
    _driver = info.driver_name ? info.driver_name : "?";
    if (_rxq > info.max_rx_queues || _txq > info.max_tx_queues)
        throw PortError(where + "wants " + std::to_string(_rxq) + " rx / " + std::to_string(_txq) +
                        " tx queues, device has " + std::to_string(info.max_rx_queues) + " / " +
                        std::to_string(info.max_tx_queues));

    // 2. Mempool on the device's socket.
    int socket = rte_eth_dev_socket_id(_port_id);
    if (socket < 0) socket = int(rte_socket_id());
    uint32_t need = min_mbufs(_rxq, _txq, _cfg.rx_desc, _cfg.tx_desc, opt.burst);
    if (_cfg.mbufs < need)
        throw PortError(where + "mbufs = " + std::to_string(_cfg.mbufs) + " is too small for " +
                        std::to_string(_rxq) + "x" + std::to_string(_cfg.rx_desc) + " rx + " +
                        std::to_string(_txq) + "x" + std::to_string(_cfg.tx_desc) +
                        " tx descriptors; need at least " + std::to_string(need));
    uint32_t cache = mempool_cache_size(_cfg.mbufs, need, opt.lcores, opt.mempool_cache);
    uint32_t data_room = RTE_MBUF_DEFAULT_BUF_SIZE;
    if (uint32_t(_cfg.mtu) + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN + RTE_PKTMBUF_HEADROOM + 8 >
        data_room)
        data_room = uint32_t(_cfg.mtu) + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN +
                    RTE_PKTMBUF_HEADROOM + 8;
    std::string pool_name = "mp_" + _cfg.name;
    if (pool_name.size() >= RTE_MEMPOOL_NAMESIZE) pool_name.resize(RTE_MEMPOOL_NAMESIZE - 1);
    _pool = rte_pktmbuf_pool_create(pool_name.c_str(), _cfg.mbufs, cache, 0, uint16_t(data_room),
                                    socket);
    if (!_pool)
        throw PortError(where + "mempool of " + std::to_string(_cfg.mbufs) + " mbufs: " +
                        err_str(-rte_errno) + " (raise [eal] -m?)");

    // 3. Configure with the offloads the device has.
    _offloads = choose_offloads(info.rx_offload_capa, info.tx_offload_capa);
    rte_eth_conf conf{};
    conf.rxmode.offloads = _offloads.rx;
    conf.txmode.offloads = _offloads.tx;
    if (_rxq > 1 && info.flow_type_rss_offloads != 0) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf =
            (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP) & info.flow_type_rss_offloads;
    }
    rc = rte_eth_dev_configure(_port_id, _rxq, _txq, &conf);
    if (rc != 0) throw PortError(where + "configure: " + err_str(rc));
    _configured = true;

    uint16_t mtu = 0;
    if (rte_eth_dev_get_mtu(_port_id, &mtu) == 0 && mtu != _cfg.mtu) {
        rc = rte_eth_dev_set_mtu(_port_id, _cfg.mtu);
        if (rc != 0 && rc != -ENOTSUP)
            throw PortError(where + "set MTU " + std::to_string(_cfg.mtu) + ": " + err_str(rc));
    }

    uint16_t nb_rxd = _cfg.rx_desc, nb_txd = _cfg.tx_desc;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(_port_id, &nb_rxd, &nb_txd);
    if (rc != 0) throw PortError(where + "descriptor counts: " + err_str(rc));
    rte_eth_rxconf rxconf = info.default_rxconf;
    rxconf.offloads = _offloads.rx;
    for (uint16_t q = 0; q < _rxq; ++q) {
        rc = rte_eth_rx_queue_setup(_port_id, q, nb_rxd, unsigned(socket), &rxconf, _pool);
        if (rc != 0) throw PortError(where + "rx queue " + std::to_string(q) + ": " + err_str(rc));
    }
    rte_eth_txconf txconf = info.default_txconf;
    txconf.offloads = _offloads.tx;
    for (uint16_t q = 0; q < _txq; ++q) {
        rc = rte_eth_tx_queue_setup(_port_id, q, nb_txd, unsigned(socket), &txconf);
        if (rc != 0) throw PortError(where + "tx queue " + std::to_string(q) + ": " + err_str(rc));
    }

    rc = rte_eth_dev_start(_port_id);
    if (rc != 0) throw PortError(where + "start: " + err_str(rc));
    _started = true;

    // Promiscuous off: we answer for our own MAC (and broadcast) only. Some PMDs cannot change it;
    // the data path filters on destination MAC anyway.
    rc = rte_eth_promiscuous_disable(_port_id);
    if (rc != 0 && rc != -ENOTSUP)
        std::fprintf(stderr, "%spromiscuous_disable: %s (ignored)\n", where.c_str(),
                     err_str(rc).c_str());
    rc = rte_eth_macaddr_get(_port_id, &_mac);
    if (rc != 0) throw PortError(where + "macaddr_get: " + err_str(rc));
}

bool Port::wait_link(uint32_t timeout_ms) {
    if (!_started) return false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        rte_eth_link link{};
        if (rte_eth_link_get_nowait(_port_id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP)
            return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

void Port::close() {
    if (_attached) {
        if (_started) rte_eth_dev_stop(_port_id);
        if (_configured || _started || _hotplugged) rte_eth_dev_close(_port_id);
        if (_hotplugged) rte_eal_hotplug_remove("vdev", _vdev_name.c_str());
    }
    _started = _configured = _attached = _hotplugged = false;
    if (_pool) {
        rte_mempool_free(_pool);
        _pool = nullptr;
    }
}

PortStats Port::stats() const {
    PortStats s;
    rte_eth_stats st{};
    if (_attached && rte_eth_stats_get(_port_id, &st) == 0) {
        s.ipackets = st.ipackets;
        s.opackets = st.opackets;
        s.ibytes = st.ibytes;
        s.obytes = st.obytes;
        s.imissed = st.imissed;
        s.ierrors = st.ierrors;
        s.oerrors = st.oerrors;
        s.rx_nombuf = st.rx_nombuf;
    }
    return s;
}

std::string Port::describe() const {
    char mac[RTE_ETHER_ADDR_FMT_SIZE];
    rte_ether_format_addr(mac, sizeof mac, &_mac);
    std::string link = "link ?";
    if (_started) {
        rte_eth_link l{};
        // (rte_eth_link_to_str is still experimental in 22.11.)
        if (rte_eth_link_get_nowait(_port_id, &l) == 0)
            link = l.link_status == RTE_ETH_LINK_UP
                       ? "link up " + (l.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN
                                           ? std::string("?")
                                           : std::to_string(l.link_speed)) +
                             " Mbps"
                       : std::string("link down");
    }
    auto yn = [](bool b) { return b ? "hw" : "sw"; };
    return "port " + _cfg.name + " id " + std::to_string(_port_id) + " dev " + _cfg.device +
           " driver " + _driver + " mac " + mac + " addr " +
           config::ipv4_to_string(_cfg.address.addr) + "/" +
           std::to_string(_cfg.address.prefix_len) + " queues " + std::to_string(_rxq) + "/" +
           std::to_string(_txq) + " csum rx-ip " + yn(_offloads.rx_ip_csum) + " rx-l4 " +
           yn(_offloads.rx_l4_csum) + " tx-ip " + yn(_offloads.tx_csum.ipv4_cksum) + " tx-tcp " +
           yn(_offloads.tx_csum.tcp_cksum) + " " + link;
}

}  // namespace tlb::drivers
