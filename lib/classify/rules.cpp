// Rule-file parser. One rule per line:
//   tag  /pattern/flags  [min_count=N] [confirm=luhn|iban] [needs_digits=N] [prescan=yes]
//                        [needs=ITEM,ITEM...] [needs_run=N]
//   tag  script:NAME     min_fraction=F [min_count=N]
// '#' starts a comment when it is the first non-blank character of a line (patterns may contain
// '#', so there are no trailing comments). Inside /.../ a '/' is written '\/'.
#include "classify/rules.hpp"

#include <hs/hs.h>

#include <cerrno>
#include <cstdlib>

namespace tlb::classify {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

bool fail(std::string* error, std::string_view name, uint32_t line, const std::string& msg) {
    if (error) *error = std::string(name) + ":" + std::to_string(line) + ": " + msg;
    return false;
}

bool valid_tag(std::string_view t) {
    if (t.empty() || t.size() > MAX_TAG_NAME) return false;
    for (char c : t)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
    return true;
}

bool parse_u32(std::string_view v, uint32_t lo, uint32_t hi, uint32_t& out) {
    if (v.empty() || v.size() > 9) return false;
    uint32_t x = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return false;
        x = x * 10 + static_cast<uint32_t>(c - '0');
    }
    if (x < lo || x > hi) return false;
    out = x;
    return true;
}

bool parse_fraction(std::string_view v, double& out) {
    std::string s(v);
    if (s.empty()) return false;
    char* end = nullptr;
    errno = 0;
    const double d = std::strtod(s.c_str(), &end);
    if (errno != 0 || end != s.c_str() + s.size() || !(d > 0.0 && d <= 1.0)) return false;
    out = d;
    return true;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// needs=ITEM[,ITEM...]: each item one or two bytes, written as themselves (UTF-8 characters are
// their bytes), \xHH or \\ ; a comma is written \x2C, a space \x20. Returns "" or the error.
std::string parse_needs(std::string_view v, std::vector<std::string>& out) {
    std::string cur;
    auto end_item = [&]() -> std::string {
        if (cur.empty()) return "needs= has an empty item";
        if (cur.size() > 2)
            return "needs= item of " + std::to_string(cur.size()) + " bytes (items are 1 or 2 bytes)";
        out.push_back(cur);
        cur.clear();
        return {};
    };
    for (size_t i = 0; i < v.size(); ++i) {
        const char c = v[i];
        if (c == ',') {
            if (std::string e = end_item(); !e.empty()) return e;
        } else if (c == '\\') {
            if (i + 1 < v.size() && v[i + 1] == '\\') {
                cur.push_back('\\');
                ++i;
            } else if (i + 3 < v.size() && v[i + 1] == 'x' && hex_digit(v[i + 2]) >= 0 && hex_digit(v[i + 3]) >= 0) {
                cur.push_back(static_cast<char>(hex_digit(v[i + 2]) * 16 + hex_digit(v[i + 3])));
                i += 3;
            } else {
                return "needs= escape must be \\\\ or \\xHH";
            }
        } else {
            cur.push_back(c);
        }
    }
    if (std::string e = end_item(); !e.empty()) return e;
    if (out.size() > MAX_NEEDS_ITEMS) return "needs= has more than " + std::to_string(MAX_NEEDS_ITEMS) + " items";
    return {};
}

bool parse_script(std::string_view v, Script& out) {
    if (v == "cjk") out = Script::CJK;
    else if (v == "cyrillic") out = Script::CYRILLIC;
    else if (v == "greek") out = Script::GREEK;
    else if (v == "arabic") out = Script::ARABIC;
    else return false;
    return true;
}

// Parses one non-comment line into r. Returns "" or the error message.
std::string parse_line(std::string_view s, Rule& r) {
    size_t i = 0;
    while (i < s.size() && !is_blank(s[i])) ++i;
    r.tag = std::string(s.substr(0, i));
    if (!valid_tag(r.tag))
        return "bad tag name '" + r.tag + "' (1-" + std::to_string(MAX_TAG_NAME) + " of [a-z0-9_-])";
    while (i < s.size() && is_blank(s[i])) ++i;
    if (i == s.size()) return "rule '" + r.tag + "' has no pattern";

    if (s[i] == '/') {
        const size_t start = ++i;
        bool closed = false;
        for (; i < s.size(); ++i) {
            if (s[i] == '\\') { ++i; continue; }
            if (s[i] == '/') { closed = true; break; }
        }
        if (!closed) return "pattern has no closing '/'";
        std::string pat;
        // '\/' becomes '/' (Hyperscan would accept either; unescaping keeps messages readable).
        for (size_t k = start; k < i; ++k) {
            if (s[k] == '\\' && k + 1 < i && s[k + 1] == '/') continue;
            pat.push_back(s[k]);
        }
        if (pat.empty()) return "empty pattern";
        r.pattern = pat;
        ++i;
        const size_t fstart = i;
        while (i < s.size() && !is_blank(s[i])) {
            switch (s[i]) {
                case 'i': r.hs_flags |= HS_FLAG_CASELESS; break;
                case 's': r.hs_flags |= HS_FLAG_DOTALL; break;
                case 'm': r.hs_flags |= HS_FLAG_MULTILINE; break;
                case '8': r.hs_flags |= HS_FLAG_UTF8; break;
                case 'u': r.hs_flags |= HS_FLAG_UTF8 | HS_FLAG_UCP; break;
                default:
                    return std::string("unknown flag '") + s[i] + "' (known: i s m 8 u)";
            }
            ++i;
        }
        r.flags = std::string(s.substr(fstart, i - fstart));
    } else if (s.substr(i, 7) == "script:") {
        i += 7;
        const size_t ns = i;
        while (i < s.size() && !is_blank(s[i])) ++i;
        const std::string_view name = s.substr(ns, i - ns);
        if (!parse_script(name, r.script))
            return "unknown script '" + std::string(name) + "' (known: cjk cyrillic greek arabic)";
    } else {
        return "expected /pattern/flags or script:NAME after tag '" + r.tag + "'";
    }

    // key=value options.
    bool have_fraction = false;
    for (;;) {
        while (i < s.size() && is_blank(s[i])) ++i;
        if (i == s.size()) break;
        const size_t os = i;
        while (i < s.size() && !is_blank(s[i])) ++i;
        const std::string_view opt = s.substr(os, i - os);
        const size_t eq = opt.find('=');
        if (eq == std::string_view::npos) return "option '" + std::string(opt) + "' is not key=value";
        const std::string_view k = opt.substr(0, eq), v = opt.substr(eq + 1);
        if (k == "min_count") {
            if (!parse_u32(v, 1, 1000000, r.min_count))
                return "min_count must be an integer in [1, 1000000], got '" + std::string(v) + "'";
        } else if (k == "confirm") {
            if (r.script != Script::NONE) return "confirm= applies to /pattern/ rules only";
            if (v == "luhn") r.confirm = Confirm::LUHN;
            else if (v == "iban") r.confirm = Confirm::IBAN;
            else return "unknown confirm '" + std::string(v) + "' (known: luhn iban)";
        } else if (k == "needs_digits") {
            if (r.script != Script::NONE) return "needs_digits= applies to /pattern/ rules only";
            if (!parse_u32(v, 1, 1000000, r.needs_digits))
                return "needs_digits must be an integer in [1, 1000000], got '" + std::string(v) + "'";
        } else if (k == "prescan") {
            if (r.script != Script::NONE) return "prescan= applies to /pattern/ rules only";
            if (v == "yes") r.prescan = true;
            else if (v == "no") r.prescan = false;
            else return "prescan must be yes or no, got '" + std::string(v) + "'";
        } else if (k == "needs") {
            if (r.script != Script::NONE) return "needs= applies to /pattern/ rules only";
            r.needs.clear();
            if (std::string e = parse_needs(v, r.needs); !e.empty()) return e;
        } else if (k == "needs_run") {
            if (r.script != Script::NONE) return "needs_run= applies to /pattern/ rules only";
            if (!parse_u32(v, RUN_GATE_LEN, 1000000, r.needs_run))
                return "needs_run must be an integer in [" + std::to_string(RUN_GATE_LEN) + ", 1000000], got '" +
                       std::string(v) + "'";
        } else if (k == "min_fraction") {
            if (r.script == Script::NONE) return "min_fraction= applies to script: rules only";
            if (!parse_fraction(v, r.min_fraction))
                return "min_fraction must be a number in (0, 1], got '" + std::string(v) + "'";
            have_fraction = true;
        } else {
            // The list is pinned by classify_test (RuleFiles.ErrorsNameFileAndLine); needs= and
            // needs_run= are documented in docs/classify.md.
            return "unknown option '" + std::string(k) + "' (known: min_count confirm needs_digits needs needs_run prescan min_fraction)";
        }
    }
    if (r.script != Script::NONE && !have_fraction) return "script: rule needs min_fraction=F";
    if (r.prescan && r.needs_digits) return "prescan= and needs_digits= exclude each other";
    if (r.needs_digits && (!r.needs.empty() || r.needs_run)) return "needs_digits= excludes needs= and needs_run=";
    if (!r.needs.empty() && r.needs_run) return "needs= and needs_run= exclude each other";
    return {};
}

}  // namespace

bool parse_rules(std::string_view name, std::string_view text, std::vector<Rule>& rules,
                 std::vector<std::string>& tags, std::string* error, bool* early_exit) {
    if (early_exit) *early_exit = false;
    uint32_t lineno = 0;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string_view line = text.substr(pos, nl - pos);
        pos = nl + 1;
        ++lineno;
        while (!line.empty() && is_blank(line.front())) line.remove_prefix(1);
        while (!line.empty() && is_blank(line.back())) line.remove_suffix(1);
        if (line.empty() || line.front() == '#') continue;
        if (line.front() == '@') {
            if (line != "@early_exit") return fail(error, name, lineno, "unknown directive '" + std::string(line) + "' (known: @early_exit)");
            if (early_exit) *early_exit = true;
            continue;
        }
        Rule r;
        r.file = std::string(name);
        r.line = lineno;
        const std::string msg = parse_line(line, r);
        if (!msg.empty()) return fail(error, name, lineno, msg);
        uint32_t bit = 0;
        for (; bit < tags.size(); ++bit)
            if (tags[bit] == r.tag) break;
        if (bit == tags.size()) {
            if (tags.size() == MAX_TAGS)
                return fail(error, name, lineno, "more than " + std::to_string(MAX_TAGS) + " tags");
            tags.push_back(r.tag);
        }
        r.bit = bit;
        if (rules.size() == MAX_RULES)
            return fail(error, name, lineno, "more than " + std::to_string(MAX_RULES) + " rules");
        rules.push_back(std::move(r));
    }
    return true;
}

}  // namespace tlb::classify
