#include "openai/usage.hpp"

#include <cstring>
#include <new>
#include <utility>

#include <simdjson.h>

namespace tlb::openai {

namespace od = simdjson::ondemand;

struct UsageParser::Impl {
    od::parser parser;
    std::unique_ptr<uint8_t[]> pad;
};

UsageParser::UsageParser() noexcept = default;
UsageParser::~UsageParser() = default;

bool UsageParser::init(size_t max_doc_bytes) noexcept {
    auto impl = std::unique_ptr<Impl>(new (std::nothrow) Impl());
    if (!impl) return false;
    if (impl->parser.allocate(max_doc_bytes) != simdjson::SUCCESS) return false;
    impl->pad.reset(new (std::nothrow) uint8_t[max_doc_bytes + PADDING]);
    if (!impl->pad) return false;
    std::memset(impl->pad.get(), 0, max_doc_bytes + PADDING);
    _impl = std::move(impl);
    _max = max_doc_bytes;
    return true;
}

static bool read_int(od::value v, int64_t& out) noexcept {
    int64_t x;
    if (v.get_int64().get(x) || x < 0) return false;
    out = x;
    return true;
}

static bool read_usage_object(od::object o, Usage& u) noexcept {
    for (auto fr : o) {
        od::field f;
        std::string_view k;
        if (std::move(fr).get(f) || f.unescaped_key().get(k)) return false;
        if (k == "prompt_tokens") { if (!read_int(f.value(), u.prompt_tokens)) return false; }
        else if (k == "completion_tokens") { if (!read_int(f.value(), u.completion_tokens)) return false; }
        else if (k == "total_tokens") { if (!read_int(f.value(), u.total_tokens)) return false; }
        else if (k == "prompt_tokens_details") {
            od::object d;
            if (f.value().get_object().get(d)) continue;  // null or absent details are fine
            for (auto dr : d) {
                od::field df;
                std::string_view dk;
                if (std::move(dr).get(df) || df.unescaped_key().get(dk)) return false;
                if (dk == "cached_tokens") {
                    int64_t c;
                    if (read_int(df.value(), c)) u.cached_tokens = c;
                }
            }
        }
    }
    return true;
}

bool UsageParser::parse(const uint8_t* json, size_t len, size_t capacity, Usage& out, bool is_object_itself) noexcept {
    out = Usage{};
    if (!_impl || len == 0 || len > _max) return false;
    // Always parse a copy with space padding: simdjson's handling of malformed input can depend
    // on the padding bytes, and usage documents are small.
    (void)capacity;
    std::memcpy(_impl->pad.get(), json, len);
    std::memset(_impl->pad.get() + len, ' ', PADDING);
    const uint8_t* base = _impl->pad.get();
    od::document doc;
    if (_impl->parser.iterate(base, len, len + PADDING).get(doc)) return false;
    od::object top;
    if (doc.get_object().get(top)) return false;
    Usage u;
    if (is_object_itself) {
        if (!read_usage_object(top, u)) return false;
    } else {
        bool found = false;
        for (auto fr : top) {
            od::field f;
            std::string_view k;
            if (std::move(fr).get(f) || f.unescaped_key().get(k)) return false;
            if (k != "usage") continue;
            od::object uo;
            if (f.value().get_object().get(uo)) continue;  // "usage": null in intermediate chunks
            u = Usage{};
            if (!read_usage_object(uo, u)) return false;
            found = true;
        }
        if (!found) return false;
    }
    if (!u.present()) return false;
    out = u;
    return true;
}

bool is_done_marker(const uint8_t* p, size_t n) noexcept {
    while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) { ++p; --n; }
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n')) --n;
    return n == 6 && std::memcmp(p, "[DONE]", 6) == 0;
}

void UsageScanner::reset() noexcept {
    _depth = 0;
    _in_string = false;
    _escape = false;
    _expect_key = false;
    _key_string = false;
    _key_match = 0;
    _key_is_usage = false;
    _await_value = false;
    _capturing = false;
    _captured = false;
    _overflow = false;
    _len = 0;
}

void UsageScanner::feed(const uint8_t* p, size_t n) noexcept {
    static constexpr char KEY[] = "usage";
    for (size_t i = 0; i < n; ++i) {
        // Fast path inside an ordinary string (not a depth-1 key, not escaped): jump to the next
        // quote or backslash. Most bytes of a response are string contents.
        if (_in_string && !_escape && !_key_string) {
            size_t j = i;
            while (j < n && p[j] != '"' && p[j] != '\\') ++j;
            if (_capturing && j > i) {
                size_t take = j - i;
                if (_len + take > CAPTURE_MAX) {
                    _capturing = false;
                    _overflow = true;
                } else {
                    std::memcpy(_buf + _len, p + i, take);
                    _len += take;
                }
            }
            i = j;
            if (i == n) break;
        }
        const uint8_t c = p[i];
        if (_capturing) {
            if (_len < CAPTURE_MAX) {
                _buf[_len++] = c;
            } else {
                _capturing = false;
                _overflow = true;
            }
        }
        if (_in_string) {
            if (_escape) {
                _escape = false;
                if (_key_string) _key_match = 6;  // an escaped key is not the plain "usage"
            } else if (c == '\\') {
                _escape = true;
            } else if (c == '"') {
                _in_string = false;
                if (_key_string) {
                    _key_is_usage = _key_match == 5;
                    _key_string = false;
                }
            } else if (_key_string) {
                _key_match = (_key_match < 5 && c == static_cast<uint8_t>(KEY[_key_match])) ? _key_match + 1 : 6;
            }
            continue;
        }
        switch (c) {
        case '"':
            _in_string = true;
            if (_depth == 1 && _expect_key) {
                _key_string = true;
                _key_match = 0;
                _expect_key = false;
            } else if (_depth == 1 && _await_value) {
                _await_value = false;
                _key_is_usage = false;
            }
            break;
        case ':':
            if (_depth == 1 && _key_is_usage) _await_value = true;
            break;
        case '{':
            if (_depth == 1 && _await_value) {
                _capturing = true;
                _captured = false;
                _overflow = false;
                _len = 0;
                _buf[_len++] = c;
                _await_value = false;
                _key_is_usage = false;
            }
            ++_depth;
            if (_depth == 1) _expect_key = true;
            break;
        case '[':
            if (_depth == 1 && _await_value) { _await_value = false; _key_is_usage = false; }
            ++_depth;
            break;
        case '}':
        case ']':
            --_depth;
            if (_capturing && _depth == 1) {
                _capturing = false;
                _captured = true;
            }
            if (_depth < 0) _depth = 0;  // malformed input: keep scanning without underflow
            break;
        case ',':
            if (_depth == 1) {
                _expect_key = true;
                _key_is_usage = false;
                _await_value = false;
            }
            break;
        case ' ': case '\t': case '\r': case '\n':
            break;
        default:
            if (_depth == 1 && _await_value) { _await_value = false; _key_is_usage = false; }
            break;
        }
    }
}

void UsageSink::reset() noexcept {
    _scanner.reset();
    _usage = Usage{};
    _event_stream = false;
    _done = false;
    _events = 0;
}

void UsageSink::on_head(uint16_t, bool event_stream) noexcept {
    _scanner.reset();
    _event_stream = event_stream;
}

void UsageSink::on_body(const uint8_t* p, size_t n) noexcept { _scanner.feed(p, n); }

void UsageSink::on_event_data(const uint8_t* p, size_t n) noexcept { _scanner.feed(p, n); }

void UsageSink::on_event_end(bool done) noexcept {
    ++_events;
    if (done) {
        _done = true;
    } else if (_scanner.captured() && _parser) {
        Usage u;
        if (_parser->parse(_scanner.object(), _scanner.object_len(), _scanner.object_capacity(), u, true)) _usage = u;
    }
    _scanner.reset();
}

void UsageSink::finish() noexcept {
    if (_event_stream || !_scanner.captured() || !_parser) return;
    Usage u;
    if (_parser->parse(_scanner.object(), _scanner.object_len(), _scanner.object_capacity(), u, true)) _usage = u;
}

}  // namespace tlb::openai
