// The per-request understand step. See understand.hpp for the decisions.
#include "understand/understand.hpp"

#include <cstring>
#include <new>

#include "classify/classify.hpp"
#include "http/error_response.hpp"
#include "openai/request.hpp"
#include "tokens/tokens.hpp"

namespace tlb::understand {

namespace {

bool path_is(const uint8_t* p, size_t n, std::string_view s) noexcept {
    // A trailing '/' is tolerated ("/v1/models/"), as backends do.
    if (n == s.size() + 1 && p[n - 1] == '/') --n;
    return n == s.size() && std::memcmp(p, s.data(), n) == 0;
}

bool path_starts(const uint8_t* p, size_t n, std::string_view s) noexcept {
    return n > s.size() && std::memcmp(p, s.data(), s.size()) == 0;
}

tokens::Role token_role(openai::Role r) noexcept {
    switch (r) {
        case openai::Role::NONE: return tokens::Role::None;
        case openai::Role::SYSTEM: return tokens::Role::System;
        case openai::Role::DEVELOPER: return tokens::Role::Developer;
        case openai::Role::USER: return tokens::Role::User;
        case openai::Role::ASSISTANT: return tokens::Role::Assistant;
        case openai::Role::TOOL: return tokens::Role::Tool;
        case openai::Role::FUNCTION: return tokens::Role::Function;
        case openai::Role::OTHER: return tokens::Role::Other;
    }
    return tokens::Role::Other;
}

const char* method_name(http::Method m) noexcept {
    switch (m) {
        case http::Method::GET: return "GET";
        case http::Method::HEAD: return "HEAD";
        case http::Method::POST: return "POST";
        case http::Method::PUT: return "PUT";
        case http::Method::DELETE: return "DELETE";
        case http::Method::OPTIONS: return "OPTIONS";
        case http::Method::PATCH: return "PATCH";
        case http::Method::OTHER: break;
    }
    return "OTHER";
}

// Bounded string builder over a fixed buffer (no allocation, always NUL-terminated).
struct Msg {
    char* buf;
    size_t cap;
    size_t len = 0;
    Msg& add(const char* s, size_t n) noexcept {
        for (size_t i = 0; i < n && len + 1 < cap; ++i) {
            const char c = s[i];
            buf[len++] = (c >= 0x20 && c < 0x7f) ? c : '?';  // the path is client input
        }
        buf[len] = 0;
        return *this;
    }
    Msg& add(const char* s) noexcept { return add(s, std::strlen(s)); }
};

}  // namespace

const char* endpoint_name(EndpointKind k) noexcept {
    switch (k) {
        case EndpointKind::CHAT: return "chat";
        case EndpointKind::COMPLETIONS: return "completions";
        case EndpointKind::MODELS: return "models";
        case EndpointKind::HEALTH: return "health";
        case EndpointKind::UNKNOWN: break;
    }
    return "unknown";
}

Understander::Understander() noexcept = default;
Understander::~Understander() = default;

bool Understander::init(const Options& opt, const classify::Classifier* classifier,
                        const tokens::Estimator* estimator, std::string* error) {
    auto set = [&](const char* m) {
        if (error) *error = m;
        return false;
    };
    if (!estimator) return set("understand: no token estimator");
    if (opt.max_body_bytes == 0 || opt.max_body_bytes > (1u << 30)) return set("understand: max_body_bytes out of range");
    if (opt.prefix_block_bytes < 16 || opt.prefix_block_bytes > tokens::PREFIX_MAX_BLOCK_BYTES ||
        opt.prefix_block_bytes % 16)
        return set("understand: prefix_block_bytes must be a multiple of 16 in [16, 4096]");
    _opt = opt;
    _classifier = classifier;
    _estimator = estimator;
    _parser.reset(new (std::nothrow) http::RequestParser());
    _extractor.reset(new (std::nothrow) openai::Extractor());
    _req.reset(new (std::nothrow) openai::Request());
    // Decoded text is never longer than its JSON (lib/openai), so the body limit bounds it.
    _scratch_cap = opt.max_body_bytes + 64;
    _scratch.reset(new (std::nothrow) uint8_t[_scratch_cap]);
    _spans.reset(new (std::nothrow) tokens::TextSpan[openai::MAX_SPANS]);
    _fields.reset(new (std::nothrow) tokens::TextField[openai::MAX_SPANS]);
    if (!_parser || !_extractor || !_req || !_scratch || !_spans || !_fields)
        return set("understand: out of memory");
    _parser->set_limits(opt.limits);
    if (!_extractor->init(opt.max_body_bytes)) return set("understand: cannot size the JSON parser");
    if (classifier) {
        _scanner.reset(new (std::nothrow) classify::Scanner(*classifier));
        if (!_scanner || !_scanner->ok()) return set("understand: cannot allocate Hyperscan scratch");
    }
    _ready = true;
    return true;
}

bool Understander::fail(RequestFeatures& out, uint16_t status, const char* code, const char* message,
                        const char* param) noexcept {
    out.status = status;
    out.code = code;
    out.message = message;
    out.param = param ? param : "";
    ++_errors;
    return false;
}

bool Understander::understand(uint8_t* buf, size_t len, size_t capacity, RequestFeatures& out) noexcept {
    if (!_ready) {
        out = RequestFeatures{};
        ++_requests;
        return fail(out, 503, "not_ready", "The request could not be processed.");
    }
    _parser->reset();
    const int64_t r = _parser->parse(buf, len);
    if (r <= 0) {
        out = RequestFeatures{};
        ++_requests;
        if (r == 0) return fail(out, 400, "incomplete_request", "The request ended before it was complete.");
        const http::Error e = _parser->error();
        return fail(out, http::error_status(e), http::error_name(e), http::error_message(e));
    }
    return understand_framed(*_parser, buf, capacity, out);
}

bool Understander::understand_framed(const http::RequestParser& rp, uint8_t* buf, size_t capacity,
                                     RequestFeatures& out) noexcept {
    ++_requests;
    // Reset only the scalar part: prefix_hash entries beyond prefix_blocks are never read.
    out.endpoint = EndpointKind::UNKNOWN;
    out.method = rp.method();
    out.keep_alive = rp.keep_alive();
    out.model = {};
    out.max_tokens = -1;
    out.n = 1;
    out.stream = out.include_usage = false;
    out.user = {};
    out.prompt_tokens = 0;
    out.tags = 0;
    out.prefix_blocks = 0;
    out.body_bytes = static_cast<uint32_t>(rp.body_length() > UINT32_MAX ? UINT32_MAX : rp.body_length());
    out.text_bytes = out.message_count = out.tool_count = out.image_parts = 0;
    out.status = 0;
    out.code = out.message = out.param = "";
    if (!_ready) return fail(out, 503, "not_ready", "The request could not be processed.");
    if (!rp.complete()) return fail(out, 400, "incomplete_request", "The request ended before it was complete.");

    const http::Span ps = rp.path();
    const uint8_t* path = buf + ps.off;
    const size_t plen = ps.len;
    const http::Method m = rp.method();
    http::Method want = http::Method::POST;
    if (path_is(path, plen, "/v1/chat/completions")) {
        out.endpoint = EndpointKind::CHAT;
    } else if (path_is(path, plen, "/v1/completions")) {
        out.endpoint = EndpointKind::COMPLETIONS;
    } else if (path_is(path, plen, "/v1/models") || path_starts(path, plen, "/v1/models/")) {
        out.endpoint = EndpointKind::MODELS;
        want = http::Method::GET;
    } else if (path_is(path, plen, "/health") || path_is(path, plen, "/healthz") || path_is(path, plen, "/ready")) {
        out.endpoint = EndpointKind::HEALTH;
        want = http::Method::GET;
    } else {
        Msg msg{_msg, sizeof(_msg)};
        msg.add("Unknown request URL: ").add(method_name(m)).add(" ").add(reinterpret_cast<const char*>(path), plen > 160 ? 160 : plen).add(".");
        return fail(out, 404, "unknown_url", _msg);
    }
    if (m != want && !(want == http::Method::GET && m == http::Method::HEAD)) {
        Msg msg{_msg, sizeof(_msg)};
        msg.add("Method ").add(method_name(m)).add(" is not allowed on ").add(reinterpret_cast<const char*>(path), plen > 160 ? 160 : plen).add("; use ").add(method_name(want)).add(".");
        return fail(out, 405, "method_not_allowed", _msg);
    }
    if (out.endpoint == EndpointKind::MODELS || out.endpoint == EndpointKind::HEALTH) return true;

    // Body extraction.
    const uint64_t blen = rp.body_length();
    if (blen > _opt.max_body_bytes)
        return fail(out, 413, "body_too_large", "Request body too large.");
    uint8_t* body = const_cast<uint8_t*>(rp.body_data(buf));
    size_t body_cap = static_cast<size_t>(blen);
    if (body >= buf && body <= buf + capacity) body_cap = static_cast<size_t>(buf + capacity - body);
    openai::Request& req = *_req;
    const openai::Endpoint ep =
        out.endpoint == EndpointKind::CHAT ? openai::Endpoint::CHAT_COMPLETIONS : openai::Endpoint::COMPLETIONS;
    const openai::Error e = _extractor->extract(ep, body, static_cast<size_t>(blen), body_cap, _scratch.get(),
                                                _scratch_cap, req);
    if (e != openai::Error::NONE)
        return fail(out, openai::error_status(e), openai::error_name(e), _extractor->message(), _extractor->param());

    out.model = req.model;
    out.max_tokens = req.max_tokens;
    out.n = req.n;
    out.stream = req.stream;
    out.include_usage = req.include_usage;
    out.user = req.user;
    out.text_bytes = req.text_len;
    out.message_count = req.message_count;
    out.tool_count = req.tool_count;
    out.image_parts = req.image_parts;

    // Tokens: each text field is encoded on its own by the backend's tokenizer; one estimator
    // pass covers them all (exactly the sum of per-field estimates).
    for (uint32_t i = 0; i < req.span_count; ++i) _fields[i] = {req.spans[i].off, req.spans[i].len};
    const uint64_t fixed =
        _estimator->estimate_fields_fixed(reinterpret_cast<const char*>(req.text), _fields.get(), req.span_count);
    const uint64_t tokens_total = ((fixed + 128) >> 8) + req.prompt_token_ids;
    out.prompt_tokens = tokens_total > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(tokens_total);

    // Tags: one pass over the whole decoded text.
    if (_scanner && req.text_len > 0) {
        const std::string_view all(reinterpret_cast<const char*>(req.text), req.text_len);
        out.tags = _scanner->scan(&all, 1);
    }

    // Prefix fingerprint: tool definitions first, then everything else in document order.
    size_t ns = 0;
    for (int pass = 0; pass < 2; ++pass) {
        for (uint32_t i = 0; i < req.span_count; ++i) {
            const openai::TextSpan& s = req.spans[i];
            const bool tool_def = s.source == openai::Source::TOOL_DEF;
            if (tool_def != (pass == 0)) continue;
            tokens::TextSpan& t = _spans[ns++];
            t.data = reinterpret_cast<const char*>(req.text) + s.off;
            t.size = s.len;
            t.role = tool_def ? tokens::Role::Other : token_role(s.role);
        }
    }
    out.prefix_blocks = static_cast<uint32_t>(
        tokens::prefix_fingerprint(_spans.get(), ns, out.prefix_hash, MAX_PREFIX_BLOCKS, _opt.prefix_block_bytes));
    return true;
}

int64_t Understander::build_error(const RequestFeatures& f, uint8_t* dst, size_t cap) noexcept {
    http::ErrorBody b;
    b.message = f.message ? f.message : "";
    b.code = f.code ? f.code : "";
    b.param = f.param ? f.param : "";
    // Errors found before the body was understood leave the stream in a known state only when
    // framing succeeded; framing errors (no endpoint, method OTHER) close.
    const bool framing_error = f.status == 431 || f.status == 501 || f.status == 505 ||
                               (f.endpoint == EndpointKind::UNKNOWN && f.status != 404 && f.status != 405);
    return http::build_error_response(dst, cap, f.status ? f.status : 500, b, f.keep_alive && !framing_error);
}

}  // namespace tlb::understand
