// Scalar reference of the script-counting pass (counts, digit window, gate facts), and the start-up
// kernel choice. The AVX2 and AVX-512 kernels (script_avx2.cpp, script_avx512.cpp) must give
// exactly these results; classify_test checks both.
#include "classify/classify.hpp"

namespace tlb::classify {

namespace {

struct Table {
    alignas(64) uint8_t cls[256];
    constexpr Table() : cls{} {
        for (int b = 0; b < 256; ++b) {
            uint8_t c = 0;
            if (b < 0x80 || b >= 0xC0) c |= SCRIPT_CP;
            if ((b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || b >= 0xC0)
                c |= SCRIPT_LETTER;
            if (b >= 0xD0 && b <= 0xD3) c |= SCRIPT_CYR;
            if (b >= 0xCE && b <= 0xCF) c |= SCRIPT_GREEK;
            if (b >= 0xD8 && b <= 0xDB) c |= SCRIPT_ARABIC;
            if (b >= 0xE3 && b <= 0xED) c |= SCRIPT_CJK;
            if (b >= '0' && b <= '9') c |= SCRIPT_DIGIT;
            if (b == '{' || b == '}' || b == '(' || b == ')' || b == ';' || b == '=') c |= SCRIPT_PUNCT;
            cls[b] = c;
        }
    }
};
constexpr Table TABLE;

using CountFn = void (*)(const uint8_t*, size_t, ScriptCounts&, const GateTable*) noexcept;

// Decided once, at first use (start-up: the Scanner constructor calls script_kernel_name()).
// A function-local static rather than a namespace-scope one so no static-initialisation order
// can observe it unset.
CountFn kernel() noexcept {
    static const CountFn k = avx512_supported() ? &count_scripts_avx512
                             : avx2_supported()  ? &count_scripts_avx2
                                                 : &count_scripts_scalar;
    return k;
}

}  // namespace

const uint8_t* script_class_table() noexcept { return TABLE.cls; }

uint64_t ScriptCounts::of(Script s) const noexcept {
    switch (s) {
        case Script::CYRILLIC: return cyrillic;
        case Script::GREEK: return greek;
        case Script::ARABIC: return arabic;
        case Script::CJK: return cjk;
        case Script::NONE: break;
    }
    return 0;
}

bool avx2_supported() noexcept {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
}

bool avx512_supported() noexcept {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2") &&
           __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512bitalg") &&
           __builtin_cpu_supports("gfni") && __builtin_cpu_supports("popcnt");
}

const char* script_kernel_name() noexcept {
    const CountFn k = kernel();
    return k == &count_scripts_avx512 ? "avx512" : k == &count_scripts_avx2 ? "avx2" : "scalar";
}

void GateTable::finish() noexcept {
    for (int b = 0; b < 256; ++b) {
        const bool token = (b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || b == '_' ||
                           b == '.' || b == '-';
        cls[b] = static_cast<uint8_t>((cls[b] & ~GT_TOKEN) | (runs && token ? GT_TOKEN : 0));
    }
    // Over-approximation by nibbles, one table pair per kind: bucket = high nibble mod 8.
    const uint8_t kinds[3] = {singles, static_cast<uint8_t>(seconds >> 1), seconds};
    for (int k = 0; k < 3; ++k) {
        for (int i = 0; i < 16; ++i) lo_nib[k][i] = hi_nib[k][i] = 0;
        for (int b = 0; b < 256; ++b) {
            if (!(cls[b] & kinds[k])) continue;
            const uint8_t bit = static_cast<uint8_t>(1u << ((b >> 4) & 7));
            lo_nib[k][b & 15] |= bit;
            hi_nib[k][b >> 4] = bit;
        }
    }
}

// Digit counts per 32-byte block -> the densest pair of consecutive blocks. Shared by all kernels
// so they agree exactly.
void digit_window_step(uint32_t block_digits, uint32_t& prev, uint64_t& best) noexcept {
    const uint64_t w = static_cast<uint64_t>(prev) + block_digits;
    if (w > best) best = w;
    prev = block_digits;
}

uint64_t gate_facts_scalar(const uint8_t* p, size_t n, const GateTable& gt, uint8_t& prev_cls,
                           uint32_t& run) noexcept {
    uint64_t g = 0;
    uint8_t prev = prev_cls;
    uint32_t r = run;
    for (size_t i = 0; i < n; ++i) {
        const uint8_t c = gt.cls[p[i]];
        g |= c & gt.singles;
        g |= static_cast<uint8_t>(prev << 1) & c & gt.seconds;  // a first byte, then its second
        r = (c & GT_TOKEN) ? r + 1 : 0;
        if (r >= RUN_GATE_LEN) g |= GATE_RUN;
        prev = c;
    }
    prev_cls = prev;
    run = r;
    return g;
}

void count_scripts_scalar(const uint8_t* p, size_t n, ScriptCounts& acc, const GateTable* gates) noexcept {
    uint32_t prev = 0;
    uint64_t best = acc.digit_window;
    for (size_t b = 0; b < n; b += 32) {
        const size_t e = b + 32 < n ? b + 32 : n;
        uint32_t d = 0;
        for (size_t i = b; i < e; ++i) d += (p[i] >= '0' && p[i] <= '9');
        digit_window_step(d, prev, best);
    }
    acc.digit_window = best;
    count_scripts_scalar_flat(p, n, acc);
    if (gates) {
        uint8_t prev_cls = 0;
        uint32_t run = 0;
        acc.gates |= gate_facts_scalar(p, n, *gates, prev_cls, run);
    }
}

void add_counts(ScriptCounts& acc, const ScriptCounts& part) noexcept {
    acc.code_points += part.code_points;
    acc.letters += part.letters;
    acc.cyrillic += part.cyrillic;
    acc.greek += part.greek;
    acc.arabic += part.arabic;
    acc.cjk += part.cjk;
    acc.digits += part.digits;
    acc.punct += part.punct;
    acc.bytes += part.bytes;
}

void count_scripts_scalar_flat(const uint8_t* p, size_t n, ScriptCounts& acc) noexcept {
    // Separate local counters: the compiler keeps them in registers instead of round-tripping
    // through acc on every byte.
    uint64_t cp = 0, letters = 0, cyr = 0, greek = 0, arabic = 0, cjk = 0, digits = 0, punct = 0;
    for (size_t i = 0; i < n; ++i) {
        const uint8_t c = TABLE.cls[p[i]];
        cp += c & 1;
        letters += (c >> 1) & 1;
        cyr += (c >> 2) & 1;
        greek += (c >> 3) & 1;
        arabic += (c >> 4) & 1;
        cjk += (c >> 5) & 1;
        digits += (c >> 6) & 1;
        punct += (c >> 7) & 1;
    }
    add_counts(acc, ScriptCounts{cp, letters, cyr, greek, arabic, cjk, digits, 0, punct, n, 0});
}

void count_scripts(const uint8_t* p, size_t n, ScriptCounts& acc, const GateTable* gates) noexcept {
    kernel()(p, n, acc, gates);
}

}  // namespace tlb::classify
