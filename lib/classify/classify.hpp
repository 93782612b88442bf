// tlb::classify — content tags for a request (code, math, pii, secrets, cjk, cyrillic, ...) from
// Hyperscan rule sets, as one uint64_t bitset the policy can match against backend capability tags.
//
// Decisions (docs/classify.md has the long form and the rule-file format):
//  * Rules live in conf/rules/*.rules, one rule per line: `tag  /pattern/flags  [key=value ...]`
//    or `tag  script:<name>  min_fraction=F`. The regex rules of all files are compiled once at
//    start-up into a few Hyperscan block-mode databases; one pass over the text finds all the
//    ungated rules of all tags (Hyperscan shares literal prefilters across patterns, which is where
//    its speed comes from — Suricata and Snort's Hyperscan MPM do the same). Tag names get bit
//    indices in order of first appearance (files sorted by name); consumers map names, never bits.
//  * Block mode, one hs_scan per text span (not HS_MODE_VECTORED): a match must never join the end
//    of one message and the start of the next (a "card number" made of two messages' digits), and
//    confirm= checks (Luhn, IBAN mod-97) need the matched bytes in one buffer. The data plane's text
//    is one contiguous run with pieces separated by '\n' (lib/openai), so it is one span and one
//    hs_scan per database per request anyway.
//  * Counting rules (min_count=N) count matches in the callback; rules that fire on their first
//    match are compiled with HS_FLAG_SINGLEMATCH so Hyperscan stops reporting them. Confirmed rules
//    (confirm=luhn|iban) are compiled with HS_FLAG_SOM_LEFTMOST so the callback knows where the
//    match starts and can check the digits; a failed check is not a match.
//  * One SIMD pass over the text comes first (AVX-512 VBMI+GFNI+BITALG, AVX2, scalar reference,
//    chosen at start-up). Every byte goes through a 256-entry class table; it counts UTF-8 lead
//    bytes per script (cjk, cyrillic, ... are counted, not matched: a per-character regex on a 64 KB
//    Chinese prompt would be ~20k callbacks; a script tag is set when its code points are at least
//    min_fraction of the letters), digits (densest 64-byte window: needs_digits= gate), code
//    punctuation (picks the scan mode) and the gate facts below.
//  * Gates: a rule may state which text it can possibly match — needs=ITEM,... (one of a few bytes
//    or two-byte strings is in every match: \ or $ for LaTeX, @ for e-mail, `) ` for `f(x) = `) or
//    needs_run=N (every match holds N >= 15 consecutive [A-Za-z0-9_.-]: API keys). Such rules go to
//    small databases (one per distinct needs= list, one for needs_run=) that are scanned only when
//    the SIMD pass saw the fact; a gated prescan rule skips the prescan. Prose then leaves out the
//    LaTeX, symbol, e-mail and secrets literals, which together were ~60% of the shared pass. Tags
//    are unchanged (tested against the same rules without gates); the author of a gate guarantees
//    it, so the tests check every default gate on texts at its edge.
//  * prescan=yes rules (the Markdown fences) are decisive: a tag they set drops that tag's other
//    rules. Two scan modes, by the punctuation density:
//    - prose mode: with the prescan open, ONE database holds the prescan rules and the main
//      (ungated) rules of all other tags; a prescan tag that did not fire then scans its own main
//      rules in a database of just those, stopping once set. Closed: one database of all main rules.
//      Then the open gated databases. A fenced prompt is one literal-matcher pass.
//    - code-dense mode (some file has @early_exit): the prescan first, in its own database; the tags
//      it set select a shared database compiled without their rules (one variant per subset of
//      prescan tags); each @early_exit file's rules in their own database, which stops once its
//      tags are all set. Gated rules stay in these databases: in code their gate bytes are common
//      and one shared pass is cheaper than several gated ones.
//  * Worker path: Scanner::scan() is noexcept, allocates nothing (scratch cloned with
//    hs_clone_scratch and the per-rule counters are sized at construction), takes no locks.
//    A Hyperscan error is counted (Scanner::errors()) and the tags found so far are returned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct hs_database;
struct hs_scratch;

namespace tlb::classify {

using TagSet = uint64_t;
constexpr uint32_t MAX_TAGS = 64;
constexpr uint32_t MAX_TAG_NAME = 47;  // scoreboard NAME_LEN - 1
constexpr uint32_t MAX_RULES = 4096;
// Texts with at least this many { } ( ) ; = per thousand bytes scan @early_exit files in their own
// databases (stopping once their tags are set); sparser texts use prose mode (one shared pass),
// because every extra database is one more literal-matcher pass over the text.
constexpr uint32_t EARLY_EXIT_PUNCT_PERMILLE = 15;
// Distinct tags that prescan=yes rules may set (each doubles the number of main databases).
constexpr uint32_t MAX_PRESCAN_TAGS = 3;
// Gate facts (ScriptCounts::gates) use the bits of the gate table (GateTable::cls): a needs= list's
// single-byte items are one bit (set when one of them occurs), its two-byte items a pair of adjacent
// bits k, k+1 (k on their first bytes, k+1 on their second bytes; fact k+1 is set when a byte with
// bit k is followed by one with bit k+1 — first and second bytes of different items of the same list
// also count). Bits are given to the lists in order of first appearance; at most GATE_BITS.
// GATE_RUN: a run of RUN_GATE_LEN or more bytes of [A-Za-z0-9_.-] occurs (needs_run=).
constexpr uint32_t GATE_BITS = 7;
constexpr uint64_t GATE_RUN = uint64_t{1} << 7;
constexpr uint32_t RUN_GATE_LEN = 15;
constexpr uint32_t MAX_NEEDS_ITEMS = 16;  // items of one needs= list
// Digit regions (see Scanner::scan_digits) closer than this are scanned as one: an hs_scan call
// costs ~400 cycles before its first byte, the bytes between ~1-2 cycles each (measured on the
// held-out Spanish bodies, full of year ranges: gap 0 5.30-5.65 us per 4 KiB, 512 4.97-5.19).
constexpr size_t DIGIT_REGION_MERGE_GAP = 512;

enum class Confirm : uint8_t { NONE = 0, LUHN, IBAN };

// Scripts counted by the SIMD pass, by UTF-8 lead byte (docs/classify.md lists the ranges).
enum class Script : uint8_t { NONE = 0, CYRILLIC, GREEK, ARABIC, CJK };

struct ScriptCounts {
    uint64_t code_points = 0;  // bytes that are not UTF-8 continuation bytes
    uint64_t letters = 0;      // ASCII [0-9A-Za-z] + non-ASCII code points
    uint64_t cyrillic = 0;     // lead byte D0-D3: U+0400-U+04FF
    uint64_t greek = 0;        // lead byte CE-CF: U+0380-U+03FF
    uint64_t arabic = 0;       // lead byte D8-DB: U+0600-U+06FF
    uint64_t cjk = 0;          // lead byte E3-ED: U+3000-U+DFFF (CJK symbols, kana, han, hangul)
    uint64_t digits = 0;       // ASCII 0-9
    // Most ASCII digits in two consecutive 32-byte blocks of one span (blocks counted from the span
    // start; the last block may be short). Any stretch of <= 33 bytes lies inside such a pair, so a
    // 13-19 digit card number or a phone number shows up here; scattered numbers in prose do not.
    // Gates the needs_digits= rules.
    uint64_t digit_window = 0;
    uint64_t punct = 0;        // { } ( ) ; = (code-like density: picks the @early_exit scan mode)
    uint64_t bytes = 0;
    uint64_t gates = 0;        // GATE_* facts seen (only when the pass was given a GateTable)
    uint64_t of(Script s) const noexcept;
    bool operator==(const ScriptCounts&) const = default;
};

// Per-byte gate classes for the SIMD pass, built from the rules at load time.
constexpr uint8_t GT_TOKEN = 1u << 7;  // [A-Za-z0-9_.-], set by finish() when runs
struct GateTable {
    alignas(64) uint8_t cls[256] = {};  // needs= bits (see GATE_BITS); fill them, set the masks, finish()
    uint8_t singles = 0;                // bits of single-byte items
    uint8_t seconds = 0;                // bits of the second bytes of two-byte items (first: bit - 1)
    bool runs = false;                  // compute GATE_RUN
    // Set by finish() for the AVX2 kernel: per kind k (0: single-byte items, 1: first bytes, 2: second
    // bytes) an over-approximation by nibbles, lo_nib[k][b & 15] & hi_nib[k][b >> 4] != 0 when byte b
    // may be of that kind (bit = high nibble mod 8). Only bytes that may be a single, or may be a
    // second after a byte that may be a first, are then looked up in cls.
    uint8_t lo_nib[3][16] = {};
    uint8_t hi_nib[3][16] = {};
    void finish() noexcept;
};

// Adds the counts of p[0..n) to acc with the kernel chosen at start-up (AVX-512 VBMI+GFNI+BITALG,
// else AVX2, else scalar); with a gate table, ORs the gate facts of p[0..n) into acc.gates (pairs and
// runs never join two calls: each call is one span).
void count_scripts(const uint8_t* p, size_t n, ScriptCounts& acc, const GateTable* gates = nullptr) noexcept;
// The scalar reference, and the AVX2 / AVX-512 kernels (callers check avx2_supported() /
// avx512_supported()); tests compare them.
void count_scripts_scalar(const uint8_t* p, size_t n, ScriptCounts& acc, const GateTable* gates = nullptr) noexcept;
void count_scripts_avx2(const uint8_t* p, size_t n, ScriptCounts& acc, const GateTable* gates = nullptr) noexcept;
void count_scripts_avx512(const uint8_t* p, size_t n, ScriptCounts& acc, const GateTable* gates = nullptr) noexcept;
// Internal pieces shared by the kernels: the byte -> count-class table (SCRIPT_* bits), counts
// without digit_window and gates, the scalar gate facts of p[0..n) given the gate class of the byte
// before p[0] and the token run ending there (both updated), and one digit-window step.
enum : uint8_t {
    SCRIPT_CP = 1, SCRIPT_LETTER = 2, SCRIPT_CYR = 4, SCRIPT_GREEK = 8,
    SCRIPT_ARABIC = 16, SCRIPT_CJK = 32, SCRIPT_DIGIT = 64, SCRIPT_PUNCT = 128,
};
const uint8_t* script_class_table() noexcept;  // 256 entries, 64-byte aligned
void count_scripts_scalar_flat(const uint8_t* p, size_t n, ScriptCounts& acc) noexcept;
uint64_t gate_facts_scalar(const uint8_t* p, size_t n, const GateTable& gt, uint8_t& prev_cls,
                           uint32_t& run) noexcept;
void digit_window_step(uint32_t block_digits, uint32_t& prev, uint64_t& best) noexcept;
// acc += part for every count but digit_window and gates (kernels keep counts in locals and add them
// once; defined out of line in the baseline file, so no kernel-flagged copy of it exists).
void add_counts(ScriptCounts& acc, const ScriptCounts& part) noexcept;
bool avx2_supported() noexcept;
bool avx512_supported() noexcept;           // AVX-512 F, BW, VBMI, VBMI2, VPOPCNTDQ, BITALG + GFNI
const char* script_kernel_name() noexcept;  // "avx512", "avx2" or "scalar"

// Check helpers used by confirm=; exposed for tests. They skip spaces and '-' between digits.
bool luhn_valid(const char* p, size_t n) noexcept;   // 13..19 digits, Luhn checksum
bool iban_valid(const char* p, size_t n) noexcept;   // ISO 13616: CCkk + BBAN, mod 97 == 1

struct Rule {
    std::string tag;
    uint32_t bit = 0;
    std::string file;
    uint32_t line = 0;
    std::string pattern;      // regex text between the slashes (empty for script rules)
    std::string flags;        // as written
    uint32_t hs_flags = 0;
    uint32_t min_count = 1;
    Confirm confirm = Confirm::NONE;
    Script script = Script::NONE;
    double min_fraction = 0;  // script rules
    uint32_t needs_digits = 0;  // > 0: gated database, scanned only when digit_window >= this
    uint32_t group = 0;         // 0: shared database; k > 0: the k-th @early_exit file's own database
    bool prescan = false;       // prescan=yes: decisive; a tag it sets drops that tag's other rules
    std::vector<std::string> needs;  // needs=: items of 1 or 2 bytes, one of which every match contains
    uint32_t needs_run = 0;     // needs_run=N (>= RUN_GATE_LEN): every match holds N token bytes
    uint32_t gate = 0;          // k > 0: its needs= list is the (k-1)-th distinct one (one database)
};

class Classifier {
public:
    struct Source {
        std::string name;  // used in error messages ("name:line: ...")
        std::string text;
    };

    // Control plane. On failure return nullptr and set *error to "file:line: what is wrong".
    // load_dir reads every *.rules file of dir in name order.
    static std::unique_ptr<Classifier> load_dir(const std::string& dir, std::string* error);
    static std::unique_ptr<Classifier> load_files(const std::vector<std::string>& paths, std::string* error);
    static std::unique_ptr<Classifier> load_sources(const std::vector<Source>& sources, std::string* error);

    ~Classifier();
    Classifier(const Classifier&) = delete;
    Classifier& operator=(const Classifier&) = delete;

    uint32_t tag_count() const noexcept { return static_cast<uint32_t>(_tags.size()); }
    const std::string& tag_name(uint32_t bit) const { return _tags.at(bit); }
    int tag_bit(std::string_view name) const noexcept;   // -1 when unknown
    TagSet tag_mask(std::string_view name) const noexcept;  // 0 when unknown
    std::string format(TagSet tags) const;               // "code,pii" in bit order

    size_t rule_count() const noexcept { return _rules.size(); }
    const Rule& rule(size_t i) const { return _rules.at(i); }
    bool uses_scripts() const noexcept { return !_script_rules.empty(); }
    size_t database_bytes() const noexcept;
    // The byte table the SIMD pass gets (tests compare the kernels with it); null without gates.
    const GateTable* gate_table() const noexcept { return _use_gates ? &_gate_table : nullptr; }

private:
    friend class Scanner;
    Classifier() = default;
    bool compile(std::string* error);

    // What the match callback needs per rule, packed (the Hyperscan id is the rule index).
    struct Hot {
        TagSet mask = 0;
        uint32_t min_count = 1;
        Confirm confirm = Confirm::NONE;
    };

    std::vector<std::string> _tags;
    std::vector<Rule> _rules;
    std::vector<Hot> _hot;               // parallel to _rules
    std::vector<uint32_t> _script_rules; // indices of script: rules
    // prescan=yes rules (split mode: scanned first, in their own database). Tags they can set are
    // "prescan tags" (at most MAX_PRESCAN_TAGS); for every subset v of them that the prescan set,
    // the shared database is compiled without the rules of those tags (variant index v: bit k is
    // the k-th prescan tag), so a decided tag costs nothing more.
    hs_database* _db_pre = nullptr;
    std::vector<uint32_t> _pre_bits;    // tag bit of the k-th prescan tag
    hs_database* _db_main = nullptr;    // prose mode, prescan closed: all main (ungated) rules
    // Split mode (code-dense text, @early_exit files exist): per subset v of decided prescan tags,
    // the shared rules (gated ones included) without the decided tags' rules; null: no rules.
    std::vector<hs_database*> _variants;
    // Prescan and main rules in one pass (prose mode, prescan open): the prescan rules plus the main
    // rules of every tag that has no prescan rule; then, for the prescan tags that did not fire
    // (subset u, bit k: k-th prescan tag), _rem[u] holds those tags' main rules.
    hs_database* _db_merged = nullptr;
    std::vector<hs_database*> _rem;
    TagSet _pre_mask = 0;               // all prescan tags
    bool _pre_always = false;           // some prescan rule has no gate
    uint64_t _pre_open = 0;             // else: the gate facts that open the prescan
    // needs= lists (one database each) and needs_run= rules (one database): scanned when one of
    // `open`'s facts is in ScriptCounts::gates and not all of `mask` is decided.
    struct Gated {
        hs_database* db = nullptr;
        uint64_t open = 0;
        TagSet mask = 0;
    };
    std::vector<Gated> _gated;
    GateTable _gate_table;
    bool _use_gates = false;
    hs_database* _db_digits = nullptr;  // needs_digits= rules; null when there are none
    uint32_t _digits_gate = 0;          // smallest needs_digits of those rules
    TagSet _digits_mask = 0;            // tags of those rules (skipped when all are set)
    // > 0: _db_digits reports match starts (SOM) and is scanned only around the block pairs that
    // hold _digits_gate digits, this many bytes (longest match + 1) either side; 0: whole spans
    // (some needs_digits= rule can match unboundedly long text).
    size_t _digits_margin = 0;
    // @early_exit files: own database each; its scan stops once all of the file's tags are set.
    struct Group {
        hs_database* db = nullptr;
        TagSet mask = 0;
    };
    std::vector<Group> _groups;
    hs_scratch* _proto = nullptr;       // prototype scratch (valid for all databases), cloned per Scanner
};

// One per worker. Construction clones the scratch (control plane).
class Scanner {
public:
    explicit Scanner(const Classifier& c);
    ~Scanner();
    Scanner(const Scanner&) = delete;
    Scanner& operator=(const Scanner&) = delete;

    bool ok() const noexcept { return _ok; }

    // Tags of the text made of these spans (each scanned on its own, counts add up).
    TagSet scan(const std::string_view* spans, size_t n) noexcept;
    TagSet scan(std::string_view text) noexcept { return scan(&text, 1); }

    // Details of the last scan (tests, access log, debugging).
    uint32_t rule_matches(size_t rule) const noexcept { return rule < _counts.size() ? _counts[rule] : 0; }
    uint32_t tag_matches(uint32_t bit) const noexcept;
    const ScriptCounts& script_counts() const noexcept { return _scripts; }
    uint64_t errors() const noexcept { return _errors; }  // Hyperscan scan errors, cumulative
    uint64_t confirm_rejects() const noexcept { return _confirm_rejects; }  // cumulative
    bool last_scan_split() const noexcept { return _split; }  // @early_exit databases used separately
    TagSet last_prescan_tags() const noexcept { return _pre_tags; }  // tags the prescan decided
    bool last_scan_merged() const noexcept { return _merged; }  // prescan and main in one pass
    uint32_t last_scan_passes() const noexcept { return _passes; }  // hs_scan calls (databases x spans)
    // Bytes the digit-gated database scanned (the regions around dense digit pairs, see docs).
    uint64_t last_digit_bytes() const noexcept { return _digit_bytes; }
    // Matches dropped because a region's edge made them (cumulative; the same text scanned whole
    // would not have them).
    uint64_t edge_rejects() const noexcept { return _edge_rejects; }

private:
    const Classifier* _c;
    hs_scratch* _scratch = nullptr;
    std::vector<uint32_t> _counts;  // per rule, sized at construction
    ScriptCounts _scripts;
    TagSet _tags = 0;
    const char* _cur = nullptr;     // span being scanned (confirm checks read it)
    uint64_t _errors = 0;
    uint64_t _confirm_rejects = 0;
    bool _ok = false;
    void scan_db(const hs_database* db, const char* p, size_t len, TagSet stop_mask) noexcept;
    void scan_digits(const char* p, size_t len) noexcept;
    // Region scan in progress: a match starting at the region's first byte (when it is not the
    // span's) or ending at its last (when it is not the span's) may be an edge artefact.
    bool _edge_lo = false;
    bool _edge_hi = false;
    unsigned long long _edge_end = 0;
    uint64_t _digit_bytes = 0;
    uint64_t _edge_rejects = 0;
    TagSet _stop = 0;               // @early_exit or remainder database: stop when these are all set
    bool _split = false;
    bool _merged = false;
    uint32_t _passes = 0;
    TagSet _pre_tags = 0;
    static int on_match(unsigned id, unsigned long long from, unsigned long long to, unsigned flags,
                        void* ctx) noexcept;
};

}  // namespace tlb::classify
