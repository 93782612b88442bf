// Per-worker flow table and object pools.
//
// Decision: our own open-addressing table rather than rte_hash. Each worker owns its table
// (single writer, single reader), so rte_hash's lock-free multi-writer machinery and its
// EAL-heap allocation buy nothing, and our own table (a) runs in unit tests and fuzzers without
// EAL, (b) stores the value (a connection handle) inline next to the key, one 16-byte slot, four
// per cache line, (c) deletes by backward shift (no tombstones, so probe lengths do not degrade
// under churn — HAProxy and Seastar avoid tombstone tables for the same reason). Linear probing
// with the load kept <= 50% (capacity = next power of two >= 2 * max entries) keeps the average
// successful probe ~1.5 slots. The hash is a seeded multiply-mix of the 4-tuple: clients choose
// their ports and addresses, so an unseeded or linear hash (CRC) could be flooded into one
// probe chain; the seed is random per process.
//
// All memory is allocated by the constructor (control plane); insert/lookup/erase never allocate.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>

namespace tlb::tcp {

// A connection's identity from the appliance's side. Network byte order, as in the packet, so a
// received segment's key is (src ip, dst ip, src port, dst port) with no conversion.
struct FlowKey {
    uint32_t remote_ip_be = 0;
    uint32_t local_ip_be = 0;
    uint16_t remote_port_be = 0;
    uint16_t local_port_be = 0;
    bool operator==(const FlowKey& o) const {
        return remote_ip_be == o.remote_ip_be && local_ip_be == o.local_ip_be &&
               remote_port_be == o.remote_port_be && local_port_be == o.local_port_be;
    }
};
static_assert(sizeof(FlowKey) == 12);

// Connection handles stored in the table: bit 31 says which pool, the rest is the pool index.
constexpr uint32_t HANDLE_BACKEND = 0x80000000u;
constexpr uint32_t HANDLE_INVALID = 0xffffffffu;
constexpr uint32_t handle_client(uint32_t idx) { return idx; }
constexpr uint32_t handle_backend(uint32_t idx) { return idx | HANDLE_BACKEND; }
constexpr bool handle_is_backend(uint32_t h) { return (h & HANDLE_BACKEND) != 0; }
constexpr uint32_t handle_index(uint32_t h) { return h & ~HANDLE_BACKEND; }

class FlowTable {
public:
    static constexpr uint32_t NOT_FOUND = HANDLE_INVALID;
    // Room for `max_entries` flows; seed randomises the hash (0 = fixed seed, for tests).
    explicit FlowTable(uint32_t max_entries, uint64_t seed = 0);

    uint32_t lookup(const FlowKey& k) const;
    // Start loading the key's home slot: call for every packet of an rx burst, then look them up
    // (hides the cache miss when the table is larger than the cache).
    void prefetch(const FlowKey& k) const { __builtin_prefetch(&_slots[hash(k) & _mask]); }
    // 0 inserted; -1 full (max_entries reached); -2 key already present (value unchanged).
    int insert(const FlowKey& k, uint32_t value);
    bool erase(const FlowKey& k);
    uint32_t size() const { return _size; }
    uint32_t max_entries() const { return _max; }
    uint32_t capacity() const { return _mask + 1; }
    // Average probe length of a successful lookup over all entries (tests, telemetry).
    double mean_probe() const;
    uint32_t hash(const FlowKey& k) const;

private:
    struct Slot {
        FlowKey key;
        uint32_t value;  // NOT_FOUND = empty
    };
    static_assert(sizeof(Slot) == 16);
    std::unique_ptr<Slot[]> _slots;
    uint32_t _mask = 0;
    uint32_t _size = 0;
    uint32_t _max = 0;
    uint64_t _seed = 0;
};

// Fixed-capacity pool of T with a LIFO free list of indices (recently freed objects are warm in
// cache). Objects are default-constructed once by the constructor and recycled; alloc() does not
// construct, callers reset what they use.
template <class T>
class ObjectPool {
public:
    explicit ObjectPool(uint32_t n) : _objs(new T[n]), _free(new uint32_t[n]), _n(n), _top(n) {
        for (uint32_t i = 0; i < n; i++) _free[i] = n - 1 - i;  // alloc() hands out 0, 1, 2...
    }
    T* alloc() { return _top == 0 ? nullptr : &_objs[_free[--_top]]; }
    void free(T* p) { _free[_top++] = index(p); }
    uint32_t index(const T* p) const { return uint32_t(p - _objs.get()); }
    T* at(uint32_t i) { return &_objs[i]; }
    const T* at(uint32_t i) const { return &_objs[i]; }
    uint32_t capacity() const { return _n; }
    uint32_t in_use() const { return _n - _top; }
    uint32_t available() const { return _top; }

private:
    std::unique_ptr<T[]> _objs;
    std::unique_ptr<uint32_t[]> _free;
    uint32_t _n;
    uint32_t _top;
};

}  // namespace tlb::tcp
