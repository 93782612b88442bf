#include "tcp/flow_table.hpp"

namespace tlb::tcp {

namespace {
inline uint64_t mix(uint64_t a, uint64_t b) {
    __uint128_t p = __uint128_t(a) * b;
    return uint64_t(p) ^ uint64_t(p >> 64);
}
}  // namespace

FlowTable::FlowTable(uint32_t max_entries, uint64_t seed) : _max(max_entries), _seed(seed) {
    uint32_t cap = 16;
    while (cap < 2 * uint64_t(max_entries)) cap <<= 1;
    _mask = cap - 1;
    _slots.reset(new Slot[cap]);
    for (uint32_t i = 0; i < cap; i++) _slots[i].value = NOT_FOUND;
}

uint32_t FlowTable::hash(const FlowKey& k) const {
    uint64_t a = uint64_t(k.remote_ip_be) | (uint64_t(k.local_ip_be) << 32);
    uint64_t b = uint64_t(k.remote_port_be) | (uint64_t(k.local_port_be) << 16);
    uint64_t h = mix(a ^ _seed ^ 0x9e3779b97f4a7c15ULL, b ^ (_seed >> 7) ^ 0xd6e8feb86659fd93ULL);
    h = mix(h, 0x94d049bb133111ebULL);
    return uint32_t(h ^ (h >> 32));
}

uint32_t FlowTable::lookup(const FlowKey& k) const {
    uint32_t i = hash(k) & _mask;
    for (;;) {
        const Slot& s = _slots[i];
        if (s.value == NOT_FOUND) return NOT_FOUND;
        if (s.key == k) return s.value;
        i = (i + 1) & _mask;
    }
}

int FlowTable::insert(const FlowKey& k, uint32_t value) {
    uint32_t i = hash(k) & _mask;
    for (;;) {
        Slot& s = _slots[i];
        if (s.value == NOT_FOUND) break;
        if (s.key == k) return -2;
        i = (i + 1) & _mask;
    }
    if (_size >= _max) return -1;
    _slots[i].key = k;
    _slots[i].value = value;
    _size++;
    return 0;
}

bool FlowTable::erase(const FlowKey& k) {
    uint32_t i = hash(k) & _mask;
    for (;;) {
        Slot& s = _slots[i];
        if (s.value == NOT_FOUND) return false;
        if (s.key == k) break;
        i = (i + 1) & _mask;
    }
    // Backward-shift deletion (Knuth 6.4 Algorithm R): move later entries of the cluster into
    // the hole when their home slot does not lie cyclically in (hole, j].
    uint32_t hole = i;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & _mask;
        Slot& s = _slots[j];
        if (s.value == NOT_FOUND) break;
        uint32_t home = hash(s.key) & _mask;
        bool in_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (in_between) continue;
        _slots[hole] = s;
        hole = j;
    }
    _slots[hole].value = NOT_FOUND;
    _size--;
    return true;
}

double FlowTable::mean_probe() const {
    if (_size == 0) return 0;
    uint64_t total = 0;
    for (uint32_t i = 0; i <= _mask; i++) {
        if (_slots[i].value == NOT_FOUND) continue;
        uint32_t home = hash(_slots[i].key) & _mask;
        total += ((i - home) & _mask) + 1;
    }
    return double(total) / _size;
}

}  // namespace tlb::tcp
