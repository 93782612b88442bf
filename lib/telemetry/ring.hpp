// Single-producer / single-consumer ring over a preallocated array: worker -> control plane.
//
// Decision (DESIGN.md §5 says "SPSC rte_ring"): we use our own ring rather than rte_ring because
// the records are fixed-size PODs copied by value (rte_ring carries pointers, so we would also
// need a mempool of records and a second ring to return them), because it must work in unit tests
// and in tools without an initialised EAL, and because the SPSC case is a few lines: the same
// head/tail protocol as rte_ring with RTE_RING_F_SP_ENQ | RTE_RING_F_SC_DEQ. The producer owns
// `_head`, the consumer owns `_tail`; each reads the other's index with acquire and publishes its
// own with release, so a slot is never read before it is fully written nor overwritten before it
// was read. Indices run freely (uint64, never wrap in practice) and are masked on use.
//
// try_push never blocks and never allocates: when full it returns false and the caller counts a
// drop (the worker must not wait for a slow disk or a stuck control thread).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace tlb::telemetry {

template <typename T, size_t N>
class SpscRing {
    static_assert(N >= 2 && (N & (N - 1)) == 0, "capacity must be a power of two");
    static_assert(std::is_trivially_copyable_v<T>, "records are copied by value");

public:
    static constexpr size_t CAPACITY = N;

    // Producer side.
    bool try_push(const T& v) {
        uint64_t h = _head.load(std::memory_order_relaxed);
        if (h - _tail_cache >= N) {
            _tail_cache = _tail.load(std::memory_order_acquire);
            if (h - _tail_cache >= N) {
                _dropped.store(_dropped.load(std::memory_order_relaxed) + 1,
                               std::memory_order_relaxed);
                return false;
            }
        }
        _slots[h & (N - 1)] = v;
        _head.store(h + 1, std::memory_order_release);
        return true;
    }

    // Consumer side: copies up to max records into out, returns how many.
    size_t pop(T* out, size_t max) {
        uint64_t t = _tail.load(std::memory_order_relaxed);
        uint64_t h = _head.load(std::memory_order_acquire);
        size_t n = 0;
        while (t != h && n < max) out[n++] = _slots[t++ & (N - 1)];
        _tail.store(t, std::memory_order_release);
        return n;
    }

    // Any thread (approximate while both sides run).
    size_t size() const {
        return size_t(_head.load(std::memory_order_acquire) - _tail.load(std::memory_order_acquire));
    }
    uint64_t pushed() const { return _head.load(std::memory_order_relaxed); }
    uint64_t dropped() const { return _dropped.load(std::memory_order_relaxed); }

private:
    // Producer and consumer indices on separate cache lines (no false sharing).
    alignas(64) std::atomic<uint64_t> _head{0};
    uint64_t _tail_cache = 0;  // producer's last view of _tail
    std::atomic<uint64_t> _dropped{0};
    alignas(64) std::atomic<uint64_t> _tail{0};
    alignas(64) T _slots[N];
};

}  // namespace tlb::telemetry
