// tlb::classify — content tags for a request (code, math, pii, secrets, cjk, cyrillic, ...) from
// Hyperscan rule sets, as one uint64_t bitset the policy can match against backend capability tags.
//
// Decisions (docs/classify.md has the long form and the rule-file format):
//  * Rules live in conf/rules/*.rules, one rule per line: `tag  /pattern/flags  [key=value ...]`
//    or `tag  script:<name>  min_fraction=F`. Every regex rule of every file is compiled once at
//    start-up into ONE Hyperscan block-mode database (one pass over the text finds all rules of all
//    tags; Hyperscan shares literal prefilters across patterns, which is where its speed comes
//    from — Suricata and Snort's Hyperscan MPM do the same). Tag names get bit indices in order of
//    first appearance (files sorted by name); consumers map names, never hard-code bits.
//  * Block mode, one hs_scan per text span (not HS_MODE_VECTORED): a match must never join the end
//    of one message and the start of the next (a "card number" made of two messages' digits), and
//    confirm= checks (Luhn, IBAN mod-97) need the matched bytes in one buffer. The data plane's text
//    is one contiguous run with pieces separated by '\n' (lib/openai), so it is one span and one
//    hs_scan per request anyway.
//  * Counting rules (min_count=N) count matches in the callback; rules that fire on their first
//    match are compiled with HS_FLAG_SINGLEMATCH so Hyperscan stops reporting them. Confirmed rules
//    (confirm=luhn|iban) are compiled with HS_FLAG_SOM_LEFTMOST so the callback knows where the
//    match starts and can check the digits; a failed check is not a match.
//  * prescan=yes rules (the Markdown fences, the e-mail rule) are scanned first in a small database;
//    a tag they set selects a main database compiled without that tag's other rules (one variant
//    per subset of prescan tags, built at start-up). Code-with-a-fence then skips every code rule,
//    about half of the main scan's cost. Tags are unchanged (tested against the same rules
//    without prescan).
//  * "Heavy" script tags (cjk, cyrillic) are NOT regexes: a per-character Hyperscan match on a 64 KB
//    Chinese prompt would be ~20k callbacks. A SIMD pass (AVX-512 BW, AVX2, scalar reference, chosen at
//    start-up) counts UTF-8 lead bytes per script instead (AVX-512 BW, AVX2 or scalar, chosen at start-up), and the tag is set when the script's code
//    points are at least min_fraction of the text's letters (ASCII alphanumerics + non-ASCII code
//    points). The pass runs only when some rule uses it.
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
// databases (stopping once their tags are set); sparser texts use one database for everything,
// because every extra database is one more literal-matcher pass over the text.
constexpr uint32_t EARLY_EXIT_PUNCT_PERMILLE = 15;
// Distinct tags that prescan=yes rules may set (each doubles the number of main databases).
constexpr uint32_t MAX_PRESCAN_TAGS = 3;

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
    uint64_t of(Script s) const noexcept;
    bool operator==(const ScriptCounts&) const = default;
};

// Adds the counts of p[0..n) to acc with the kernel chosen at start-up (AVX-512 BW, else AVX2,
// else scalar).
void count_scripts(const uint8_t* p, size_t n, ScriptCounts& acc) noexcept;
// The scalar reference, and the AVX2 / AVX-512 kernels (callers check avx2_supported() /
// avx512_supported()); tests compare them.
void count_scripts_scalar(const uint8_t* p, size_t n, ScriptCounts& acc) noexcept;
// Internal pieces shared by the kernels: counts without digit_window, and one window step.
void count_scripts_scalar_flat(const uint8_t* p, size_t n, ScriptCounts& acc) noexcept;
void digit_window_step(uint32_t block_digits, uint32_t& prev, uint64_t& best) noexcept;
// acc += part for every count but digit_window (kernels keep counts in locals and add them once;
// defined out of line in the baseline file, so no kernel-flagged copy of it exists).
void add_counts(ScriptCounts& acc, const ScriptCounts& part) noexcept;
void count_scripts_avx2(const uint8_t* p, size_t n, ScriptCounts& acc) noexcept;
void count_scripts_avx512(const uint8_t* p, size_t n, ScriptCounts& acc) noexcept;
bool avx2_supported() noexcept;
bool avx512_supported() noexcept;           // AVX-512 F + BW
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
    bool prescan = false;       // prescan=yes: scanned first; a tag it sets drops that tag's other rules
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
    // prescan=yes rules: one small database scanned before everything else. Tags it can set are
    // "prescan tags" (at most MAX_PRESCAN_TAGS); for every subset v of them that the prescan set,
    // the main databases are compiled without the rules of those tags (variant index v: bit k is
    // the k-th prescan tag), so a decided tag costs nothing more.
    hs_database* _db_pre = nullptr;
    std::vector<uint32_t> _pre_bits;    // tag bit of the k-th prescan tag
    struct Variant {
        hs_database* db = nullptr;      // ungated shared rules (group 0)
        hs_database* db_all = nullptr;  // shared + @early_exit rules in one database (prose mode)
    };
    std::vector<Variant> _variants;     // 2^|_pre_bits| entries; a null database has no rules
    hs_database* _db_digits = nullptr;  // needs_digits= rules; null when there are none
    uint32_t _digits_gate = 0;          // smallest needs_digits of those rules
    TagSet _digits_mask = 0;            // tags of those rules (skipped when all are set)
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
    TagSet _stop = 0;               // scan of an @early_exit database: stop when these are all set
    bool _split = false;
    TagSet _pre_tags = 0;
    static int on_match(unsigned id, unsigned long long from, unsigned long long to, unsigned flags,
                        void* ctx) noexcept;
};

}  // namespace tlb::classify
