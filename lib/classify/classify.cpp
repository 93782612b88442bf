// Rule-set compilation (control plane) and per-worker scanning (data plane).
#include "classify/classify.hpp"

#include <hs/hs.h>

#include <algorithm>
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
    std::vector<const char*> exprs, exprs_d;
    std::vector<unsigned> flags, ids, flags_d, ids_d;
    std::vector<std::vector<const char*>> exprs_g(_groups.size());
    std::vector<std::vector<unsigned>> flags_g(_groups.size()), ids_g(_groups.size());
    for (const Rule& r : _rules)
        if (r.group) _groups[r.group - 1].mask |= TagSet{1} << r.bit;
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
        unsigned f = r.hs_flags;
        if (r.confirm != Confirm::NONE) f |= HS_FLAG_SOM_LEFTMOST;  // the check needs the start
        else if (r.min_count == 1) f |= HS_FLAG_SINGLEMATCH;      // first match decides
        expr_rule.push_back(i);
        if (r.needs_digits) {
            exprs_d.push_back(r.pattern.c_str());
            flags_d.push_back(f);
            ids_d.push_back(static_cast<unsigned>(i));
            _digits_gate = _digits_gate == 0 ? r.needs_digits : std::min(_digits_gate, r.needs_digits);
        } else if (r.group) {
            exprs_g[r.group - 1].push_back(r.pattern.c_str());
            flags_g[r.group - 1].push_back(f);
            ids_g[r.group - 1].push_back(static_cast<unsigned>(i));
        } else {
            exprs.push_back(r.pattern.c_str());
            flags.push_back(f);
            ids.push_back(static_cast<unsigned>(i));
        }
    }
    if (expr_rule.empty()) return true;

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
        std::free(info);
        if (empty_ok) {
            const Rule& r = _rules[expr_rule[k]];
            set(error, r.file + ":" + std::to_string(r.line) + ": pattern /" + r.pattern +
                           "/ can match empty text");
            return false;
        }
    }

    auto build = [&](std::vector<const char*>& ex, std::vector<unsigned>& fl, std::vector<unsigned>& id,
                     hs_database*& db) {
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
        // One scratch serves both databases (Hyperscan grows it to fit each).
        if (hs_alloc_scratch(db, &_proto) != HS_SUCCESS) {
            set(error, "rules: cannot allocate Hyperscan scratch");
            return false;
        }
        return true;
    };
    if (!build(exprs, flags, ids, _db) || !build(exprs_d, flags_d, ids_d, _db_digits)) return false;
    if (_groups.empty()) return true;
    std::vector<const char*> exprs_a = exprs;
    std::vector<unsigned> flags_a = flags, ids_a = ids;
    for (size_t g = 0; g < _groups.size(); ++g) {
        if (!build(exprs_g[g], flags_g[g], ids_g[g], _groups[g].db)) return false;
        exprs_a.insert(exprs_a.end(), exprs_g[g].begin(), exprs_g[g].end());
        flags_a.insert(flags_a.end(), flags_g[g].begin(), flags_g[g].end());
        ids_a.insert(ids_a.end(), ids_g[g].begin(), ids_g[g].end());
    }
    return build(exprs_a, flags_a, ids_a, _db_all);
}

Classifier::~Classifier() {
    if (_proto) hs_free_scratch(_proto);
    if (_db) hs_free_database(_db);
    if (_db_digits) hs_free_database(_db_digits);
    for (auto& g : _groups)
        if (g.db) hs_free_database(g.db);
    if (_db_all) hs_free_database(_db_all);
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
    size_t n = 0, m = 0;
    if (_db && hs_database_size(_db, &n) != HS_SUCCESS) n = 0;
    if (_db_digits && hs_database_size(_db_digits, &m) != HS_SUCCESS) m = 0;
    for (const auto& g : _groups) {
        size_t k = 0;
        if (g.db && hs_database_size(g.db, &k) == HS_SUCCESS) m += k;
    }
    return n + m;
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
    _scripts = ScriptCounts{};
    if (!_ok) {
        ++_errors;
        return 0;
    }
    std::fill(_counts.begin(), _counts.end(), 0u);
    // The SIMD pass first: script rules need its counts, and the digit-gated database is scanned
    // only when some 33-byte stretch can hold enough digits.
    if (!_c->_script_rules.empty() || _c->_db_digits || _c->_db_all)
        for (size_t i = 0; i < n; ++i)
            count_scripts(reinterpret_cast<const uint8_t*>(spans[i].data()), spans[i].size(), _scripts);
    const bool digits = _c->_db_digits && _scripts.digit_window >= _c->_digits_gate;
    // Code-dense text: @early_exit files in their own databases, which stop at their first decisive
    // match; otherwise one database for all (one literal-matcher pass).
    const bool split = _c->_db_all && _scripts.punct * 1000 >= EARLY_EXIT_PUNCT_PERMILLE * _scripts.bytes;
    _split = split;
    for (size_t i = 0; i < n; ++i) {
        if (_c->_db_all && !split) {
            scan_db(_c->_db_all, spans[i].data(), spans[i].size(), 0);
        } else {
            if (_c->_db) scan_db(_c->_db, spans[i].data(), spans[i].size(), 0);
            for (const auto& g : _c->_groups)
                if (g.db && (_tags & g.mask) != g.mask) scan_db(g.db, spans[i].data(), spans[i].size(), g.mask);
        }
        if (digits) scan_db(_c->_db_digits, spans[i].data(), spans[i].size(), 0);
    }
    _cur = nullptr;
    for (uint32_t ri : _c->_script_rules) {
        const Rule& r = _c->_rules[ri];
        const uint64_t cnt = _scripts.of(r.script);
        _counts[ri] = cnt > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(cnt);
        if (cnt >= r.min_count && static_cast<double>(cnt) >= r.min_fraction * static_cast<double>(_scripts.letters))
            _tags |= _c->_hot[ri].mask;
    }
    return _tags;
}

void Scanner::scan_db(const hs_database* db, const char* p, size_t len, TagSet stop_mask) noexcept {
    _stop = stop_mask;
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

uint32_t Scanner::tag_matches(uint32_t bit) const noexcept {
    uint64_t sum = 0;
    for (size_t i = 0; i < _counts.size(); ++i)
        if (_c->_rules[i].bit == bit) sum += _counts[i];
    return sum > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(sum);
}

}  // namespace tlb::classify
