// Rule-set compilation (control plane) and per-worker scanning (data plane).
#include "classify/classify.hpp"

#include <hs/hs.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "classify/rules.hpp"

namespace tlb::classify {

// ---- confirm checks ------------------------------------------------------------------------

bool luhn_valid(const char* p, size_t n) noexcept {
    uint8_t digits[32];
    size_t nd = 0;
    size_t i = 0;
    // A rule may include one context character before the number (no lookbehind in Hyperscan).
    if (n > 0 && !(p[0] >= '0' && p[0] <= '9')) i = 1;
    for (; i < n; ++i) {
        const char c = p[i];
        if (c >= '0' && c <= '9') {
            if (nd == sizeof(digits)) return false;
            digits[nd++] = static_cast<uint8_t>(c - '0');
        } else if (c != ' ' && c != '-') {
            return false;
        }
    }
    if (nd < 13 || nd > 19) return false;
    uint32_t sum = 0, nonzero = 0;
    for (size_t k = 0; k < nd; ++k) {  // from the right: every second digit doubled
        uint32_t d = digits[nd - 1 - k];
        nonzero |= d;
        if (k & 1) {
            d *= 2;
            if (d > 9) d -= 9;
        }
        sum += d;
    }
    return nonzero != 0 && sum % 10 == 0;  // all zeros pass the checksum but are no card
}

bool iban_valid(const char* p, size_t n) noexcept {
    char s[40];
    size_t m = 0;
    for (size_t i = 0; i < n; ++i) {
        const char c = p[i];
        if (c == ' ') continue;
        if (m == sizeof(s)) return false;
        s[m++] = c;
    }
    if (m < 15 || m > 34) return false;
    if (!(s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' && s[2] >= '0' && s[2] <= '9' &&
          s[3] >= '0' && s[3] <= '9'))
        return false;
    // Move the first four characters to the end, letters -> 10..35, the number mod 97 must be 1.
    uint32_t rem = 0;
    for (size_t k = 0; k < m; ++k) {
        const char c = s[(k + 4) % m];
        if (c >= '0' && c <= '9') {
            rem = (rem * 10 + static_cast<uint32_t>(c - '0')) % 97;
        } else if (c >= 'A' && c <= 'Z') {
            const uint32_t v = static_cast<uint32_t>(c - 'A') + 10;
            rem = (rem * 100 + v) % 97;
        } else {
            return false;
        }
    }
    return rem == 1;
}

// ---- loading -------------------------------------------------------------------------------

namespace {

bool read_file(const std::string& path, std::string& out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    std::ostringstream ss;
    ss << f.rdbuf();
    if (f.bad()) return false;
    out = ss.str();
    return true;
}

void set(std::string* error, const std::string& msg) {
    if (error) *error = msg;
}

}  // namespace

std::unique_ptr<Classifier> Classifier::load_dir(const std::string& dir, std::string* error) {
    namespace fs = std::filesystem;
    std::vector<std::string> paths;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) {
        set(error, dir + ": cannot read rules directory: " + ec.message());
        return nullptr;
    }
    for (const auto& e : it)
        if (e.path().extension() == ".rules" && !e.is_directory()) paths.push_back(e.path().string());
    if (paths.empty()) {
        set(error, dir + ": no *.rules files");
        return nullptr;
    }
    std::sort(paths.begin(), paths.end());
    return load_files(paths, error);
}

std::unique_ptr<Classifier> Classifier::load_files(const std::vector<std::string>& paths, std::string* error) {
    std::vector<Source> sources;
    for (const auto& p : paths) {
        Source s;
        s.name = p;
        if (!read_file(p, s.text)) {
            set(error, p + ": cannot read rules file");
            return nullptr;
        }
        sources.push_back(std::move(s));
    }
    return load_sources(sources, error);
}

std::unique_ptr<Classifier> Classifier::load_sources(const std::vector<Source>& sources, std::string* error) {
    std::unique_ptr<Classifier> c(new Classifier());
    uint32_t groups = 0;
    for (const auto& s : sources) {
        const size_t first = c->_rules.size();
        bool early = false;
        if (!parse_rules(s.name, s.text, c->_rules, c->_tags, error, &early)) return nullptr;
        if (!early) continue;
        ++groups;
        for (size_t i = first; i < c->_rules.size(); ++i) c->_rules[i].group = groups;
    }
    c->_groups.resize(groups);
    if (!c->compile(error)) return nullptr;
    return c;
}

bool Classifier::compile(std::string* error) {
    _hot.resize(_rules.size());
    for (const Rule& r : _rules)
        if (r.group) _groups[r.group - 1].mask |= TagSet{1} << r.bit;
    // Prescan tags, in order of first appearance.
    for (const Rule& r : _rules) {
        if (!r.prescan || std::find(_pre_bits.begin(), _pre_bits.end(), r.bit) != _pre_bits.end()) continue;
        if (_pre_bits.size() == MAX_PRESCAN_TAGS) {
            set(error, r.file + ":" + std::to_string(r.line) + ": prescan=yes rules for more than " +
                           std::to_string(MAX_PRESCAN_TAGS) + " tags");
            return false;
        }
        _pre_bits.push_back(r.bit);
        _pre_mask |= TagSet{1} << r.bit;
    }
    // Gates. Every distinct needs= list (items sorted, so the order written does not matter) is one
    // database; its single-byte items get one bit of the gate table, its two-byte items two adjacent
    // bits (first bytes, second bytes). needs_run= rules share one database.
    struct List {
        std::vector<std::string> items;
        uint64_t open = 0;  // ScriptCounts::gates facts that open it
    };
    std::vector<List> lists;
    uint32_t bits = 0;
    bool runs = false;
    for (Rule& r : _rules) {
        if (r.needs_run) runs = true;
        if (r.needs.empty()) continue;
        std::vector<std::string> items = r.needs;
        std::sort(items.begin(), items.end());
        items.erase(std::unique(items.begin(), items.end()), items.end());
        size_t k = 0;
        while (k < lists.size() && lists[k].items != items) ++k;
        if (k == lists.size()) {
            List l;
            l.items = items;
            const bool single = std::any_of(items.begin(), items.end(), [](const std::string& it) { return it.size() == 1; });
            const bool pair = std::any_of(items.begin(), items.end(), [](const std::string& it) { return it.size() == 2; });
            if (bits + (single ? 1 : 0) + (pair ? 2 : 0) > GATE_BITS) {
                set(error, r.file + ":" + std::to_string(r.line) + ": needs= lists need more than " +
                               std::to_string(GATE_BITS) +
                               " gate bits (each distinct list: 1 for its single bytes, 2 for its two-byte items)");
                return false;
            }
            if (single) {
                const uint8_t bit = static_cast<uint8_t>(1u << bits++);
                for (const std::string& it : items)
                    if (it.size() == 1) _gate_table.cls[static_cast<uint8_t>(it[0])] |= bit;
                _gate_table.singles |= bit;
                l.open |= bit;
            }
            if (pair) {
                const uint8_t first = static_cast<uint8_t>(1u << bits), second = static_cast<uint8_t>(1u << (bits + 1));
                bits += 2;
                for (const std::string& it : items) {
                    if (it.size() != 2) continue;
                    _gate_table.cls[static_cast<uint8_t>(it[0])] |= first;
                    _gate_table.cls[static_cast<uint8_t>(it[1])] |= second;
                }
                _gate_table.seconds |= second;
                l.open |= second;
            }
            lists.push_back(std::move(l));
        }
        r.gate = static_cast<uint32_t>(k + 1);
    }
    _use_gates = !lists.empty() || runs;
    _gate_table.runs = runs;
    _gate_table.finish();
    auto gate_open = [&](const Rule& r) -> uint64_t {
        return r.gate ? lists[r.gate - 1].open : r.needs_run ? GATE_RUN : 0;
    };
    // The prescan is scanned when one of its rules' gates is open, always if one has no gate.
    bool ungated_prescan = false;
    for (const Rule& r : _rules) {
        if (!r.prescan) continue;
        const uint64_t o = gate_open(r);
        _pre_open |= o;
        if (!o) ungated_prescan = true;
    }
    _pre_always = ungated_prescan;

    std::vector<size_t> expr_rule;
    for (size_t i = 0; i < _rules.size(); ++i) {
        const Rule& r = _rules[i];
        _hot[i].mask = TagSet{1} << r.bit;
        _hot[i].min_count = r.min_count;
        _hot[i].confirm = r.confirm;
        if (r.script != Script::NONE) {
            _script_rules.push_back(static_cast<uint32_t>(i));
            continue;
        }
        expr_rule.push_back(i);
        if (r.needs_digits) {
            _digits_gate = _digits_gate == 0 ? r.needs_digits : std::min(_digits_gate, r.needs_digits);
            _digits_mask |= TagSet{1} << r.bit;
        }
    }
    if (expr_rule.empty()) return true;

    // Longest match of a needs_digits= rule (region scans; see Scanner::scan_digits).
    size_t digits_width = 0;
    bool digits_bounded = true;
    // Check each expression alone first: Hyperscan's multi-compile reports the failing index, but
    // per-expression compiles give the precise message for that pattern (and cost only start-up).
    for (size_t k = 0; k < expr_rule.size(); ++k) {
        const Rule& rk = _rules[expr_rule[k]];
        unsigned fk = rk.hs_flags;
        if (rk.confirm != Confirm::NONE) fk |= HS_FLAG_SOM_LEFTMOST;
        hs_expr_info_t* info = nullptr;
        hs_compile_error_t* cerr = nullptr;
        if (hs_expression_info(rk.pattern.c_str(), fk, &info, &cerr) != HS_SUCCESS) {
            const Rule& r = rk;
            set(error, r.file + ":" + std::to_string(r.line) + ": bad pattern /" + r.pattern + "/: " +
                           (cerr && cerr->message ? cerr->message : "unknown error"));
            hs_free_compile_error(cerr);
            return false;
        }
        const bool empty_ok = info->min_width == 0;
        if (rk.needs_digits) {  // region scans need every match of the digit-gated rules bounded
            if (info->max_width == UINT_MAX) digits_bounded = false;
            else digits_width = std::max(digits_width, static_cast<size_t>(info->max_width));
        }
        std::free(info);
        if (empty_ok) {
            const Rule& r = _rules[expr_rule[k]];
            set(error, r.file + ":" + std::to_string(r.line) + ": pattern /" + r.pattern +
                           "/ can match empty text");
            return false;
        }
    }

    // One database from the regex rules that pass `take`; null when none does.
    auto build = [&](auto take, hs_database*& db, bool som_all = false) {
        std::vector<const char*> ex;
        std::vector<unsigned> fl, id;
        for (size_t i : expr_rule) {
            const Rule& r = _rules[i];
            if (!take(r)) continue;
            unsigned f = r.hs_flags;
            if (r.confirm != Confirm::NONE || som_all) f |= HS_FLAG_SOM_LEFTMOST;  // the start is needed
            else if (r.min_count == 1) f |= HS_FLAG_SINGLEMATCH;      // first match decides
            ex.push_back(r.pattern.c_str());
            fl.push_back(f);
            id.push_back(static_cast<unsigned>(i));
        }
        if (ex.empty()) return true;
        hs_compile_error_t* cerr = nullptr;
        if (hs_compile_multi(ex.data(), fl.data(), id.data(), static_cast<unsigned>(ex.size()), HS_MODE_BLOCK,
                             nullptr, &db, &cerr) != HS_SUCCESS) {
            std::string where = "rules";
            if (cerr && cerr->expression >= 0 && static_cast<size_t>(cerr->expression) < id.size()) {
                const Rule& r = _rules[id[static_cast<size_t>(cerr->expression)]];
                where = r.file + ":" + std::to_string(r.line) + ": pattern /" + r.pattern + "/";
            }
            set(error, where + ": " + (cerr && cerr->message ? cerr->message : "compile failed"));
            hs_free_compile_error(cerr);
            db = nullptr;
            return false;
        }
        // One scratch serves all databases (Hyperscan grows it to fit each).
        if (hs_alloc_scratch(db, &_proto) != HS_SUCCESS) {
            set(error, "rules: cannot allocate Hyperscan scratch");
            return false;
        }
        return true;
    };
    // Prose mode: the main rules are those neither prescan nor behind a gate. Code-dense text (split
    // mode) keeps the gated rules in its shared databases: there the gate bytes (\\ $ ( = ...) are
    // common, and one shared pass is cheaper than several gated ones.
    auto main_rule = [](const Rule& r) {
        return !r.prescan && !r.needs_digits && r.needs.empty() && !r.needs_run;
    };
    auto split_rule = [](const Rule& r) { return !r.prescan && !r.needs_digits; };
    if (!build([](const Rule& r) { return r.prescan; }, _db_pre)) return false;
    // The digit-gated database is scanned only around the dense block pairs when its matches are
    // bounded: it then reports match starts (SOM) so the scan can drop matches made by a region's
    // edges. Should SOM not compile for these patterns, the whole span is scanned as before.
    auto digit_rule = [](const Rule& r) { return r.needs_digits != 0; };
    if (digits_bounded && digits_width > 0) {
        if (build(digit_rule, _db_digits, true)) {
            _digits_margin = digits_width + 1;
        } else {
            if (_db_digits) hs_free_database(_db_digits);
            _db_digits = nullptr;
        }
    }
    if (!_db_digits && !build(digit_rule, _db_digits)) return false;
    for (size_t k = 0; k < lists.size(); ++k) {
        Gated g;
        g.open = lists[k].open;
        const uint32_t gate = static_cast<uint32_t>(k + 1);
        for (const Rule& r : _rules)
            if (!r.prescan && r.gate == gate) g.mask |= TagSet{1} << r.bit;
        if (!build([gate](const Rule& r) { return !r.prescan && r.gate == gate; }, g.db)) return false;
        if (g.db) _gated.push_back(g);
    }
    if (runs) {
        Gated g;
        g.open = GATE_RUN;
        for (const Rule& r : _rules)
            if (!r.prescan && r.needs_run) g.mask |= TagSet{1} << r.bit;
        if (!build([](const Rule& r) { return !r.prescan && r.needs_run != 0; }, g.db)) return false;
        if (g.db) _gated.push_back(g);
    }
    // Prose mode without an open prescan: one database of all main rules.
    if (!build(main_rule, _db_main)) return false;
    // Split mode (only with @early_exit files): per subset v of decided prescan tags, the shared
    // rules without those tags' rules; each @early_exit file's rules in its own database.
    if (!_groups.empty()) {
        for (size_t gi = 0; gi < _groups.size(); ++gi) {
            const uint32_t gid = static_cast<uint32_t>(gi + 1);
            if (!build([&](const Rule& r) { return split_rule(r) && r.group == gid; }, _groups[gi].db)) return false;
        }
        _variants.resize(size_t{1} << _pre_bits.size());
        for (size_t v = 0; v < _variants.size(); ++v) {
            TagSet decided = 0;
            for (size_t k = 0; k < _pre_bits.size(); ++k)
                if (v >> k & 1) decided |= TagSet{1} << _pre_bits[k];
            if (!build([&](const Rule& r) { return split_rule(r) && r.group == 0 && !(decided >> r.bit & 1); },
                       _variants[v]))
                return false;
        }
    }
    // Prose mode with the prescan open: prescan + main rules of the other tags in one database, and
    // per subset u of prescan tags that did not fire, those tags' main rules.
    if (_db_pre) {
        const TagSet pre = _pre_mask;
        if (!build([&](const Rule& r) { return r.prescan || (main_rule(r) && !(pre >> r.bit & 1)); }, _db_merged))
            return false;
        _rem.assign(size_t{1} << _pre_bits.size(), nullptr);
        for (size_t u = 1; u < _rem.size(); ++u) {
            TagSet open = 0;
            for (size_t k = 0; k < _pre_bits.size(); ++k)
                if (u >> k & 1) open |= TagSet{1} << _pre_bits[k];
            if (!build([&](const Rule& r) { return main_rule(r) && (open >> r.bit & 1); }, _rem[u])) return false;
        }
    }
    return true;
}

Classifier::~Classifier() {
    if (_proto) hs_free_scratch(_proto);
    if (_db_pre) hs_free_database(_db_pre);
    for (hs_database* db : _variants)
        if (db) hs_free_database(db);
    if (_db_main) hs_free_database(_db_main);
    if (_db_digits) hs_free_database(_db_digits);
    for (auto& g : _groups)
        if (g.db) hs_free_database(g.db);
    if (_db_merged) hs_free_database(_db_merged);
    for (hs_database* db : _rem)
        if (db) hs_free_database(db);
    for (auto& g : _gated)
        if (g.db) hs_free_database(g.db);
}

int Classifier::tag_bit(std::string_view name) const noexcept {
    for (size_t i = 0; i < _tags.size(); ++i)
        if (_tags[i] == name) return static_cast<int>(i);
    return -1;
}

TagSet Classifier::tag_mask(std::string_view name) const noexcept {
    const int b = tag_bit(name);
    return b < 0 ? 0 : TagSet{1} << b;
}

std::string Classifier::format(TagSet tags) const {
    std::string out;
    for (size_t i = 0; i < _tags.size(); ++i) {
        if (!(tags >> i & 1)) continue;
        if (!out.empty()) out += ',';
        out += _tags[i];
    }
    return out;
}

size_t Classifier::database_bytes() const noexcept {
    size_t total = 0;
    auto add = [&total](const hs_database* db) {
        size_t k = 0;
        if (db && hs_database_size(db, &k) == HS_SUCCESS) total += k;
    };
    add(_db_pre);
    for (const hs_database* db : _variants) add(db);
    add(_db_main);
    add(_db_digits);
    for (const auto& g : _groups) add(g.db);
    add(_db_merged);
    for (const hs_database* db : _rem) add(db);
    for (const auto& g : _gated) add(g.db);
    return total;
}

// ---- scanning ------------------------------------------------------------------------------

Scanner::Scanner(const Classifier& c) : _c(&c), _counts(c._rules.size(), 0) {
    (void)script_kernel_name();  // pick the kernel now, not on the first request
    if (c._proto && hs_clone_scratch(c._proto, &_scratch) != HS_SUCCESS) {
        _scratch = nullptr;
        return;
    }
    _ok = true;
}

Scanner::~Scanner() {
    if (_scratch) hs_free_scratch(_scratch);
}

int Scanner::on_match(unsigned id, unsigned long long from, unsigned long long to, unsigned,
                      void* ctx) noexcept {
    auto* s = static_cast<Scanner*>(ctx);
    if ((s->_edge_lo && from == 0) || (s->_edge_hi && to == s->_edge_end)) {
        ++s->_edge_rejects;  // made by the region's edge: not a match of the whole span
        return 0;
    }
    const Classifier::Hot& h = s->_c->_hot[id];
    if (h.confirm != Confirm::NONE) {
        const char* p = s->_cur + from;
        const size_t n = static_cast<size_t>(to - from);
        const bool ok = h.confirm == Confirm::LUHN ? luhn_valid(p, n) : iban_valid(p, n);
        if (!ok) {
            ++s->_confirm_rejects;
            return 0;
        }
    }
    uint32_t& cnt = s->_counts[id];
    if (cnt != UINT32_MAX) ++cnt;
    if (cnt >= h.min_count) {
        s->_tags |= h.mask;
        // In an @early_exit database, nothing more can be learnt once all its tags are set.
        if (s->_stop && (s->_tags & s->_stop) == s->_stop) return 1;
    }
    return 0;  // keep scanning: other rules may still match
}

TagSet Scanner::scan(const std::string_view* spans, size_t n) noexcept {
    _tags = 0;
    _pre_tags = 0;
    _scripts = ScriptCounts{};
    _split = false;
    _merged = false;
    _passes = 0;
    _digit_bytes = 0;
    if (!_ok) {
        ++_errors;
        return 0;
    }
    std::fill(_counts.begin(), _counts.end(), 0u);
    const Classifier& c = *_c;
    // The SIMD pass first: script rules need its counts, the gated databases (needs=, needs_run=,
    // needs_digits=) are scanned only when it saw their facts, and the punctuation density picks
    // the @early_exit mode.
    if (!c._script_rules.empty() || c._db_digits || !c._groups.empty() || c._use_gates) {
        const GateTable* gt = c.gate_table();
        for (size_t i = 0; i < n; ++i)
            count_scripts(reinterpret_cast<const uint8_t*>(spans[i].data()), spans[i].size(), _scripts, gt);
    }
    // Code-dense text: @early_exit files in their own databases, which stop at their first decisive
    // match; otherwise one database for all (one literal-matcher pass).
    const bool split = !c._groups.empty() && _scripts.punct * 1000 >= EARLY_EXIT_PUNCT_PERMILLE * _scripts.bytes;
    _split = split;
    const bool pre = c._db_pre && (c._pre_always || (_scripts.gates & c._pre_open));
    if (split) {
        // Prescan: cheap decisive rules; the tags they set select a shared database without those
        // tags' rules. Then each @early_exit file's database, stopping once its tags are all set.
        if (pre)
            for (size_t i = 0; i < n; ++i) scan_db(c._db_pre, spans[i].data(), spans[i].size(), 0);
        size_t v = 0;
        for (size_t k = 0; k < c._pre_bits.size(); ++k)
            if (_tags >> c._pre_bits[k] & 1) v |= size_t{1} << k;
        _pre_tags = _tags;
        for (size_t i = 0; i < n; ++i) {
            if (c._variants[v]) scan_db(c._variants[v], spans[i].data(), spans[i].size(), 0);
            for (const auto& g : c._groups)
                if (g.db && (_tags & g.mask) != g.mask) scan_db(g.db, spans[i].data(), spans[i].size(), g.mask);
        }
    } else {
        if (pre) {
            // Prescan and main rules in one pass; the prescan tags that did not fire then scan their
            // own main rules, stopping once all of them are set.
            _merged = true;
            for (size_t i = 0; i < n; ++i) scan_db(c._db_merged, spans[i].data(), spans[i].size(), 0);
            _pre_tags = _tags & c._pre_mask;
            size_t u = 0;
            TagSet open = 0;
            for (size_t k = 0; k < c._pre_bits.size(); ++k)
                if (!(_tags >> c._pre_bits[k] & 1)) {
                    u |= size_t{1} << k;
                    open |= TagSet{1} << c._pre_bits[k];
                }
            if (u && c._rem[u])
                for (size_t i = 0; i < n && (_tags & open) != open; ++i)
                    scan_db(c._rem[u], spans[i].data(), spans[i].size(), open);
        } else if (c._db_main) {
            for (size_t i = 0; i < n; ++i) scan_db(c._db_main, spans[i].data(), spans[i].size(), 0);
        }
        // Gated databases whose facts the SIMD pass saw (prose mode only; see compile()).
        for (const auto& g : c._gated)
            if ((_scripts.gates & g.open) && (_tags & g.mask) != g.mask)
                for (size_t i = 0; i < n; ++i) scan_db(g.db, spans[i].data(), spans[i].size(), 0);
    }
    if (c._db_digits && _scripts.digit_window >= c._digits_gate && (_tags & c._digits_mask) != c._digits_mask)
        for (size_t i = 0; i < n && (_tags & c._digits_mask) != c._digits_mask; ++i)
            scan_digits(spans[i].data(), spans[i].size());
    _cur = nullptr;
    for (uint32_t ri : c._script_rules) {
        const Rule& r = c._rules[ri];
        const uint64_t cnt = _scripts.of(r.script);
        _counts[ri] = cnt > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(cnt);
        if (cnt >= r.min_count && static_cast<double>(cnt) >= r.min_fraction * static_cast<double>(_scripts.letters))
            _tags |= c._hot[ri].mask;
    }
    return _tags;
}

void Scanner::scan_db(const hs_database* db, const char* p, size_t len, TagSet stop_mask) noexcept {
    _stop = stop_mask;
    ++_passes;
    // hs_scan takes an unsigned int length; texts are bounded by the body limit (MBs), but a
    // longer span is scanned in pieces rather than truncated silently.
    while (len > 0) {
        const unsigned chunk = len > (1u << 30) ? (1u << 30) : static_cast<unsigned>(len);
        _cur = p;
        const hs_error_t rc = hs_scan(db, p, chunk, 0, _scratch, &Scanner::on_match, this);
        if (rc == HS_SCAN_TERMINATED) break;  // early exit: the group's tags are all set
        if (rc != HS_SUCCESS) ++_errors;
        p += chunk;
        len -= chunk;
    }
}

namespace {

// ASCII digits in p[0..n), n <= 32.
inline uint32_t block_digits(const uint8_t* p, size_t n) noexcept {
#if defined(__SSE2__)
    if (n == 32) {
        const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
        auto mask = [&](const uint8_t* q) {
            const __m128i d = _mm_sub_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), zero);
            return static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(d, nine), nine)));
        };
        return static_cast<uint32_t>(__builtin_popcount(mask(p) | mask(p + 16) << 16));
    }
#endif
    uint32_t k = 0;
    for (size_t i = 0; i < n; ++i) k += static_cast<uint32_t>(p[i] - '0') <= 9;
    return k;
}

}  // namespace

// The digit-gated rules hold >= _digits_gate digits within 33 bytes (the author's guarantee that
// the whole-span gate already relies on), and any 33 bytes lie in one pair of consecutive 32-byte
// blocks; so every match overlaps a pair holding that many digits and, being at most W bytes long,
// lies within W bytes of it. Only those stretches are scanned, merged when less than
// DIGIT_REGION_MERGE_GAP apart (the bytes between are the span's own, so scanning them is exact). A region
// cut out of a span can make matches the span does not have — at its first byte (`^`, `\b`, the
// card rule's (^|[^\w...]) context) or its last (`\b`) — but never one a real match hides: real
// matches lie at least one byte inside (margin W + 1), so with leftmost starts (SOM) a report
// starting at the region's first byte or ending at its last is an artefact and is dropped.
void Scanner::scan_digits(const char* p, size_t len) noexcept {
    const Classifier& c = *_c;
    const size_t m = c._digits_margin;
    if (m == 0) {
        _digit_bytes += len;
        scan_db(c._db_digits, p, len, 0);
        return;
    }
    const uint8_t* u = reinterpret_cast<const uint8_t*>(p);
    auto region = [&](size_t s, size_t e) {
        _edge_lo = s > 0;
        _edge_hi = e < len;
        _edge_end = e - s;
        _digit_bytes += e - s;
        scan_db(c._db_digits, p + s, e - s, c._digits_mask);
        _edge_lo = _edge_hi = false;
        return (_tags & c._digits_mask) != c._digits_mask;  // false: all decided, stop
    };
    size_t rs = 0, re = 0;
    bool open = false;
    uint32_t prev = 0;
    for (size_t b = 0; b < len; b += 32) {
        const size_t bn = len - b < 32 ? len - b : 32;
        const uint32_t d = block_digits(u + b, bn);
        if (prev + d >= c._digits_gate) {  // the pair ending with this block
            const size_t lo = b >= 32 + m ? b - 32 - m : 0;
            const size_t hi = len - (b + bn) > m ? b + bn + m : len;
            if (open && lo <= re + DIGIT_REGION_MERGE_GAP) {
                re = hi;
            } else {
                if (open && !region(rs, re)) return;
                rs = lo;
                re = hi;
                open = true;
            }
        }
        prev = d;
    }
    if (open) region(rs, re);
}

uint32_t Scanner::tag_matches(uint32_t bit) const noexcept {
    uint64_t sum = 0;
    for (size_t i = 0; i < _counts.size(); ++i)
        if (_c->_rules[i].bit == bit) sum += _counts[i];
    return sum > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(sum);
}

}  // namespace tlb::classify
