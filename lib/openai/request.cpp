#include "openai/request.hpp"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>
#include <utility>

#include <simdjson.h>

#include "openai/text_copy.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static_assert(tlb::openai::PADDING == simdjson::SIMDJSON_PADDING, "padding contract drifted from simdjson");

namespace tlb::openai {

namespace od = simdjson::ondemand;

const char* error_name(Error e) noexcept {
    static const char* const NAMES[] = {
        "none", "not_initialised", "empty_body", "body_too_large", "invalid_json", "not_object",
        "missing_field", "wrong_type", "bad_value", "duplicate_field", "scratch_full",
    };
    static_assert(sizeof(NAMES) / sizeof(NAMES[0]) == static_cast<size_t>(Error::COUNT_));
    auto i = static_cast<size_t>(e);
    return i < static_cast<size_t>(Error::COUNT_) ? NAMES[i] : "unknown";
}

uint16_t error_status(Error e) noexcept {
    switch (e) {
    case Error::NONE: return 200;
    case Error::BODY_TOO_LARGE:
    case Error::SCRATCH_FULL: return 413;
    case Error::NOT_INITIALISED: return 500;
    default: return 400;
    }
}

namespace {

Role role_of(std::string_view r) noexcept {
    if (r == "user") return Role::USER;
    if (r == "assistant") return Role::ASSISTANT;
    if (r == "system") return Role::SYSTEM;
    if (r == "developer") return Role::DEVELOPER;
    if (r == "tool") return Role::TOOL;
    if (r == "function") return Role::FUNCTION;
    return Role::OTHER;
}

// The field's key, unescaped. Keys almost never contain escapes, so the raw bytes are used
// directly when there is no backslash before the closing quote (stage 1 has validated the
// string, so the scan ends inside the document); otherwise simdjson unescapes it. Comparing
// unescaped keys keeps "mod\u0065l" the same field as "model", as it is for the backend.
inline bool key_of(od::field& f, std::string_view& out) noexcept {
    const char* r = f.key().raw();
    const char* p = r;
#if defined(__SSE2__)
    // Keys are short: one 16-byte look usually finds the closing quote (the document is padded,
    // so reading past a key near its end stays inside the buffer).
    {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r));
        const unsigned q = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"'))));
        const unsigned b = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
        if (q != 0 && (b == 0 || (q & (0u - q)) < (b & (0u - b)))) {
            out = {r, static_cast<size_t>(__builtin_ctz(q))};
            return true;
        }
        if (b == 0) p = r + 16;
    }
#endif
    while (*p != '"' && *p != '\\') ++p;
    if (*p == '"') {
        out = {r, static_cast<size_t>(p - r)};
        return true;
    }
    return !f.unescaped_key().get(out);
}

// The raw text between the quotes of a string value, from its token; false if the value is not
// a string. Stage 1 has validated the document, so a token that starts with a quote is a
// complete string whose closing quote is the last quote before the next structural character
// (the token runs up to it, whitespace included). Without a backslash, body is the decoded
// string; with escapes it is never shorter than the decoding.
inline bool string_body(od::value& v, std::string_view& body) noexcept {
    const std::string_view raw = v.raw_json_token();
    if (raw.size() < 2 || raw[0] != '"') return false;
    size_t e = raw.size();
    while (raw[e - 1] != '"') --e;
    if (e < 2) return false;
    body = raw.substr(1, e - 2);
    return true;
}

inline bool has_backslash(std::string_view s) noexcept {
#if defined(__SSE2__)
    // Short strings (roles, part types, model names) in one 16-byte look; the bytes after the
    // string are inside the padded document.
    if (s.size() <= 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data()));
        const unsigned m = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
        return (m & ((1u << s.size()) - 1)) != 0;
    }
#endif
    return std::memchr(s.data(), '\\', s.size()) != nullptr;
}


// The value of an iteration step (a field or an element) in place, or nullptr on error. Copying
// it out with get() would have the compiler reload the just-built iterator state through a wider
// access than the stores that wrote it (a store-forwarding stall on every field).
template <class T>
inline T* in_place(simdjson::simdjson_result<T>& r) noexcept {
    if (r.error()) return nullptr;
    T&& v = std::move(r).value_unsafe();
    return &v;
}
inline bool key_of(od::field* f, std::string_view& out) noexcept { return f && key_of(*f, out); }

// Top-level fields we route on; a second copy of any of them is refused.
enum Field : uint32_t {
    F_MODEL = 1u << 0, F_MESSAGES = 1u << 1, F_PROMPT = 1u << 2, F_MAX_TOKENS = 1u << 3,
    F_MAX_COMPLETION = 1u << 4, F_N = 1u << 5, F_STREAM = 1u << 6, F_STREAM_OPTIONS = 1u << 7,
    F_USER = 1u << 8, F_TOOLS = 1u << 9, F_FUNCTIONS = 1u << 10,
};

}  // namespace

struct Extractor::Impl {
    od::parser parser;
    text::DecodeSimpleFn decode_simple = text::decode_simple_scalar;
    std::unique_ptr<uint8_t[]> pad;
    size_t pad_cap = 0;

    // Per call.
    Extractor* ex = nullptr;
    Request* req = nullptr;
    const uint8_t* base = nullptr;  // what simdjson parses (body, or the padded copy)
    uint8_t* scratch = nullptr;
    size_t scratch_cap = 0;
    size_t used = 0;  // prompt text grows up from 0
    size_t top = 0;   // model/user strings grow down from scratch_cap

    // Sets param to the printf-formatted field path and message to "<param> <what>".
    Error fail(Error e, const char* what, const char* fmt = nullptr, ...) noexcept
        __attribute__((format(printf, 4, 5))) {
        ex->_param[0] = 0;
        if (fmt) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(ex->_param, sizeof(ex->_param), fmt, ap);
            va_end(ap);
        }
        if (ex->_param[0])
            snprintf(ex->_msg, sizeof(ex->_msg), "%s %s", ex->_param, what);
        else
            snprintf(ex->_msg, sizeof(ex->_msg), "%s", what);
        return e;
    }

    // Appends decoded text; returns false when scratch is full (cannot happen with the
    // documented sizing, but hostile sizing must not overflow).
    bool add_text(std::string_view s, Source src, Role role, uint32_t index) noexcept {
        if (s.empty()) return true;
        const size_t sep = used ? 1 : 0;
        if (top - used < s.size() + sep) return false;
        std::memcpy(scratch + used + sep, s.data(), s.size());
        commit_text(s.size(), src, role, index);
        return true;
    }

    // A string value (copied to scratch when it is kept as a field like model/user).
    // Kept at the top end of scratch, growing down, so the prompt text stays one run.
    bool keep_string(std::string_view s, std::string_view& out) noexcept {
        if (top - used < s.size()) return false;
        top -= s.size();
        std::memcpy(scratch + top, s.data(), s.size());
        out = {reinterpret_cast<const char*>(scratch + top), s.size()};
        return true;
    }

    Error string_error(simdjson::error_code ec, const char* path_fmt, uint32_t a, uint32_t b,
                       const char* type_msg) noexcept {
        if (ec == simdjson::INCORRECT_TYPE)
            return fail(Error::WRONG_TYPE, type_msg, path_fmt, a, b);
        return fail(Error::INVALID_JSON, "is not a valid JSON string", path_fmt, a, b);
    }

    // Records the n bytes already at scratch + used (+ 1 after the first piece, for the '\n'
    // separator written here) as a text piece.
    void commit_text(size_t n, Source src, Role role, uint32_t index) noexcept {
        if (n == 0) return;
        if (used) scratch[used++] = '\n';
        Request& r = *req;
        if (r.span_count < MAX_SPANS) {
            TextSpan& t = r.spans[r.span_count++];
            t.off = static_cast<uint32_t>(used);
            t.len = static_cast<uint32_t>(n);
            t.source = src;
            t.role = role;
            t.index = index > 0xffff ? 0xffff : static_cast<uint16_t>(index);
        } else {
            TextSpan& t = r.spans[MAX_SPANS - 1];
            t.len = static_cast<uint32_t>(used + n - t.off);
            r.spans_merged = true;
        }
        used += n;
    }

    // Reads the string value v and appends it as prompt text, decoded straight into scratch by
    // text::decode_simple (that needs no more room than the raw text); from a surrogate or invalid
    // escape on, simdjson decodes the rest (that needs PADDING bytes of room past the raw length: it writes whole
    // blocks; its decoder keeps no state across plain bytes and escapes, so starting at an
    // escape is the same as starting at the opening quote). With less room for that, or for a
    // value that is not a string, it goes through get_string() and add_text() as before, which
    // also gives the errors. Returns the simdjson error for the caller to report; full is set
    // when scratch is full.
    simdjson::error_code put_text(od::value& v, Source src, Role role, uint32_t index, bool& full) noexcept {
        std::string_view body;
        const size_t sep = used ? 1 : 0;
        if (string_body(v, body) && top - used >= sep + body.size()) {
            uint8_t* dst = scratch + used + sep;
            size_t in = 0, out = 0;
            if (decode_simple(body.data(), body.size(), dst, in, out)) {
                od::raw_json_string rs;
                if (auto ec = v.get_raw_json_string().get(rs)) return ec;
                commit_text(out, src, role, index);
                return simdjson::SUCCESS;
            }
            if (top - used >= sep + body.size() + PADDING) {
                od::raw_json_string rs;
                if (auto ec = v.get_raw_json_string().get(rs)) return ec;
                uint8_t* d = dst + out;
                std::string_view tail;
                if (auto ec = parser.unescape(od::raw_json_string(reinterpret_cast<const uint8_t*>(body.data() + in)), d).get(tail))
                    return ec;
                commit_text(out + tail.size(), src, role, index);
                return simdjson::SUCCESS;
            }
        }
        std::string_view s;
        if (auto ec = v.get_string().get(s)) return ec;
        full = !add_text(s, src, role, index);
        return simdjson::SUCCESS;
    }

    // A short string value that is only compared or kept (role, part type, model, user): its
    // raw bytes when it has no escapes, else simdjson's unescaped copy.
    simdjson::error_code small_string(od::value& v, std::string_view& out) noexcept {
        if (string_body(v, out) && !has_backslash(out)) {
            od::raw_json_string rs;
            return v.get_raw_json_string().get(rs);
        }
        return v.get_string().get(out);
    }

    Error run(Endpoint ep, size_t len) noexcept;
    Error message_(od::value& v, uint32_t i) noexcept;
    Error content_(od::value& v, uint32_t i, Role role) noexcept;
    Error tool_calls_(od::value& v, uint32_t i) noexcept;
    Error tools_(od::value& v, bool legacy) noexcept;
    Error function_def_(od::value& v, uint32_t k, const char* where) noexcept;
    Error prompt_(od::value& v) noexcept;
    Error count_ids_(od::array& a, uint32_t i) noexcept;
    Error uint_field(od::value& v, const char* name, int64_t min, int64_t& out, bool& present) noexcept;
    Error bool_field(od::value& v, const char* name, bool& out) noexcept;
};

Extractor::Extractor() noexcept { _msg[0] = 0; _param[0] = 0; }
Extractor::~Extractor() = default;

bool Extractor::init(size_t max_body_bytes) noexcept {
    auto impl = std::unique_ptr<Impl>(new (std::nothrow) Impl());
    if (!impl) return false;
    if (impl->parser.allocate(max_body_bytes) != simdjson::SUCCESS) return false;
    impl->pad.reset(new (std::nothrow) uint8_t[max_body_bytes + PADDING]);
    if (!impl->pad) return false;
    std::memset(impl->pad.get(), 0, max_body_bytes + PADDING);
    impl->pad_cap = max_body_bytes + PADDING;
    impl->decode_simple = text::pick_decode_simple();
    impl->ex = this;
    _impl = std::move(impl);
    _max_body = max_body_bytes;
    return true;
}

static void reset_request(Request& r, Endpoint ep) noexcept {
    r.endpoint = ep;
    r.model = {};
    r.model_raw_off = r.model_raw_len = 0;
    r.max_tokens = -1;
    r.n = 1;
    r.stream = false;
    r.include_usage = false;
    r.user = {};
    r.message_count = 0;
    r.image_parts = 0;
    r.other_parts = 0;
    r.prompt_token_ids = 0;
    r.tool_count = 0;
    r.text = nullptr;
    r.text_len = 0;
    r.span_count = 0;
    r.spans_merged = false;
}

Error Extractor::extract(Endpoint ep, uint8_t* body, size_t len, size_t capacity, uint8_t* scratch,
                         size_t scratch_cap, Request& out) noexcept {
    _msg[0] = 0;
    _param[0] = 0;
    reset_request(out, ep);
    if (!_impl) { snprintf(_msg, sizeof _msg, "request parser not initialised"); return Error::NOT_INITIALISED; }
    Impl& m = *_impl;
    m.req = &out;
    m.scratch = scratch;
    m.scratch_cap = scratch ? scratch_cap : 0;
    m.used = 0;
    m.top = m.scratch_cap;
    if (len == 0 || body == nullptr) return m.fail(Error::EMPTY_BODY, "The request body is empty; expected a JSON object.");
    if (len > _max_body) return m.fail(Error::BODY_TOO_LARGE, "The request body is too large.");
    // On malformed input, simdjson On-Demand's verdict can depend on the padding bytes (found
    // by fuzzing: the same body was accepted or refused depending on what followed it). In the
    // data plane those bytes are the client's next pipelined request, so they are set to spaces
    // for the parse and restored afterwards.
    uint8_t saved[PADDING];
    const bool in_place = capacity >= len + PADDING;
    if (in_place) {
        std::memcpy(saved, body + len, PADDING);
        std::memset(body + len, ' ', PADDING);
        m.base = body;
    } else {
        std::memcpy(m.pad.get(), body, len);
        std::memset(m.pad.get() + len, ' ', PADDING);
        m.base = m.pad.get();
    }
    Error e = m.run(ep, len);
    if (in_place) std::memcpy(body + len, saved, PADDING);
    out.text = scratch;
    out.text_len = static_cast<uint32_t>(m.used);
    return e;
}

#define TRY_STR(expr, sv, fmt, a, b, typemsg)                                   \
    do {                                                                        \
        auto ec__ = (expr).get(sv);                                             \
        if (ec__) return string_error(ec__, fmt, a, b, typemsg);                \
    } while (0)

// A short string value that is only compared or kept (small_string), with TRY_STR's errors.
#define TRY_SMALL(val, sv, fmt, a, b, typemsg)                                  \
    do {                                                                        \
        auto ec__ = small_string(val, sv);                                      \
        if (ec__) return string_error(ec__, fmt, a, b, typemsg);                \
    } while (0)

// A string value appended as prompt text (put_text), with the same errors as TRY_STR + add_text.
#define TRY_TEXT(val, src, role, index, fmt, a, b, typemsg)                                       \
    do {                                                                                        \
        bool full__ = false;                                                                    \
        auto ec__ = put_text(val, src, role, index, full__);                                    \
        if (ec__) return string_error(ec__, fmt, a, b, typemsg);                                \
        if (full__) return fail(Error::SCRATCH_FULL, "The request is too large to process.");   \
    } while (0)

Error Extractor::Impl::run(Endpoint ep, size_t len) noexcept {
    od::document doc;
    auto ec = parser.iterate(base, len, len + PADDING).get(doc);
    if (ec) return fail(Error::INVALID_JSON, "The request body is not valid JSON.");
    od::object obj;
    ec = doc.get_object().get(obj);
    if (ec) {
        // INCORRECT_TYPE only says the first token is not '{': tell "valid JSON but not an
        // object" apart from "not JSON at all" (On-Demand is lazy about scalars).
        bool valid_other = false;
        if (ec == simdjson::INCORRECT_TYPE) {
            od::json_type t;
            if (!doc.type().get(t)) {
                bool b;
                double d;
                std::string_view sv;
                od::array arr;
                switch (t) {
                case od::json_type::array: valid_other = !doc.get_array().get(arr); break;
                case od::json_type::string: valid_other = !doc.get_string().get(sv); break;
                case od::json_type::number: valid_other = !doc.get_double().get(d); break;
                case od::json_type::boolean: valid_other = !doc.get_bool().get(b); break;
                case od::json_type::null: { bool n = false; valid_other = !doc.is_null().get(n) && n; break; }
                default: break;
                }
            }
        }
        return valid_other ? fail(Error::NOT_OBJECT, "The request body must be a JSON object.")
                           : fail(Error::INVALID_JSON, "The request body is not valid JSON.");
    }
    Request& r = *req;
    uint32_t seen = 0;
    bool max_completion = false;
    for (auto fr : obj) {
        od::field* f = in_place(fr);
        if (!f) return fail(Error::INVALID_JSON, "The request body is not valid JSON.");
        std::string_view key;
        if (!key_of(*f, key)) return fail(Error::INVALID_JSON, "The request body is not valid JSON.");
        od::value& v = f->value();
        uint32_t bit = 0;
        switch (key.size()) {  // by length first: one compare per key
        case 1: if (key == "n") bit = F_N; break;
        case 4: if (key == "user") bit = F_USER; break;
        case 5: if (key == "model") bit = F_MODEL; else if (key == "tools") bit = F_TOOLS; break;
        case 6: if (key == "stream") bit = F_STREAM; else if (key == "prompt") bit = F_PROMPT; break;
        case 8: if (key == "messages") bit = F_MESSAGES; break;
        case 9: if (key == "functions") bit = F_FUNCTIONS; break;
        case 10: if (key == "max_tokens") bit = F_MAX_TOKENS; break;
        case 14: if (key == "stream_options") bit = F_STREAM_OPTIONS; break;
        case 21: if (key == "max_completion_tokens") bit = F_MAX_COMPLETION; break;
        default: break;
        }
        if (bit == 0) continue;
        if (seen & bit) {
            char k[48];
            snprintf(k, sizeof k, "%.*s", static_cast<int>(key.size() < 40 ? key.size() : 40), key.data());
            return fail(Error::DUPLICATE_FIELD, "appears more than once", "%s", k);
        }
        seen |= bit;
        Error e = Error::NONE;
        switch (bit) {
        case F_MODEL: {
            std::string_view raw = v.raw_json_token();
            std::string_view s;
            TRY_SMALL(v, s, "model", 0u, 0u, "must be a string");
            if (s.empty()) return fail(Error::BAD_VALUE, "must not be empty", "model");
            while (!raw.empty() && raw.back() != '"') raw.remove_suffix(1);  // token may carry whitespace
            r.model_raw_off = static_cast<uint32_t>(reinterpret_cast<const uint8_t*>(raw.data()) - base);
            r.model_raw_len = static_cast<uint32_t>(raw.size());
            if (!keep_string(s, r.model)) return fail(Error::SCRATCH_FULL, "The request is too large to process.");
            break;
        }
        case F_MESSAGES: {
            if (ep != Endpoint::CHAT_COMPLETIONS) break;  // not ours to judge on /v1/completions
            od::array a;
            auto aec = v.get_array().get(a);
            if (aec) return aec == simdjson::INCORRECT_TYPE
                                ? fail(Error::WRONG_TYPE, "must be an array of messages", "messages")
                                : fail(Error::INVALID_JSON, "is not valid JSON", "messages");
            uint32_t i = 0;
            for (auto mr : a) {
                od::value* mv = in_place(mr);
                if (!mv) return fail(Error::INVALID_JSON, "is not valid JSON", "messages[%u]", i);
                if ((e = message_(*mv, i)) != Error::NONE) return e;
                ++i;
            }
            r.message_count = i;
            break;
        }
        case F_PROMPT:
            if (ep != Endpoint::COMPLETIONS) break;
            e = prompt_(v);
            break;
        case F_MAX_TOKENS: {
            int64_t x = -1;
            bool present = false;
            e = uint_field(v, "max_tokens", 0, x, present);
            if (e == Error::NONE && present && !max_completion) r.max_tokens = x;
            break;
        }
        case F_MAX_COMPLETION: {
            int64_t x = -1;
            bool present = false;
            e = uint_field(v, "max_completion_tokens", 0, x, present);
            if (e == Error::NONE && present) { r.max_tokens = x; max_completion = true; }
            break;
        }
        case F_N: {
            int64_t x = 1;
            bool present = false;
            e = uint_field(v, "n", 1, x, present);
            if (e == Error::NONE && present) {
                if (x > 1024) return fail(Error::BAD_VALUE, "must be at most 1024", "n");
                r.n = static_cast<uint32_t>(x);
            }
            break;
        }
        case F_STREAM:
            e = bool_field(v, "stream", r.stream);
            break;
        case F_STREAM_OPTIONS: {
            od::json_type t;
            if (v.type().get(t)) return fail(Error::INVALID_JSON, "is not valid JSON", "stream_options");
            if (t == od::json_type::null) break;
            od::object so;
            if (t != od::json_type::object || v.get_object().get(so))
                return fail(Error::WRONG_TYPE, "must be an object or null", "stream_options");
            bool seen_iu = false;
            for (auto sfr : so) {
                od::field* sf = in_place(sfr);
                std::string_view sk;
                if (!key_of(sf, sk))
                    return fail(Error::INVALID_JSON, "is not valid JSON", "stream_options");
                if (sk != "include_usage") continue;
                if (seen_iu) return fail(Error::DUPLICATE_FIELD, "appears more than once", "stream_options.include_usage");
                seen_iu = true;
                if ((e = bool_field(sf->value(), "stream_options.include_usage", r.include_usage)) != Error::NONE) return e;
            }
            break;
        }
        case F_USER: {
            od::json_type t;
            if (v.type().get(t)) return fail(Error::INVALID_JSON, "is not valid JSON", "user");
            if (t == od::json_type::null) break;
            std::string_view s;
            TRY_SMALL(v, s, "user", 0u, 0u, "must be a string");
            if (!keep_string(s, r.user)) return fail(Error::SCRATCH_FULL, "The request is too large to process.");
            break;
        }
        case F_TOOLS: e = tools_(v, false); break;
        case F_FUNCTIONS: e = tools_(v, true); break;
        default: break;
        }
        if (e != Error::NONE) return e;
    }
    // Trailing content after the object: On-Demand stops at the closing brace, so ask whether
    // the document still has tokens (OUT_OF_BOUNDS means we are at the end).
    const char* loc = nullptr;
    if (!doc.current_location().get(loc)) return fail(Error::INVALID_JSON, "The request body has content after the JSON object.");
    if (!(seen & F_MODEL)) return fail(Error::MISSING_FIELD, "is required", "model");
    if (ep == Endpoint::CHAT_COMPLETIONS) {
        if (!(seen & F_MESSAGES)) return fail(Error::MISSING_FIELD, "is required", "messages");
        if (r.message_count == 0) return fail(Error::BAD_VALUE, "must contain at least one message", "messages");
    }
    return Error::NONE;
}

Error Extractor::Impl::uint_field(od::value& v, const char* name, int64_t min, int64_t& out, bool& present) noexcept {
    od::json_type t;
    if (v.type().get(t)) return fail(Error::INVALID_JSON, "is not valid JSON", "%s", name);
    if (t == od::json_type::null) { present = false; return Error::NONE; }
    if (t != od::json_type::number) return fail(Error::WRONG_TYPE, min > 0 ? "must be a positive integer" : "must be a non-negative integer", "%s", name);
    int64_t x;
    auto ec = v.get_int64().get(x);
    if (ec) {
        // An integer literal too big for int64 is out of range; 1.5 or 1e3 is the wrong type.
        std::string_view tok = v.raw_json_token();
        bool integral = !tok.empty();
        for (char c : tok) {
            if (c == '.' || c == 'e' || c == 'E') { integral = false; break; }
        }
        if (integral && tok[0] != '-') return fail(Error::BAD_VALUE, "is out of range", "%s", name);
    }
    if (!ec && x > (int64_t{1} << 40)) return fail(Error::BAD_VALUE, "is out of range", "%s", name);
    if (ec) return fail(Error::WRONG_TYPE, min > 0 ? "must be a positive integer" : "must be a non-negative integer", "%s", name);
    if (x < min) return fail(Error::BAD_VALUE, min > 0 ? "must be a positive integer" : "must be a non-negative integer", "%s", name);
    out = x;
    present = true;
    return Error::NONE;
}

Error Extractor::Impl::bool_field(od::value& v, const char* name, bool& out) noexcept {
    od::json_type t;
    if (v.type().get(t)) return fail(Error::INVALID_JSON, "is not valid JSON", "%s", name);
    if (t == od::json_type::null) return Error::NONE;
    bool b;
    if (t != od::json_type::boolean || v.get_bool().get(b)) return fail(Error::WRONG_TYPE, "must be a boolean", "%s", name);
    out = b;
    return Error::NONE;
}

Error Extractor::Impl::message_(od::value& mv, uint32_t i) noexcept {
    od::object mo;
    auto ec = mv.get_object().get(mo);
    if (ec) return ec == simdjson::INCORRECT_TYPE ? fail(Error::WRONG_TYPE, "must be an object", "messages[%u]", i)
                                                  : fail(Error::INVALID_JSON, "is not valid JSON", "messages[%u]", i);
    // The role decides the spans' role but may come after content: content is decoded first and
    // its spans patched once the role is known.
    Role role = Role::NONE;
    bool has_role = false, has_content = false, has_tool_calls = false;
    uint32_t first_span = req->span_count;
    for (auto fr : mo) {
        od::field* f = in_place(fr);
        std::string_view k;
        // The two keys every message has, compared raw first (with their closing quote, so
        // they are exactly these keys, unescaped); anything else is unescaped by key_of.
        const char* r = f ? f->key().raw() : nullptr;
        if (r && std::memcmp(r, "role\"", 5) == 0) k = "role";
        else if (r && std::memcmp(r, "content\"", 8) == 0) k = "content";
        else if (!key_of(f, k)) return fail(Error::INVALID_JSON, "is not valid JSON", "messages[%u]", i);
        if (k == "role") {
            if (has_role) return fail(Error::DUPLICATE_FIELD, "appears more than once", "messages[%u].role", i);
            has_role = true;
            std::string_view s;
            TRY_SMALL(f->value(), s, "messages[%u].role", i, 0u, "must be a string");
            role = role_of(s);
        } else if (k == "content") {
            if (has_content) return fail(Error::DUPLICATE_FIELD, "appears more than once", "messages[%u].content", i);
            has_content = true;
            Error e = content_(f->value(), i, role);
            if (e != Error::NONE) return e;
        } else if (k == "tool_calls") {
            if (has_tool_calls) return fail(Error::DUPLICATE_FIELD, "appears more than once", "messages[%u].tool_calls", i);
            has_tool_calls = true;
            Error e = tool_calls_(f->value(), i);
            if (e != Error::NONE) return e;
        }
    }
    if (!has_role) return fail(Error::MISSING_FIELD, "is required", "messages[%u].role", i);
    uint32_t last = req->span_count < MAX_SPANS ? req->span_count : MAX_SPANS;
    for (uint32_t s = first_span; s < last; ++s) req->spans[s].role = role;
    return Error::NONE;
}

Error Extractor::Impl::content_(od::value& v, uint32_t i, Role role) noexcept {
    if (v.raw_json_token()[0] == '"') {  // the common case, a string (what type() would say)
        TRY_TEXT(v, Source::MESSAGE, role, i, "messages[%u].content", i, 0u, "must be a string or an array of content parts");
        return Error::NONE;
    }
    od::json_type t;
    if (v.type().get(t)) return fail(Error::INVALID_JSON, "is not valid JSON", "messages[%u].content", i);
    if (t == od::json_type::null) return Error::NONE;
    if (t == od::json_type::string) {
        TRY_TEXT(v, Source::MESSAGE, role, i, "messages[%u].content", i, 0u, "must be a string or an array of content parts");
        return Error::NONE;
    }
    if (t != od::json_type::array)
        return fail(Error::WRONG_TYPE, "must be a string or an array of content parts", "messages[%u].content", i);
    od::array a;
    if (v.get_array().get(a)) return fail(Error::INVALID_JSON, "is not valid JSON", "messages[%u].content", i);
    uint32_t j = 0;
    for (auto pr : a) {
        od::value* pv = in_place(pr);
        od::object po;
        if (!pv) return fail(Error::INVALID_JSON, "is not valid JSON", "messages[%u].content[%u]", i, j);
        auto ec = pv->get_object().get(po);
        if (ec) return ec == simdjson::INCORRECT_TYPE
                           ? fail(Error::WRONG_TYPE, "must be a content part object", "messages[%u].content[%u]", i, j)
                           : fail(Error::INVALID_JSON, "is not valid JSON", "messages[%u].content[%u]", i, j);
        // Text may precede "type": keep it tentatively and drop it if the part is not text.
        size_t mark = used;
        uint32_t span_mark = req->span_count;
        bool spans_merged = req->spans_merged;
        uint32_t merged_len = span_mark == MAX_SPANS ? req->spans[MAX_SPANS - 1].len : 0;
        bool has_type = false, has_text = false;
        std::string_view type;
        for (auto fr : po) {
            od::field* f = in_place(fr);
            std::string_view k;
            if (!key_of(f, k))
                return fail(Error::INVALID_JSON, "is not valid JSON", "messages[%u].content[%u]", i, j);
            if (k == "type") {
                if (has_type) return fail(Error::DUPLICATE_FIELD, "appears more than once", "messages[%u].content[%u].type", i, j);
                has_type = true;
                std::string_view s;
                TRY_SMALL(f->value(), s, "messages[%u].content[%u].type", i, j, "must be a string");
                // Only a few type names matter; compare now, the string buffer is reused.
                type = s == "text" || s == "input_text" ? "text" : s == "image_url" || s == "input_image" ? "image" : "other";
            } else if (k == "text") {
                if (has_text) return fail(Error::DUPLICATE_FIELD, "appears more than once", "messages[%u].content[%u].text", i, j);
                has_text = true;
                TRY_TEXT(f->value(), Source::MESSAGE, role, i, "messages[%u].content[%u].text", i, j, "must be a string");
            }
        }
        if (!has_type) return fail(Error::MISSING_FIELD, "is required", "messages[%u].content[%u].type", i, j);
        if (type == "text") {
            if (!has_text) return fail(Error::MISSING_FIELD, "is required for a text part", "messages[%u].content[%u].text", i, j);
        } else {
            used = mark;  // roll back text of a non-text part
            req->span_count = span_mark;
            req->spans_merged = spans_merged;
            if (span_mark == MAX_SPANS) req->spans[MAX_SPANS - 1].len = merged_len;
            if (type == "image") ++req->image_parts; else ++req->other_parts;
        }
        ++j;
    }
    return Error::NONE;
}

Error Extractor::Impl::tool_calls_(od::value& v, uint32_t i) noexcept {
    od::json_type t;
    if (v.type().get(t)) return fail(Error::INVALID_JSON, "is not valid JSON", "messages[%u].tool_calls", i);
    if (t == od::json_type::null) return Error::NONE;
    od::array a;
    if (t != od::json_type::array || v.get_array().get(a))
        return fail(Error::WRONG_TYPE, "must be an array", "messages[%u].tool_calls", i);
    uint32_t j = 0;
    for (auto cr : a) {
        od::value* cv = in_place(cr);
        od::object co;
        if (!cv || cv->get_object().get(co))
            return fail(Error::WRONG_TYPE, "must be an object", "messages[%u].tool_calls[%u]", i, j);
        for (auto fr : co) {
            od::field* f = in_place(fr);
            std::string_view k;
            if (!key_of(f, k))
                return fail(Error::INVALID_JSON, "is not valid JSON", "messages[%u].tool_calls[%u]", i, j);
            if (k != "function") continue;
            od::object fo;
            if (f->value().get_object().get(fo))
                return fail(Error::WRONG_TYPE, "must be an object", "messages[%u].tool_calls[%u].function", i, j);
            for (auto gr : fo) {
                od::field* g = in_place(gr);
                std::string_view gk;
                if (!key_of(g, gk))
                    return fail(Error::INVALID_JSON, "is not valid JSON", "messages[%u].tool_calls[%u].function", i, j);
                if (gk != "name" && gk != "arguments") continue;
                TRY_TEXT(g->value(), Source::TOOL_CALL, Role::ASSISTANT, i,
                         gk == "name" ? "messages[%u].tool_calls[%u].function.name"
                                      : "messages[%u].tool_calls[%u].function.arguments",
                         i, j, "must be a string");
            }
        }
        ++j;
    }
    return Error::NONE;
}

// tools: [{"type":"function","function":{"name","description","parameters"}}]
// functions (legacy): [{"name","description","parameters"}]
Error Extractor::Impl::tools_(od::value& v, bool legacy) noexcept {
    const char* top = legacy ? "functions" : "tools";
    od::json_type t;
    if (v.type().get(t)) return fail(Error::INVALID_JSON, "is not valid JSON", "%s", top);
    if (t == od::json_type::null) return Error::NONE;
    od::array a;
    if (t != od::json_type::array || v.get_array().get(a)) return fail(Error::WRONG_TYPE, "must be an array", "%s", top);
    uint32_t k = 0;
    for (auto tr : a) {
        od::value* tvp = in_place(tr);
        if (!tvp) return fail(Error::INVALID_JSON, "is not valid JSON", "%s[%u]", top, k);
        od::value& tv = *tvp;
        Error e;
        if (legacy) {
            e = function_def_(tv, k, "functions[%u]");
        } else {
            od::object to;
            auto ec = tv.get_object().get(to);
            if (ec) return fail(Error::WRONG_TYPE, "must be an object", "tools[%u]", k);
            e = Error::NONE;
            for (auto fr : to) {
                od::field* f = in_place(fr);
                std::string_view key;
                if (!key_of(f, key))
                    return fail(Error::INVALID_JSON, "is not valid JSON", "tools[%u]", k);
                if (key != "function") continue;
                if ((e = function_def_(f->value(), k, "tools[%u].function")) != Error::NONE) return e;
            }
        }
        if (e != Error::NONE) return e;
        ++req->tool_count;
        ++k;
    }
    return Error::NONE;
}

Error Extractor::Impl::function_def_(od::value& v, uint32_t k, const char* where) noexcept {
    od::object fo;
    auto ec = v.get_object().get(fo);
    if (ec) return fail(Error::WRONG_TYPE, "must be an object", where, k);
    char path[80];
    for (auto fr : fo) {
        od::field* f = in_place(fr);
        std::string_view key;
        if (!key_of(f, key)) return fail(Error::INVALID_JSON, "is not valid JSON", where, k);
        if (key == "name" || key == "description") {
            bool full = false;
            auto sec = put_text(f->value(), Source::TOOL_DEF, Role::NONE, k, full);
            if (sec) {
                snprintf(path, sizeof path, where, k);
                return fail(sec == simdjson::INCORRECT_TYPE ? Error::WRONG_TYPE : Error::INVALID_JSON,
                            sec == simdjson::INCORRECT_TYPE ? "must be a string" : "is not a valid JSON string",
                            "%s.%s", path, key == "name" ? "name" : "description");
            }
            if (full) return fail(Error::SCRATCH_FULL, "The request is too large to process.");
        } else if (key == "parameters") {
            // The schema counts as prompt text as the backend renders it: raw JSON.
            od::value& pv = f->value();
            od::json_type t;
            if (pv.type().get(t)) return fail(Error::INVALID_JSON, "is not valid JSON", where, k);
            std::string_view raw;
            simdjson::error_code rec;
            if (t == od::json_type::object) {
                od::object po;
                rec = pv.get_object().get(po);
                if (!rec) rec = po.raw_json().get(raw);
            } else if (t == od::json_type::array) {
                od::array pa;
                rec = pv.get_array().get(pa);
                if (!rec) rec = pa.raw_json().get(raw);
            } else {
                raw = pv.raw_json_token();
                rec = simdjson::SUCCESS;
            }
            if (rec) {
                snprintf(path, sizeof path, where, k);
                return fail(Error::INVALID_JSON, "is not valid JSON", "%s.parameters", path);
            }
            while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\r' || raw.back() == '\t'))
                raw.remove_suffix(1);
            if (!add_text(raw, Source::TOOL_DEF, Role::NONE, k)) return fail(Error::SCRATCH_FULL, "The request is too large to process.");
        }
    }
    return Error::NONE;
}

Error Extractor::Impl::count_ids_(od::array& a, uint32_t i) noexcept {
    for (auto er : a) {
        od::value* ev = in_place(er);
        uint64_t id;
        if (!ev || ev->get_uint64().get(id))
            return fail(Error::WRONG_TYPE, "must be an array of token ids", "prompt[%u]", i);
        ++req->prompt_token_ids;
    }
    return Error::NONE;
}

// prompt: string | [string] | [int] | [[int]]
Error Extractor::Impl::prompt_(od::value& v) noexcept {
    static const char* const TYPE_MSG = "must be a string, an array of strings, or token ids";
    od::json_type t;
    if (v.type().get(t)) return fail(Error::INVALID_JSON, "is not valid JSON", "prompt");
    if (t == od::json_type::string) {
        TRY_TEXT(v, Source::PROMPT, Role::NONE, 0, "prompt", 0u, 0u, TYPE_MSG);
        return Error::NONE;
    }
    if (t != od::json_type::array) return fail(Error::WRONG_TYPE, TYPE_MSG, "prompt");
    od::array a;
    if (v.get_array().get(a)) return fail(Error::INVALID_JSON, "is not valid JSON", "prompt");
    uint32_t i = 0;
    for (auto er : a) {
        od::value* evp = in_place(er);
        od::json_type et;
        if (!evp || evp->type().get(et)) return fail(Error::INVALID_JSON, "is not valid JSON", "prompt[%u]", i);
        od::value& ev = *evp;
        if (et == od::json_type::string) {
            TRY_TEXT(ev, Source::PROMPT, Role::NONE, i, "prompt[%u]", i, 0u, TYPE_MSG);
        } else if (et == od::json_type::number) {
            uint64_t id;
            if (ev.get_uint64().get(id)) return fail(Error::WRONG_TYPE, "must be a token id (non-negative integer)", "prompt[%u]", i);
            ++req->prompt_token_ids;
        } else if (et == od::json_type::array) {
            od::array ia;
            if (ev.get_array().get(ia)) return fail(Error::INVALID_JSON, "is not valid JSON", "prompt[%u]", i);
            Error e = count_ids_(ia, i);
            if (e != Error::NONE) return e;
        } else {
            return fail(Error::WRONG_TYPE, TYPE_MSG, "prompt[%u]", i);
        }
        ++i;
    }
    return Error::NONE;
}

int64_t rewrite_model(const uint8_t* body, size_t len, const Request& req, std::string_view new_model,
                      uint8_t* out, size_t out_cap) noexcept {
    if (req.model_raw_len < 2 || static_cast<size_t>(req.model_raw_off) + req.model_raw_len > len) return -1;
    size_t head = req.model_raw_off;
    size_t tail_off = head + req.model_raw_len;
    size_t tail = len - tail_off;
    // Worst case each byte becomes \u00XX (6 bytes).
    size_t p = 0;
    if (out_cap < head + 2 + tail) return -1;
    std::memcpy(out, body, head);
    p = head;
    out[p++] = '"';
    static const char HEX[] = "0123456789abcdef";
    for (char ch : new_model) {
        auto c = static_cast<uint8_t>(ch);
        const size_t room = out_cap - p - tail - 1;  // keep space for the closing quote and tail
        if (c == '"' || c == '\\') {
            if (room < 2) return -1;
            out[p++] = '\\';
            out[p++] = c;
        } else if (c < 0x20) {
            if (room < 6) return -1;
            out[p++] = '\\'; out[p++] = 'u'; out[p++] = '0'; out[p++] = '0';
            out[p++] = static_cast<uint8_t>(HEX[c >> 4]);
            out[p++] = static_cast<uint8_t>(HEX[c & 15]);
        } else {
            if (room < 1) return -1;
            out[p++] = c;
        }
    }
    out[p++] = '"';
    std::memcpy(out + p, body + tail_off, tail);
    return static_cast<int64_t>(p + tail);
}

}  // namespace tlb::openai
