// Rule-file parser. One rule per line:
//   tag  /pattern/flags  [min_count=N] [confirm=luhn|iban]
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
        } else if (k == "min_fraction") {
            if (r.script == Script::NONE) return "min_fraction= applies to script: rules only";
            if (!parse_fraction(v, r.min_fraction))
                return "min_fraction must be a number in (0, 1], got '" + std::string(v) + "'";
            have_fraction = true;
        } else {
            return "unknown option '" + std::string(k) + "' (known: min_count confirm needs_digits prescan min_fraction)";
        }
    }
    if (r.script != Script::NONE && !have_fraction) return "script: rule needs min_fraction=F";
    if (r.prescan && r.needs_digits) return "prescan= and needs_digits= exclude each other";
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
