// Hashed timing wheel (Varghese & Lauck, scheme 6) for per-connection timers: retransmission,
// connect timeout, header/body timeouts (slowloris), first-byte timeout and keep-alive idle.
//
// Decisions:
// - One level, power-of-two slots, fixed tick (default 1 ms, 4096 slots = one revolution per
//   4.1 s). A timer further out than one revolution sits in its slot and is skipped (one compare)
//   on each pass until due: a 60 s keep-alive costs ~15 skips in its life, cheaper in code and
//   cache than a hierarchical wheel's cascades (Linux's timer wheel makes the same trade).
// - Timers are intrusive (a Timer lives inside the connection object): arm/cancel are O(1), no
//   allocation, and re-arming (every ACK moves the RTO) is an unlink + link.
// - The owner is found from Timer::owner/kind (a handle and a small enum the caller defines), so
//   the callback needs no container_of tricks.
// - Firing is never early; it is late by at most one tick plus the poll-loop latency.
// - advance() detaches a slot before walking it, so callbacks may arm/cancel any timer,
//   including the one that fired.
#pragma once

#include <cstdint>
#include <memory>

namespace tlb::tcp {

struct Timer {
    Timer* prev = nullptr;  // nullptr when not armed
    Timer* next = nullptr;
    uint64_t expire_tick = 0;
    uint32_t owner = 0;     // caller's handle (e.g. flow handle)
    uint8_t kind = 0;       // caller's timer kind
    bool armed() const { return prev != nullptr; }
};

class TimerWheel {
public:
    // slots is rounded up to a power of two. now_us starts the clock.
    TimerWheel(uint32_t slots = 4096, uint64_t tick_us = 1000, uint64_t now_us = 0);
    TimerWheel(const TimerWheel&) = delete;
    TimerWheel& operator=(const TimerWheel&) = delete;

    // Fire at (or just after) expire_us. Re-arming an armed timer moves it. An expiry in the past
    // fires on the next advance().
    void arm(Timer* t, uint64_t expire_us);
    void cancel(Timer* t);

    // Fire every timer due at now_us: fire(Timer*) is called with the timer already disarmed.
    // Returns the number fired.
    template <class F>
    uint32_t advance(uint64_t now_us, F&& fire);

    uint64_t tick_us() const { return _tick_us; }
    uint64_t now_tick() const { return _cur; }
    uint32_t armed_count() const { return _armed; }

private:
    void link(Timer* head, Timer* t) {
        t->next = head->next;
        t->prev = head;
        head->next->prev = t;
        head->next = t;
    }
    static void unlink(Timer* t) {
        t->prev->next = t->next;
        t->next->prev = t->prev;
        t->prev = t->next = nullptr;
    }
    template <class F>
    uint32_t run_slot(uint32_t slot, uint64_t due_tick, F& fire);

    std::unique_ptr<Timer[]> _heads;  // sentinels
    uint32_t _mask;
    uint64_t _tick_us;
    uint64_t _cur;  // last tick processed
    uint32_t _armed = 0;
};

template <class F>
uint32_t TimerWheel::run_slot(uint32_t slot, uint64_t due_tick, F& fire) {
    Timer* head = &_heads[slot];
    if (head->next == head) return 0;
    // Detach the whole list so callbacks that re-arm into this slot are not seen again now.
    Timer local;
    local.next = head->next;
    local.prev = head->prev;
    local.next->prev = &local;
    local.prev->next = &local;
    head->next = head->prev = head;
    uint32_t n = 0;
    while (local.next != &local) {
        Timer* t = local.next;
        unlink(t);
        if (t->expire_tick <= due_tick) {
            _armed--;
            n++;
            fire(t);
        } else {
            link(head, t);
        }
    }
    return n;
}

template <class F>
uint32_t TimerWheel::advance(uint64_t now_us, F&& fire) {
    uint64_t target = now_us / _tick_us;
    if (target <= _cur) return 0;
    uint32_t n = 0;
    if (target - _cur > _mask) {
        // More than a revolution passed: one sweep of every slot with the final due tick.
        _cur = target;
        for (uint32_t s = 0; s <= _mask; s++) n += run_slot(s, target, fire);
        return n;
    }
    while (_cur < target) {
        _cur++;
        n += run_slot(uint32_t(_cur & _mask), _cur, fire);
    }
    return n;
}

}  // namespace tlb::tcp
