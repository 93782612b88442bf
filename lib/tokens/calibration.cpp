// Calibration: vocabulary analysis + corpus fit, the calibration file format (TOML), and the
// built-in vocabulary-free model. Control plane only.
//
// Fit procedure (docs/tokens.md has the reasoning):
//  1. The vocabulary gives the piece set (segment keys), the single-piece code point bitmap, the
//     longest CJK piece, and priors for whitespace runs.
//  2. Every corpus document is encoded with sentencepiece (pieces with byte offsets) and segmented
//     with the estimator's own segmentation (explain()); each piece is attributed to the segment
//     holding its first byte, which gives the true piece count of every segment in context.
//  3. Costs are the mean true count per cell: whitespace run length, hit per (type, space), miss
//     per (type, space, case, kind, length) shrunk towards coarser cells when a cell has little
//     data, and a scale for the greedy CJK matcher.
#include <sentencepiece_processor.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <sstream>

#include "tokens/calibrate.hpp"
#include "tokens/model.hpp"

namespace tlb::tokens {

namespace {

const std::string WS_MARK = "\xE2\x96\x81";  // U+2581 '▁'

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

size_t count_cps(std::string_view s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

bool all_ws_marks(std::string_view s) {
    if (s.empty() || s.size() % 3) return false;
    for (size_t i = 0; i < s.size(); i += 3)
        if (s.substr(i, 3) != WS_MARK) return false;
    return true;
}

uint32_t to_fix(double v) {
    if (!(v >= 0)) v = 0;
    if (v > 60000.0 / FIX) v = 60000.0 / FIX;
    return uint32_t(std::lround(v * FIX));
}

bool valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const uint8_t b = uint8_t(s[i]);
        const size_t len = b < 0x80 ? 1 : (b >= 0xC2 && b <= 0xDF) ? 2 : (b >= 0xE0 && b <= 0xEF) ? 3 : (b >= 0xF0 && b <= 0xF4) ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        for (size_t k = 1; k < len; ++k)
            if ((uint8_t(s[i + k]) & 0xC0) != 0x80) return false;
        i += len;
    }
    return true;
}

// A TOML basic string ("...", escapes, UTF-8 kept). toml++'s default output may choose a
// multi-line literal for a string with a newline, whose first newline a reader drops.
std::string basic_string(const std::string& s) {
    std::ostringstream o;
    o << toml::toml_formatter{toml::value<std::string>(s), toml::format_flags::allow_unicode_strings};
    return o.str();
}

}  // namespace

void build_lookup(Model& m) {
    m.cp_bitmap.assign(0x10000 / 64, 0);
    m.han_max_chars = 1;
    size_t keys = 0;
    for (const auto& p : m.pieces) keys += 1 + (p.size() <= KEY_MAX + 3);
    m.set.init(keys + 16);
    std::map<uint32_t, uint32_t> runs;  // symbol character -> longest run that is a piece
    for (const auto& piece : m.pieces) {
        if (piece.empty()) continue;
        if (all_ws_marks(piece)) continue;
        bool space = starts_with(piece, WS_MARK);
        std::string_view body(piece);
        if (space) body.remove_prefix(3);
        if (!space && body.size() >= 2 && BYTE_CLASS[uint8_t(body[0])] == BC_PUNCT) {
            const size_t cl = utf8_len(uint8_t(body[0]));  // a symbol class byte leads its character
            bool rep = body.size() % cl == 0 && body.size() / cl >= 2;
            for (size_t i = cl; rep && i < body.size(); i += cl) rep = body.compare(i, cl, body.substr(0, cl)) == 0;
            if (rep) {
                uint32_t k = 0;
                for (size_t i = 0; i < cl; ++i) k |= uint32_t(uint8_t(body[i])) << (8 * i);
                runs[k] = std::max<uint32_t>(runs[k], uint32_t(body.size() / cl));
            }
        }
        if (body.empty() || body.size() > KEY_MAX) continue;
        m.set.insert(key_hash(reinterpret_cast<const uint8_t*>(body.data()), body.size(), space));
        const size_t cps = count_cps(body);
        const uint8_t lead = uint8_t(body[0]);
        if (!space && cps == 1) {
            uint32_t cp = 0;
            const uint8_t b = lead;
            if (b < 0x80) cp = b;
            else if (b >= 0xF0) cp = 0x10000;  // outside the bitmap
            else {
                const int len = b >= 0xE0 ? 3 : 2;
                cp = b & (0x7F >> len);
                for (int i = 1; i < len && i < int(body.size()); ++i) cp = (cp << 6) | (uint8_t(body[i]) & 0x3F);
            }
            if (cp < 0x10000) m.cp_bitmap[cp >> 6] |= uint64_t(1) << (cp & 63);
        }
        if (BYTE_CLASS[lead] == BC_HAN && cps > size_t(m.han_max_chars))
            m.han_max_chars = int(std::min<size_t>(cps, 8));
    }
    m.lead_bits.fill(0);
    for (uint32_t lead = 0xC2; lead <= 0xDF; ++lead) m.lead_bits[lead] = m.cp_bitmap[lead & 0x1F];
    m.run_longest.assign(runs.begin(), runs.end());

}

// Memo table: corpus segments (file order = priority), then every vocabulary piece at its hit
// cost, then whitespace runs, digits and control bytes at their fitted costs. Keys that do not fit
// (bucket full, > MEMO_KEY_MAX bytes) stay misses; the feature model prices them.
void build_memo(Model& m) {
    m.memo = MemoTable{};
    if (m.memo_keys.empty()) return;
    m.memo.init(m.memo_keys.size() + m.pieces.size() + 64);
    auto put = [&](const std::string& key, uint32_t cost) {
        if (key.empty() || key.size() > MEMO_KEY_MAX) return;
        m.memo.insert(memo_hash_str(key), cost);
    };
    for (const auto& [k, c] : m.memo_keys) put(k, c);
    for (const auto& piece : m.pieces) {
        if (piece.empty() || all_ws_marks(piece)) continue;
        const bool space = starts_with(piece, WS_MARK);
        std::string key = space ? " " + piece.substr(3) : piece;
        if (key.size() > MEMO_KEY_MAX || key == " ") continue;
        const uint8_t c0 = BYTE_CLASS[uint8_t(key[space ? 1 : 0])];
        if (c0 == BC_SP || c0 == BC_CTRL || c0 == BC_DIGIT || c0 == BC_CONT) continue;
        // Only keys that can be whole segments: one class (continuations follow their lead).
        bool one_class = true;
        for (size_t i = space ? 2 : 1; i < key.size(); ++i) {
            const uint8_t c = BYTE_CLASS[uint8_t(key[i])];
            if (c != BC_CONT && c != c0) one_class = false;
        }
        if (!one_class) continue;
        put(key, m.hit_cost[size_t(word_type(c0)) * 2 + (space ? 1 : 0)]);
    }
    for (size_t k = 1; k <= MEMO_KEY_MAX && k <= size_t(WS_MAX); ++k) put(std::string(k, ' '), m.ws_cost[k]);
    for (char d = '0'; d <= '9'; ++d) put(std::string(1, d), m.digit_cost);
    for (int b = 0; b < 256; ++b)
        if (BYTE_CLASS[size_t(b)] == BC_CTRL) put(std::string(1, char(b)), m.ctrl_cost);
    // What a probe of each one-byte ASCII key finds (a fingerprint collision included), so the
    // table gives exactly the probe's answer.
    for (int b = 0; b < 128; ++b) {
        alignas(16) uint8_t key[32] = {};
        key[0] = uint8_t(b);
        const uint64_t hv = memo_hash(key, 1);
        const uint64_t bk = m.memo.buckets[uint32_t(hv >> 32) & m.memo.bucket_mask];
        uint8_t cost = 0xFF;
        for (int i = 0; i < 4; ++i) {
            const uint16_t e = uint16_t(bk >> (16 * i));
            if ((e & 0xFFF0) == uint16_t(hv & 0xFFF0)) {
                cost = uint8_t(e & 15);
                break;
            }
        }
        m.memo.single[size_t(b)] = cost;
    }
}

// Per-code-point Han costs: the file's entries over defaults (single-piece characters: the mean of
// the fitted ones; others: byte fallback, one token per UTF-8 byte, or without byte fallback one
// <unk> piece - a run of such characters is one <unk>, which the fitted entries reflect).
void build_han_cost(Model& m) {
    m.han_cost.clear();
    if (m.han_cost_keys.empty()) return;
    double sum = 0, n = 0;
    for (const auto& [cp, c] : m.han_cost_keys)
        if (cp != 0x20 && cp < 0x10000 && m.cp_single(cp)) {
            sum += c;
            n += 1;
        }
    const uint32_t single = n > 0 ? uint32_t(std::lround(sum / n)) : FIX;
    m.han_cost.assign(0x10001, 0);  // + a zero entry the SIMD run pricing reads past a run's end
    for (uint32_t cp = 0; cp < 0x10000; ++cp) {
        const uint32_t bytes = cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
        m.han_cost[cp] = uint16_t(m.cp_single(cp) ? single : (m.byte_fallback ? bytes : 1) * FIX);
    }
    m.han_cost[0x20] = uint16_t(m.ws_cost[1]);
    for (const auto& [cp, c] : m.han_cost_keys)
        if (cp < 0x10000) m.han_cost[cp] = uint16_t(std::min<uint32_t>(c, 65535));
}

// ---- built-in model ----------------------------------------------------------------------------

void builtin_model(Model& m) {
    // No vocabulary: nothing is a known piece, so every word is priced by the miss table, filled
    // with typical Llama-style 32k-vocabulary ratios. Rough (~20-25% off); calibrate.
    m.name = "builtin";
    m.source = "<builtin>";
    m.pieces.clear();
    build_lookup(m);
    m.ctrl_cost = FIX;
    m.digit_cost = FIX;
    for (int k = 0; k <= WS_MAX; ++k) m.ws_cost[size_t(k)] = to_fix(k == 0 ? 0 : std::ceil(k / 16.0));
    for (auto& h : m.hit_cost) h = FIX;
    m.miss_cost.assign(MISS_SIZE, 0);
    // Chars per token for ordinary words by type (latin, punct, cyrillic, greek, other).
    const double cpt[N_TYPES] = {4.2, 1.6, 2.4, 2.0, 1.5, 1.0};
    for (int ty = 0; ty < N_TYPES; ++ty)
        for (int sp = 0; sp < 2; ++sp)
            for (int cs = 0; cs < N_CASE; ++cs)
                for (int kd = 0; kd < N_KIND; ++kd)
                    for (int len = 0; len <= LEN_MAX; ++len) {
                        const int cc = cs & 3;
                        double v = std::max(1.0, (len + 0.0) / cpt[ty] + (cc >= 2 ? 0.8 : cc == 1 ? 0.3 : 0.0));
                        m.miss_cost[miss_index(ty, sp, cs, kd, len)] = uint16_t(to_fix(len == 0 ? 1.0 : v));
                    }
    for (uint32_t cp = 0x4E00; cp < 0xA000; ++cp) m.cp_bitmap[cp >> 6] |= uint64_t(1) << (cp & 63);
    for (uint32_t cp = 0x20; cp < 0x7F; ++cp) m.cp_bitmap[cp >> 6] |= uint64_t(1) << (cp & 63);
    for (uint32_t cp = 0xA0; cp < 0x530; ++cp) m.cp_bitmap[cp >> 6] |= uint64_t(1) << (cp & 63);
    for (uint32_t lead = 0xC2; lead <= 0xDF; ++lead) m.lead_bits[lead] = m.cp_bitmap[lead & 0x1F];
    m.han_scale = FIX;
    m.miss_scale.fill(FIX);
}

// ---- TOML ----------------------------------------------------------------------------------

std::string model_to_toml(const Model& m) {
    // Written by hand for a compact, diffable file: cost tables one row per line with 4 decimals
    // (enough to restore the 1/256 fixed-point values exactly); strings through toml++ so every
    // piece is escaped correctly.
    auto str = [](const std::string& v) { return basic_string(v); };
    auto row = [](std::ostringstream& os, auto begin, auto end, size_t per_line) {
        size_t i = 0, n = size_t(end - begin);
        os << "[";
        for (auto it = begin; it != end; ++it, ++i) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%.4f", double(*it) / FIX);
            if (per_line && i % per_line == 0) os << "\n  ";
            os << buf << (i + 1 < n ? ", " : "");
        }
        os << (per_line ? "\n]\n" : "]\n");
    };
    std::ostringstream os;
    os << "# tokenlb token-estimator calibration (written by `tokenlb-tokens calibrate`).\n"
          "# [memo]: segments priced exactly (most frequent first); [han]: per-code-point costs of CJK\n"
          "# runs the memo misses. Other costs are tokens. miss[((((type*2+space)*8+case)*10+kind)*25)+len]:\n"
          "# type = latin,punct,cyrillic,greek,other,han; case = lower,Capital,UPPER,mixed (+4: non-ASCII\n"
          "# letters); kind (only without a memo) = longest prefix piece none/3/4/5+ code points, 4 = body\n"
          "# without the space is a piece, +5 if the last 3 bytes are a piece; len = code points (24 = 24\n"
          "# or more: with long_miss_proportional, per 24 of them). See docs/tokens.md.\n";
    os << "format = \"tokenlb-tokens-calibration-1\"\n\n[tokenizer]\n";
    os << "name = " << str(m.name) << "\nsource = " << str(m.source) << "\n";
    os << "vocab_size = " << m.vocab_size << "\n";
    os << "add_dummy_prefix = " << (m.add_dummy_prefix ? "true" : "false") << "\n";
    os << "remove_extra_whitespaces = " << (m.remove_extra_whitespaces ? "true" : "false") << "\n";
    os << "byte_fallback = " << (m.byte_fallback ? "true" : "false") << "\n\n[costs]\n";
    char buf[64];
    std::snprintf(buf, sizeof buf, "ctrl = %.4f\ndigit = %.4f\nhan_scale = %.4f\n", double(m.ctrl_cost) / FIX,
                  double(m.digit_cost) / FIX, double(m.han_scale) / FIX);
    os << buf;
    os << "long_miss_proportional = " << (m.long_miss_proportional ? "true" : "false") << "\n";
    os << "ws = ";
    row(os, m.ws_cost.begin(), m.ws_cost.end(), 0);
    os << "hit = ";
    row(os, m.hit_cost.begin(), m.hit_cost.end(), 0);
    os << "miss_scale = ";
    row(os, m.miss_scale.begin(), m.miss_scale.end(), 0);
    os << "miss = ";
    row(os, m.miss_cost.begin(), m.miss_cost.end(), LEN_MAX + 1);
    if (!m.memo_keys.empty()) {
        os << "\n[memo]\n# Segments seen at least twice in the calibration corpus (raw bytes, leading space\n"
              "# included) and their mean exact piece count in 1/256 tokens; most frequent first.\nkeys = [\n";
        for (const auto& kv : m.memo_keys) os << "  " << basic_string(kv.first) << ",\n";
        os << "]\ncost256 = [";
        for (size_t i = 0; i < m.memo_keys.size(); ++i) os << (i % 20 == 0 ? "\n  " : "") << m.memo_keys[i].second << ",";
        os << "\n]\n";
    }
    if (!m.han_cost_keys.empty()) {
        os << "\n[han]\n# Han-class runs the memo misses: piece count per code point in 1/256 tokens\n"
              "# (32 = a leading space); other code points: single pieces at their mean, else bytes.\ncp = [";
        for (size_t i = 0; i < m.han_cost_keys.size(); ++i) os << (i % 16 == 0 ? "\n  " : "") << m.han_cost_keys[i].first << ",";
        os << "\n]\ncost256 = [";
        for (size_t i = 0; i < m.han_cost_keys.size(); ++i) os << (i % 16 == 0 ? "\n  " : "") << m.han_cost_keys[i].second << ",";
        os << "\n]\n";
    }
    os << "\n[vocab]\n# Pieces as in the sentencepiece model (U+2581 marks a leading space).\npieces = [\n";
    for (const auto& p : m.pieces) os << "  " << str(p) << ",\n";
    os << "]\n";
    return os.str();
}

Model model_from_toml(std::string_view text, const std::string& source) {
    toml::table root;
    try {
        root = toml::parse(text, source);
    } catch (const toml::parse_error& e) {
        std::ostringstream os;
        os << source << ":" << e.source().begin.line << ": " << e.description();
        throw CalibrationError(os.str());
    }
    auto fail = [&](const std::string& what) -> CalibrationError { return CalibrationError(source + ": " + what); };
    if (root["format"].value_or(std::string()) != "tokenlb-tokens-calibration-1")
        throw fail("not a tokenlb calibration file (format = \"tokenlb-tokens-calibration-1\" missing)");
    Model m;
    m.name = root["tokenizer"]["name"].value_or(std::string("unnamed"));
    m.source = root["tokenizer"]["source"].value_or(std::string());
    m.vocab_size = uint32_t(root["tokenizer"]["vocab_size"].value_or(int64_t(0)));
    m.add_dummy_prefix = root["tokenizer"]["add_dummy_prefix"].value_or(true);
    m.remove_extra_whitespaces = root["tokenizer"]["remove_extra_whitespaces"].value_or(false);
    m.byte_fallback = root["tokenizer"]["byte_fallback"].value_or(true);
    auto num = [&](const char* key, double def) {
        auto v = root["costs"][key];
        if (!v) return def;
        if (auto d = v.value<double>()) return *d;
        throw fail(std::string("costs.") + key + ": expected a number");
    };
    m.ctrl_cost = to_fix(num("ctrl", 1.0));
    m.digit_cost = to_fix(num("digit", 1.0));
    m.han_scale = to_fix(num("han_scale", 1.0));
    if (auto v = root["costs"]["long_miss_proportional"]) {
        if (!v.is_boolean()) throw fail("costs.long_miss_proportional: expected true or false");
        m.long_miss_proportional = v.value_or(false);
    }
    auto read_arr = [&](const char* key, size_t want, auto&& put) {
        const toml::array* a = root["costs"][key].as_array();
        if (!a) throw fail(std::string("costs.") + key + ": missing array");
        if (a->size() != want)
            throw fail(std::string("costs.") + key + ": expected " + std::to_string(want) + " values, got " +
                       std::to_string(a->size()));
        for (size_t i = 0; i < want; ++i) {
            auto d = (*a)[i].value<double>();
            if (!d || *d < 0 || *d > 200) throw fail(std::string("costs.") + key + "[" + std::to_string(i) + "]: bad value");
            put(i, to_fix(*d));
        }
    };
    read_arr("ws", m.ws_cost.size(), [&](size_t i, uint32_t v) { m.ws_cost[i] = v; });
    read_arr("hit", m.hit_cost.size(), [&](size_t i, uint32_t v) { m.hit_cost[i] = v; });
    m.miss_cost.assign(MISS_SIZE, 0);
    read_arr("miss", MISS_SIZE, [&](size_t i, uint32_t v) { m.miss_cost[i] = uint16_t(std::min<uint32_t>(v, 65535)); });
    if (root["costs"]["miss_scale"]) read_arr("miss_scale", m.miss_scale.size(), [&](size_t i, uint32_t v) { m.miss_scale[i] = v; });
    else m.miss_scale.fill(FIX);
    const toml::array* pieces = root["vocab"]["pieces"].as_array();
    if (!pieces) throw fail("vocab.pieces: missing array");
    m.pieces.reserve(pieces->size());
    for (const auto& p : *pieces) {
        auto s = p.value<std::string>();
        if (!s) throw fail("vocab.pieces: expected strings");
        m.pieces.push_back(*s);
    }
    if (auto* memo = root["memo"].as_table()) {
        const toml::array* keys = (*memo)["keys"].as_array();
        const toml::array* costs = (*memo)["cost256"].as_array();
        if (!keys || !costs) throw fail("memo: needs arrays keys and cost256");
        if (keys->size() != costs->size()) throw fail("memo: keys and cost256 differ in length");
        m.memo_keys.reserve(keys->size());
        for (size_t i = 0; i < keys->size(); ++i) {
            auto k = (*keys)[i].value<std::string>();
            auto c = (*costs)[i].value<int64_t>();
            if (!k || k->empty() || k->size() > MEMO_KEY_MAX) throw fail("memo.keys[" + std::to_string(i) + "]: expected a string of 1.." + std::to_string(MEMO_KEY_MAX) + " bytes");
            if (!c || *c < 0 || *c > 65535) throw fail("memo.cost256[" + std::to_string(i) + "]: expected an integer 0..65535");
            m.memo_keys.emplace_back(*k, uint32_t(*c));
        }
    }
    if (auto* han = root["han"].as_table()) {
        const toml::array* cps = (*han)["cp"].as_array();
        const toml::array* costs = (*han)["cost256"].as_array();
        if (!cps || !costs) throw fail("han: needs arrays cp and cost256");
        if (cps->size() != costs->size()) throw fail("han: cp and cost256 differ in length");
        for (size_t i = 0; i < cps->size(); ++i) {
            auto cp = (*cps)[i].value<int64_t>();
            auto c = (*costs)[i].value<int64_t>();
            if (!cp || *cp < 0 || *cp > 0xFFFF) throw fail("han.cp[" + std::to_string(i) + "]: expected a code point 0..65535");
            if (!c || *c < 0 || *c > 65535) throw fail("han.cost256[" + std::to_string(i) + "]: expected an integer 0..65535");
            m.han_cost_keys.emplace_back(uint32_t(*cp), uint32_t(*c));
        }
    }
    m.source = m.source.empty() ? source : m.source;
    build_lookup(m);
    build_memo(m);
    build_han_cost(m);
    return m;
}

// ---- corpus --------------------------------------------------------------------------------

std::vector<std::string> read_corpus(const std::vector<std::string>& paths, size_t max_bytes) {
    namespace fs = std::filesystem;
    std::vector<std::string> files;
    for (const auto& p : paths) {
        std::error_code ec;
        if (fs::is_directory(p, ec)) {
            for (auto it = fs::recursive_directory_iterator(p, ec); it != fs::recursive_directory_iterator(); ++it)
                if (it->is_regular_file()) files.push_back(it->path().string());
        } else if (fs::exists(p, ec)) {
            files.push_back(p);
        } else {
            throw CalibrationError(p + ": no such corpus file or directory");
        }
    }
    std::sort(files.begin(), files.end());
    std::vector<std::string> docs;
    size_t total = 0;
    auto add_doc = [&](std::string d) {
        while (!d.empty() && d.back() == '\n') d.pop_back();
        size_t a = 0;
        while (a < d.size() && d[a] == '\n') ++a;
        d.erase(0, a);
        if (d.empty()) return;
        // Cut long documents near 8 KiB at line boundaries.
        while (d.size() > 8192) {
            size_t cut = d.rfind('\n', 8192);
            if (cut == std::string::npos || cut < 1024) cut = 8192;
            docs.push_back(d.substr(0, cut));
            total += cut;
            d.erase(0, cut + (cut < d.size() && d[cut] == '\n'));
        }
        total += d.size();
        docs.push_back(std::move(d));
    };
    for (const auto& f : files) {
        if (total >= max_bytes) break;
        std::ifstream in(f, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        std::string s = ss.str();
        // Split at "\n\x1e\n" or "\n%\n".
        size_t start = 0;
        for (size_t i = 0; i <= s.size(); ++i) {
            bool sep = false;
            size_t skip = 0;
            if (i == s.size()) sep = true;
            else if (s[i] == '\n' && i + 2 < s.size() + 1 && (s.compare(i, 3, "\n\x1e\n") == 0 || s.compare(i, 3, "\n%\n") == 0)) {
                sep = true;
                skip = 2;
            }
            if (sep) {
                add_doc(s.substr(start, i - start));
                start = i + 1 + skip;
                i += skip;
            }
        }
    }
    return docs;
}

// ---- calibration -----------------------------------------------------------------------------

namespace {

struct Acc {
    double sum = 0;
    double n = 0;
    void add(double v, double w = 1) {
        sum += v * w;
        n += w;
    }
    double mean(double def) const { return n > 0 ? sum / n : def; }
};

double shrink(const Acc& a, double prior, double k) { return (a.sum + prior * k) / (a.n + k); }

// True piece counts per segment of `doc`.
void attribute(const sentencepiece::SentencePieceProcessor& spm, const std::string& doc,
               const std::vector<SegmentInfo>& segs, std::vector<uint32_t>& actual, uint32_t& total,
               std::vector<uint32_t>* begins = nullptr) {
    actual.assign(segs.size(), 0);
    const auto spt = spm.EncodeAsImmutableProto(doc);
    total = uint32_t(spt.pieces_size());
    if (begins) begins->clear();
    size_t j = 0;
    for (size_t i = 0; i < spt.pieces_size(); ++i) {
        const uint32_t b = spt.pieces(int(i)).begin();
        if (begins) begins->push_back(b);
        while (j + 1 < segs.size() && segs[j].end <= b) ++j;
        while (j > 0 && segs[j].begin > b) --j;
        actual[j] += 1;
    }
}

// Runs of one repeated symbol ("-----", "=====", "*****", "#####", "────": rules, underlines,
// separators, table borders, box drawing) as memo keys, with and without a leading space, up to
// MEMO_KEY_MAX bytes, at their exact count: the vocabulary holds long runs of such characters (a
// run of 21 dashes is 2-3 pieces) while the feature model, fitted on mixed symbol runs, prices
// ~0.7 per byte (17 for those 21 dashes: out-of-domain texts with Markdown and licence-style
// rules were overestimated by 1-2% on this alone). Counted in context as the corpus segments
// are: after a letter, so the run is a whole segment without the dummy prefix. Longer runs and
// segments made of runs are priced from these keys (Pricer::run_cost, Pricer::symbol_runs). Keys
// the corpus already has keep their cost and place; the others go first (the table refuses keys
// whose bucket is full, and file order is priority: appended last, one in ten was refused).
void add_symbol_runs(Model& m, const sentencepiece::SentencePieceProcessor& spm) {
    std::unordered_set<std::string> have;
    for (const auto& kv : m.memo_keys) have.insert(kv.first);
    std::vector<std::pair<std::string, uint32_t>> runs;
    std::vector<SegmentInfo> segs;
    std::vector<uint32_t> actual;
    uint32_t total = 0;
    // ASCII symbols, and symbol characters (box drawing, dashes, ellipses...) of which the
    // vocabulary has a piece of two: runs of the others never merge (Pricer::run_cost).
    std::vector<std::string> chars;
    for (int c = 0x21; c < 0x7F; ++c)
        if (BYTE_CLASS[size_t(c)] == BC_PUNCT) chars.emplace_back(1, char(c));
    for (const auto& [k, n] : m.run_longest) {
        std::string ch;
        for (uint32_t v = k; v; v >>= 8) ch += char(v & 0xFF);
        if (uint8_t(ch[0]) >= 0x80) chars.push_back(ch);
    }
    for (const auto& ch : chars) {
        for (int space = 0; space < 2; ++space)
            for (size_t l = 1; l * ch.size() + size_t(space) <= MEMO_KEY_MAX; ++l) {
                if (l == 1 && !space) continue;  // one character: a vocabulary piece or the feature model
                std::string key(size_t(space), ' ');
                for (size_t i = 0; i < l; ++i) key += ch;
                if (have.count(key)) continue;
                const std::string doc = "a" + key;
                explain(m, doc.data(), doc.size(), segs);
                if (segs.size() != 2 || segs[1].begin != 1 || segs[1].end != doc.size()) continue;
                attribute(spm, doc, segs, actual, total);
                runs.emplace_back(key, actual[1] * FIX);
            }
    }
    m.memo_keys.insert(m.memo_keys.begin(), runs.begin(), runs.end());
}

}  // namespace

std::string calibrate(const CalibrationOptions& opt, FitReport& report) {
    sentencepiece::SentencePieceProcessor spm;
    {
        const auto st = spm.Load(opt.spm_model);
        if (!st.ok()) throw CalibrationError(opt.spm_model + ": cannot load sentencepiece model: " + st.ToString());
    }
    Model m;
    {
        std::string base = std::filesystem::path(opt.spm_model).stem().string();
        m.name = base;
        m.source = std::filesystem::path(opt.spm_model).filename().string();
    }
    m.vocab_size = uint32_t(spm.GetPieceSize());
    // Normaliser behaviour, probed rather than read from the proto (the proto headers are not
    // installed by Debian's libsentencepiece-dev).
    {
        std::vector<std::string> ps;
        (void)spm.Encode("a", &ps);
        m.add_dummy_prefix = !ps.empty() && starts_with(ps[0], WS_MARK);
        (void)spm.Encode("a    b", &ps);
        size_t marks = 0;
        for (const auto& p : ps)
            for (size_t i = 0; i + 3 <= p.size(); ++i) marks += p.compare(i, 3, WS_MARK) == 0;
        m.remove_extra_whitespaces = marks < 4;
    }
    m.byte_fallback = false;
    int max_ws = 1;
    for (int id = 0; id < spm.GetPieceSize(); ++id) {
        if (spm.IsByte(id)) {
            m.byte_fallback = true;
            continue;
        }
        if (spm.IsControl(id) || spm.IsUnknown(id) || spm.IsUnused(id)) continue;
        std::string p = spm.IdToPiece(id);
        if (all_ws_marks(p)) max_ws = std::max(max_ws, int(p.size() / 3));
        m.pieces.push_back(std::move(p));
    }
    build_lookup(m);

    // Priors.
    m.long_miss_proportional = true;  // pass 1b fits the last length cell per LEN_MAX code points
    m.ctrl_cost = FIX;
    m.digit_cost = FIX;
    m.han_scale = FIX;
    m.miss_scale.fill(FIX);
    for (int k = 0; k <= WS_MAX; ++k) m.ws_cost[size_t(k)] = to_fix(k == 0 ? 0.0 : std::ceil(double(k) / max_ws));
    for (auto& h : m.hit_cost) h = FIX;
    m.miss_cost.assign(MISS_SIZE, uint16_t(FIX));

    const auto docs = read_corpus(opt.corpus, opt.max_corpus_bytes);
    if (docs.empty()) throw CalibrationError("calibration corpus is empty");

    // Pass 1: attribute true counts to segments, accumulate cells.
    Acc ws[WS_MAX + 1], hit[N_TYPES * 2], ctrl, digit, han_actual, han_pred;
    std::map<size_t, Acc> cell;                 // full miss cell
    std::map<size_t, Acc> cell_tsl;             // (type, space, len)
    std::map<size_t, Acc> cell_tskl;            // (type, space, kind, len)
    std::map<size_t, Acc> cell_tl;              // (type, len)
    Acc type_cpp[N_TYPES];                      // code points per piece for misses, per type
    std::vector<SegmentInfo> segs;
    std::vector<uint32_t> actual;
    std::vector<std::vector<uint32_t>> all_begins(docs.size());  // piece start offsets per document
    std::unordered_map<std::string, std::pair<uint64_t, double>> seen;  // segment -> (count, sum of exact)
    std::vector<std::vector<uint32_t>> all_actual(docs.size());
    std::vector<uint32_t> doc_total(docs.size());
    for (size_t d = 0; d < docs.size(); ++d) {
        explain(m, docs[d].data(), docs[d].size(), segs);
        uint32_t total = 0;
        attribute(spm, docs[d], segs, actual, total, &all_begins[d]);
        doc_total[d] = total;
        for (size_t i = 0; i < segs.size(); ++i) {
            const auto& s = segs[i];
            const double a = actual[i];
            switch (s.kind) {
                case 0: ws[s.len].add(a); break;
                case 1: ctrl.add(a / (s.end - s.begin)); break;
                case 2: digit.add(a / (s.end - s.begin)); break;
                case 3: hit[s.type * 2 + s.space].add(a); break;
                default: break;  // misses and CJK runs: fitted in pass 1b, against the memo
            }
        }
        // Memo candidates: every segment but a text's first (it carries the dummy prefix).
        for (size_t i = 0; i < segs.size(); ++i) {
            const auto& s = segs[i];
            if ((s.begin == 0 && m.add_dummy_prefix) || s.end - s.begin > MEMO_KEY_MAX) continue;
            std::string key = docs[d].substr(s.begin, s.end - s.begin);
            if (!valid_utf8(key)) continue;  // the file is TOML (UTF-8)
            auto& c = seen[std::move(key)];
            c.first += 1;
            c.second += actual[i];
        }
        all_actual[d] = actual;
        report.bytes += docs[d].size();
    }
    report.docs = docs.size();

    // Costs from the cells.
    m.ctrl_cost = to_fix(ctrl.mean(1.0));
    m.digit_cost = to_fix(digit.mean(1.0));
    for (int k = 1; k <= WS_MAX; ++k)
        m.ws_cost[size_t(k)] = to_fix(shrink(ws[k], std::ceil(double(k) / max_ws), 2.0));
    for (int i = 0; i < N_TYPES * 2; ++i) m.hit_cost[size_t(i)] = to_fix(shrink(hit[i], 1.0, 5.0));

    // The memo: segments seen at least twice, most frequent first. Segments seen once stand in for
    // the unseen words of new text (Good-Turing): the feature model is fitted on them below.
    {
        std::vector<std::pair<uint64_t, const std::string*>> order;
        for (const auto& [k, c] : seen)
            if (c.first >= opt.memo_min_count) order.emplace_back(c.first, &k);
        std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
            return a.first != b.first ? a.first > b.first : *a.second < *b.second;
        });
        if (order.size() > opt.memo_max_keys) order.resize(opt.memo_max_keys);
        m.memo_keys.clear();
        for (const auto& [n, k] : order) {
            const auto& c = seen[*k];
            m.memo_keys.emplace_back(*k, to_fix(c.second / double(c.first)));
        }
        add_symbol_runs(m, spm);
        build_memo(m);
        report.memo_keys = m.memo_keys.size();
        report.memo_entries = m.memo.entries;
    }

    // Pass 1b: the feature model on what the memo misses.
    std::map<uint32_t, Acc> han_cp;  // code point -> share of its run's pieces
    for (size_t d = 0; d < docs.size(); ++d) {
        explain(m, docs[d].data(), docs[d].size(), segs);
        const auto& act_d = all_actual[d];
        for (size_t i = 0; i < segs.size() && i < act_d.size(); ++i) {
            const auto& s = segs[i];
            const double a = act_d[i];
            if (s.kind == 5) {
                // Per code point of the run: how many pieces start in its bytes (a leading space
                // is its own entry, 0x20). Sum over a run = its piece count.
                const auto& bg = all_begins[d];
                auto starts_in = [&](size_t lo, size_t hi) {
                    return double(std::lower_bound(bg.begin(), bg.end(), uint32_t(hi)) -
                                  std::lower_bound(bg.begin(), bg.end(), uint32_t(lo)));
                };
                size_t k = s.begin;
                const std::string& doc = docs[d];
                if (doc[k] == ' ') {
                    han_cp[0x20].add(starts_in(k, k + 1));
                    ++k;
                }
                while (k < s.end) {
                    const uint8_t c = uint8_t(doc[k]);
                    const size_t l = std::min<size_t>(utf8_len(c), s.end - k);
                    uint32_t cp = l == 1 ? c : c & (0x7F >> l);
                    for (size_t j = 1; j < l; ++j) cp = (cp << 6) | (uint8_t(doc[k + j]) & 0x3F);
                    han_cp[l == 4 ? 0x10000 : cp].add(starts_in(k, k + l));
                    k += l;
                }
            }
            if (s.kind == 4) {
                // The last length cell is the cost of LEN_MAX code points of a longer segment
                // (Pricer::miss prices those in proportion).
                double an = a;
                if (s.len == LEN_MAX) {
                    size_t cps = 0;
                    for (size_t k = s.begin + (docs[d][s.begin] == ' ' ? 1 : 0); k < s.end; ++k)
                        cps += (uint8_t(docs[d][k]) & 0xC0) != 0x80;
                    if (cps > size_t(LEN_MAX)) an = a * LEN_MAX / double(cps);
                }
                cell[miss_index(s.type, s.space, s.cs, s.miss_kind, s.len)].add(an);
                cell_tsl[miss_index(s.type, s.space, 0, 0, s.len)].add(an);
                cell_tskl[miss_index(s.type, s.space, 0, s.miss_kind, s.len)].add(an);
                cell_tl[miss_index(s.type, 0, 0, 0, s.len)].add(an);
                if (s.len < LEN_MAX && a > 0) type_cpp[s.type].add(double(s.len) / a);
            } else if (s.kind == 5) {
                han_actual.add(a);
                han_pred.add(double(s.cost) / FIX);
            }
        }
    }
    if (han_pred.sum > 0) m.han_scale = to_fix(han_actual.sum / han_pred.sum);
    for (int ty = 0; ty < N_TYPES; ++ty) {
        const double cpp = std::max(1.0, type_cpp[ty].mean(ty == 1 ? 1.5 : 3.0));
        for (int sp = 0; sp < 2; ++sp)
            for (int cs = 0; cs < N_CASE; ++cs)
                for (int kd = 0; kd < N_KIND; ++kd)
                    for (int len = 0; len <= LEN_MAX; ++len) {
                        const double prior0 = len == 0 ? double(sp) : std::max(1.0, len / cpp + 0.5);
                        auto get = [](const std::map<size_t, Acc>& mp, size_t k) {
                            auto it = mp.find(k);
                            return it == mp.end() ? Acc{} : it->second;
                        };
                        const double p1 = shrink(get(cell_tl, miss_index(ty, 0, 0, 0, len)), prior0, 3.0);
                        const double p2 = shrink(get(cell_tsl, miss_index(ty, sp, 0, 0, len)), p1, 3.0);
                        const double p3 = shrink(get(cell_tskl, miss_index(ty, sp, 0, kd, len)), p2, 3.0);
                        const double v = shrink(get(cell, miss_index(ty, sp, cs, kd, len)), p3, 3.0);
                        m.miss_cost[miss_index(ty, sp, cs, kd, len)] = uint16_t(to_fix(v));
                    }
    }

    // Per-code-point Han costs (used when the memo is present: greedy matching per character costs
    // several vocabulary probes). Sparse characters are pulled towards the mean of their kind.
    if (!m.memo.empty()) {
        double ss = 0, sn = 0;
        for (const auto& [cp, a] : han_cp)
            if (cp < 0x10000 && cp != 0x20 && m.cp_single(cp)) {
                ss += a.sum;
                sn += a.n;
            }
        const double single = sn > 0 ? ss / sn : 1.0;
        m.han_cost_keys.clear();
        for (const auto& [cp, a] : han_cp) {
            if (cp >= 0x10000) continue;
            const double prior = cp == 0x20            ? double(m.ws_cost[1]) / FIX
                                 : m.cp_single(cp)     ? single
                                 : !m.byte_fallback    ? 1.0
                                 : cp < 0x800          ? 2.0
                                                       : 3.0;
            m.han_cost_keys.emplace_back(cp, to_fix(shrink(a, prior, 2.0)));
        }
        build_han_cost(m);
    }

    // Pass 2: miss-rate scale per (type, bin): actual / predicted miss pieces over documents
    // whose segments missed the memo at that rate (a text in a language or domain the corpus
    // covers poorly both misses more often and splits its misses into more pieces).
    {
        double pred[N_WORD_TYPES][MISS_BINS] = {}, act[N_WORD_TYPES][MISS_BINS] = {};
        for (size_t d = 0; d < docs.size(); ++d) {
            explain(m, docs[d].data(), docs[d].size(), segs);
            uint32_t misses = 0;
            double p[N_WORD_TYPES] = {}, a[N_WORD_TYPES] = {};
            const auto& act_d = all_actual[d];
            for (size_t i = 0; i < segs.size() && i < act_d.size(); ++i) {
                const auto& s = segs[i];
                if (s.type >= N_WORD_TYPES || !s.scaled) continue;
                ++misses;
                p[s.type] += double(s.cost) / FIX;
                a[s.type] += act_d[i];
            }
            const uint32_t bin = miss_bin(misses, segs.size());
            for (int ty = 0; ty < N_WORD_TYPES; ++ty) {
                pred[ty][bin] += p[ty];
                act[ty][bin] += a[ty];
            }
        }
        for (int ty = 0; ty < N_WORD_TYPES; ++ty)
            for (int b = 0; b < MISS_BINS; ++b) {
                const double k = 200.0;  // pseudo-tokens pulling sparse bins towards 1
                m.miss_scale[size_t(ty) * MISS_BINS + size_t(b)] = to_fix((act[ty][b] + k) / (pred[ty][b] + k));
            }
    }

    // Pass 3: fit error per document with the final costs.
    std::vector<double> errs;
    double sum_est = 0, sum_act = 0;
    for (size_t d = 0; d < docs.size(); ++d) {
        const uint64_t f = explain(m, docs[d].data(), docs[d].size(), segs);
        const double est = double((f + FIX / 2) / FIX);
        const double act = doc_total[d];
        sum_est += est;
        sum_act += act;
        if (act > 0) errs.push_back(std::fabs(est - act) / act);
    }
    std::sort(errs.begin(), errs.end());
    double mape = 0;
    for (double e : errs) mape += e;
    report.mape = errs.empty() ? 0 : mape / errs.size();
    report.p95 = errs.empty() ? 0 : errs[std::min(errs.size() - 1, size_t(errs.size() * 0.95))];
    report.bias = sum_act > 0 ? sum_est / sum_act - 1 : 0;
    {
        std::ostringstream os;
        const char* kinds[] = {"whitespace", "control", "digit", "word-hit", "word-miss", "cjk", "?", "byte-fallback", "memo-hit"};
        double est_k[9] = {}, act_k[9] = {};
        for (size_t d = 0; d < docs.size(); ++d) {
            explain(m, docs[d].data(), docs[d].size(), segs);
            for (size_t i = 0; i < segs.size() && i < all_actual[d].size(); ++i) {
                est_k[segs[i].kind % 9] += double(segs[i].cost) / FIX;
                act_k[segs[i].kind % 9] += all_actual[d][i];
            }
        }
        for (int k = 0; k < 9; ++k) {
            if (act_k[k] == 0 && est_k[k] == 0) continue;
            os << "  " << kinds[k] << ": exact " << std::llround(act_k[k]) << " estimated " << std::llround(est_k[k])
               << "\n";
        }
        os << "  han_max_chars " << m.han_max_chars << ", whitespace piece max " << max_ws << ", pieces "
           << m.pieces.size() << ", memo keys " << report.memo_keys << " (table entries " << report.memo_entries << ")\n";
        report.details = os.str();
    }
    return model_to_toml(m);
}

}  // namespace tlb::tokens

namespace tlb::tokens {

std::string diagnose(const std::string& calib_file, const std::string& spm_model,
                     const std::vector<std::string>& texts, size_t top) {
    const Estimator est = Estimator::from_file(calib_file);
    const Model& m = est.model();
    sentencepiece::SentencePieceProcessor spm;
    if (!spm.Load(spm_model).ok()) throw CalibrationError(spm_model + ": cannot load");
    struct Cell {
        double est = 0, act = 0, n = 0;
    };
    std::map<std::string, Cell> cells;
    std::vector<SegmentInfo> segs;
    std::vector<uint32_t> actual;
    std::map<std::string, Cell> examples_w;
    std::map<std::string, std::string> examples;
    for (const auto& t : texts) {
        explain(m, t.data(), t.size(), segs);
        uint32_t total = 0;
        attribute(spm, t, segs, actual, total);
        for (size_t i = 0; i < segs.size(); ++i) {
            const auto& s = segs[i];
            std::ostringstream k;
            const char* kinds[] = {"ws", "ctrl", "digit", "hit", "miss", "han", "?", "bytefb", "memo"};
            k << kinds[s.kind % 9] << " " << word_type_name(s.type) << " sp" << int(s.space) << " cs" << int(s.cs)
              << " k" << int(s.miss_kind) << " len" << int(s.len);
            auto& c = cells[k.str()];
            c.est += double(s.cost) / FIX;
            c.act += actual[i];
            c.n += 1;
            if (std::fabs(double(s.cost) / FIX - actual[i]) >= 1.5) {
                auto& ex = examples[k.str()];
                if (ex.size() < 120) ex += "[" + t.substr(s.begin, s.end - s.begin) + "]=" + std::to_string(actual[i]) + " ";
            }
        }
    }
    std::vector<std::pair<std::string, Cell>> v(cells.begin(), cells.end());
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return std::fabs(a.second.est - a.second.act) > std::fabs(b.second.est - b.second.act); });
    std::ostringstream os;
    double te = 0, ta = 0;
    for (auto& [k, c] : v) {
        te += c.est;
        ta += c.act;
    }
    os << "total est " << te << " exact " << ta << " bias% " << (te / ta - 1) * 100 << "\n";
    for (size_t i = 0; i < v.size() && i < top; ++i) {
        auto& [k, c] = v[i];
        char buf[256];
        std::snprintf(buf, sizeof buf, "%-40s n=%7.0f est=%9.1f act=%9.0f resid=%8.1f  ", k.c_str(), c.n, c.est, c.act, c.est - c.act);
        os << buf << examples[k] << "\n";
    }
    return os.str();
}

}  // namespace tlb::tokens
