#include "tcp/counters.hpp"

namespace tlb::tcp {

const char* const* counter_names() {
    static const char* const NAMES[] = {
#define TLB_TCP_X(name) #name,
        TLB_TCP_COUNTERS(TLB_TCP_X)
#undef TLB_TCP_X
    };
    static_assert(sizeof(NAMES) / sizeof(NAMES[0]) == COUNTER_COUNT);
    return NAMES;
}

}  // namespace tlb::tcp
