#include "tcp/timer_wheel.hpp"

namespace tlb::tcp {

TimerWheel::TimerWheel(uint32_t slots, uint64_t tick_us, uint64_t now_us)
    : _tick_us(tick_us ? tick_us : 1) {
    uint32_t n = 1;
    while (n < slots) n <<= 1;
    _mask = n - 1;
    _heads.reset(new Timer[n]);
    for (uint32_t i = 0; i < n; i++) _heads[i].prev = _heads[i].next = &_heads[i];
    _cur = now_us / _tick_us;
}

void TimerWheel::arm(Timer* t, uint64_t expire_us) {
    if (t->armed()) cancel(t);
    uint64_t tick = (expire_us + _tick_us - 1) / _tick_us;  // never early
    if (tick <= _cur) tick = _cur + 1;
    t->expire_tick = tick;
    link(&_heads[tick & _mask], t);
    _armed++;
}

void TimerWheel::cancel(Timer* t) {
    if (!t->armed()) return;
    unlink(t);
    _armed--;
}

}  // namespace tlb::tcp
