// drivers unit tests: the pure bring-up helpers, and a real port brought up, used and closed on
// a net_ring vdev (a loopback ring: what is sent on queue 0 is received on queue 0), with EAL in
// memory only (--no-huge --no-shconf), so no hugepages, no NIC and no shared files are needed.
#include "drivers/port.hpp"

#include <gtest/gtest.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <string>
#include <vector>

using namespace tlb;
using namespace tlb::drivers;

TEST(DriverHelpers, PciAddresses) {
    EXPECT_TRUE(is_pci_address("0000:3b:00.0"));
    EXPECT_TRUE(is_pci_address("3b:00.1"));
    EXPECT_TRUE(is_pci_address("0000:AF:1f.7"));
    EXPECT_FALSE(is_pci_address("net_af_packet0,iface=tlbc0"));
    EXPECT_FALSE(is_pci_address("net_ring0"));
    EXPECT_FALSE(is_pci_address("0000:3b:00"));
    EXPECT_FALSE(is_pci_address("000:3b:00.0"));
    EXPECT_FALSE(is_pci_address("0000:3b:0.0"));
    EXPECT_FALSE(is_pci_address("0000:3g:00.0"));
    EXPECT_FALSE(is_pci_address(""));
}

TEST(DriverHelpers, VdevSpecs) {
    std::string name, args;
    split_vdev("net_af_packet0,iface=tlbc0,qpairs=2", name, args);
    EXPECT_EQ(name, "net_af_packet0");
    EXPECT_EQ(args, "iface=tlbc0,qpairs=2");
    split_vdev("net_ring0", name, args);
    EXPECT_EQ(name, "net_ring0");
    EXPECT_EQ(args, "");
    EXPECT_EQ(vdev_spec_for_queues("net_af_packet0,iface=x", 1), "net_af_packet0,iface=x");
    EXPECT_EQ(vdev_spec_for_queues("net_af_packet0,iface=x", 4), "net_af_packet0,iface=x,qpairs=4");
    EXPECT_EQ(vdev_spec_for_queues("net_af_packet0,iface=x,qpairs=2", 4),
              "net_af_packet0,iface=x,qpairs=2");
    EXPECT_EQ(vdev_spec_for_queues("net_tap0,iface=t", 4), "net_tap0,iface=t");
}

TEST(DriverHelpers, MempoolSizing) {
    EXPECT_EQ(min_mbufs(1, 1, 1024, 1024, 32), 2048u + 64u);
    EXPECT_EQ(min_mbufs(4, 4, 512, 512, 32), 4096u + 256u);
    // Plenty: the wanted cache; tight: only the surplus above the minimum; none: no cache.
    EXPECT_EQ(mempool_cache_size(16383, 2112, 2, 256), 256u);
    EXPECT_EQ(mempool_cache_size(2112 + 100, 2112, 2, 256), 50u);
    EXPECT_EQ(mempool_cache_size(2112, 2112, 2, 256), 0u);
    EXPECT_EQ(mempool_cache_size(100000, 10, 1, 4096), uint32_t(RTE_MEMPOOL_CACHE_MAX_SIZE));
    // Never more than size / 1.5 (rte_mempool's rule).
    uint32_t c = mempool_cache_size(300, 0, 1, 256);
    EXPECT_LE(uint64_t(c) * 3 / 2, 300u);
    EXPECT_GT(c, 0u);
}

TEST(DriverHelpers, OffloadChoice) {
    auto none = choose_offloads(0, 0);
    EXPECT_EQ(none.rx, 0u);
    EXPECT_EQ(none.tx, 0u);
    EXPECT_FALSE(none.tx_csum.ipv4_cksum || none.tx_csum.tcp_cksum || none.rx_ip_csum);
    EXPECT_EQ(net::csum_mode_for(none.tx_csum), net::CsumMode::SOFTWARE);
    auto all = choose_offloads(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM |
                                   RTE_ETH_RX_OFFLOAD_SCATTER,
                               RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM |
                                   RTE_ETH_TX_OFFLOAD_TCP_TSO);
    EXPECT_EQ(all.rx, RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM);
    EXPECT_EQ(all.tx, RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_TCP_CKSUM);
    EXPECT_TRUE(all.rx_ip_csum && all.rx_l4_csum);
    EXPECT_EQ(net::csum_mode_for(all.tx_csum), net::CsumMode::OFFLOAD_ALL);
    auto l4 = choose_offloads(0, RTE_ETH_TX_OFFLOAD_TCP_CKSUM);
    EXPECT_EQ(net::csum_mode_for(l4.tx_csum), net::CsumMode::OFFLOAD_L4);
}

// ---- with EAL --------------------------------------------------------------------------------

namespace {
bool eal_up() {
    static int rc = [] {
        // --in-memory does not combine with --no-huge; --no-shconf (no shared files, no lock)
        // and an own prefix keep concurrent runs and a running appliance apart.
        std::vector<std::string> a = {"drivers_test", "--no-huge", "-m", "256", "--no-pci",
                                      "--no-shconf", "--file-prefix", "tlb-drivers-test",
                                      "--no-telemetry", "-l", "0", "--log-level", "lib.eal:error"};
        std::vector<char*> argv;
        for (auto& s : a) argv.push_back(s.data());
        return rte_eal_init(int(argv.size()), argv.data());
    }();
    return rc >= 0;
}

config::Port ring_port(const std::string& name, const std::string& dev) {
    config::Port p;
    p.name = name;
    p.device = dev;
    p.address.addr = 0x0a0a0001;  // 10.10.0.1
    p.address.prefix_len = 24;
    p.rx_desc = 256;
    p.tx_desc = 256;
    p.mbufs = 2047;
    return p;
}
}  // namespace

TEST(Port, RingVdevLoopbackLifecycle) {
    ASSERT_TRUE(eal_up()) << "rte_eal_init failed";
    Port port(ring_port("ring", "net_ring0"));
    OpenOptions oo;
    oo.lcores = 1;
    ASSERT_NO_THROW(port.open(oo));
    ASSERT_TRUE(port.is_open());
    EXPECT_NE(port.pool(), nullptr);
    EXPECT_EQ(port.driver_name(), "net_ring");
    EXPECT_TRUE(port.wait_link(1000));
    EXPECT_EQ(port.address_be(), rte_cpu_to_be_32(0x0a0a0001));
    EXPECT_NE(port.describe().find("port ring"), std::string::npos);

    // Send an ARP request built by lib/net; the ring hands it back on rx.
    rte_mbuf* m = rte_pktmbuf_alloc(port.pool());
    ASSERT_NE(m, nullptr);
    uint8_t* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, net::ARP_FRAME_LEN));
    ASSERT_NE(d, nullptr);
    ASSERT_EQ(net::write_arp_request(d, net::ARP_FRAME_LEN, port.mac(), port.address_be(),
                                     net::ipv4_be(10, 10, 0, 2)),
              net::ARP_FRAME_LEN);
    ASSERT_EQ(rte_eth_tx_burst(port.id(), 0, &m, 1), 1);
    rte_mbuf* rx[4];
    uint16_t n = rte_eth_rx_burst(port.id(), 0, rx, 4);
    ASSERT_EQ(n, 1);
    net::ArpInfo a;
    EXPECT_EQ(net::parse_arp(rte_pktmbuf_mtod(rx[0], uint8_t*), rte_pktmbuf_data_len(rx[0]), a),
              net::DropReason::NONE);
    EXPECT_EQ(a.tpa_be, net::ipv4_be(10, 10, 0, 2));
    rte_pktmbuf_free(rx[0]);
    auto st = port.stats();
    EXPECT_EQ(st.opackets, 1u);
    EXPECT_EQ(st.ipackets, 1u);
    // Every mbuf is back in the pool.
    EXPECT_EQ(rte_mempool_avail_count(port.pool()), 2047u);

    uint16_t id = port.id();
    port.close();
    EXPECT_FALSE(port.is_open());
    EXPECT_FALSE(rte_eth_dev_is_valid_port(id));  // hot-plugged vdev detached again
    port.close();                                   // idempotent

    // The same device can be brought up again after a clean close (restart without leaks).
    Port again(ring_port("ring2", "net_ring0"));
    ASSERT_NO_THROW(again.open(oo));
    again.close();
}

TEST(Port, BadSpecsAreErrorsNotCrashes) {
    ASSERT_TRUE(eal_up());
    OpenOptions oo;
    oo.lcores = 1;
    {
        Port p(ring_port("nodev", "net_nosuchdriver0"));
        EXPECT_THROW(p.open(oo), PortError);
        EXPECT_FALSE(p.is_open());
    }
    {
        Port p(ring_port("nopci", "0000:99:00.0"));
        EXPECT_THROW(p.open(oo), PortError);
    }
    {
        auto cfg = ring_port("small", "net_ring1");
        cfg.mbufs = 100;  // fewer than the rings hold
        Port p(cfg);
        try {
            p.open(oo);
            ADD_FAILURE() << "expected PortError";
        } catch (const PortError& e) {
            EXPECT_NE(std::string(e.what()).find("mbufs"), std::string::npos) << e.what();
        }
        EXPECT_FALSE(p.is_open());
    }
    {
        auto cfg = ring_port("queues", "net_ring2");
        cfg.rx_queues = 64;  // net_ring vdevs have fewer
        Port p(cfg);
        EXPECT_THROW(p.open(oo), PortError);
    }
}
