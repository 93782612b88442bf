#include "http/request.hpp"

#include <cstring>

#include "http/util.hpp"

namespace tlb::http {

namespace {

// Bytes allowed in a header block outside of CR/LF handling: HTAB, SP..~, and obs-text (0x80+).
// Everything else below 0x20, and DEL, is a control character.
inline unsigned is_ctl(uint8_t c) noexcept { return static_cast<unsigned>((c < 0x20) & (c != '\t')) | (c == 0x7f); }

// RFC 9110 tchar, as a table: header names are checked byte by byte on every request.
struct TcharTable {
    bool t[256] = {};
    constexpr TcharTable() {
        for (int c = '0'; c <= '9'; ++c) t[c] = true;
        for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
        for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
        for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<uint8_t>(c)] = true;
    }
};
constexpr TcharTable TCHAR{};
inline bool is_tchar(uint8_t c) noexcept { return TCHAR.t[c]; }

}  // namespace

uint16_t error_status(Error e) noexcept {
    switch (e) {
    case Error::NONE: return 200;
    case Error::VERSION_NOT_SUPPORTED: return 505;
    case Error::TE_UNSUPPORTED: return 501;
    case Error::EXPECTATION_FAILED: return 417;
    case Error::HEADERS_TOO_LARGE:
    case Error::TOO_MANY_HEADERS: return 431;
    case Error::BODY_TOO_LARGE: return 413;
    case Error::BAD_STATUS_LINE:
    case Error::RESPONSE_TOO_LARGE:
    case Error::TRUNCATED: return 502;
    default: return 400;
    }
}

const char* error_name(Error e) noexcept {
    static const char* const NAMES[] = {
        "none", "bad_request_line", "bad_method", "bad_target", "bad_version",
        "version_not_supported", "bad_header", "bare_cr_lf", "obs_fold", "control_char",
        "missing_host", "duplicate_host", "cl_and_te", "duplicate_cl", "bad_cl", "bad_te",
        "te_unsupported", "bad_chunk", "expectation_failed", "upgrade_unsupported",
        "headers_too_large", "too_many_headers", "body_too_large", "protocol",
        "bad_status_line", "response_too_large", "truncated",
    };
    static_assert(sizeof(NAMES) / sizeof(NAMES[0]) == static_cast<size_t>(Error::COUNT_));
    auto i = static_cast<size_t>(e);
    return i < static_cast<size_t>(Error::COUNT_) ? NAMES[i] : "unknown";
}

const char* error_message(Error e) noexcept {
    switch (e) {
    case Error::NONE: return "ok";
    case Error::BAD_REQUEST_LINE: return "Malformed HTTP request line.";
    case Error::BAD_METHOD: return "Invalid HTTP method.";
    case Error::BAD_TARGET: return "Invalid request target.";
    case Error::BAD_VERSION: return "Invalid HTTP version.";
    case Error::VERSION_NOT_SUPPORTED: return "HTTP version not supported; use HTTP/1.1.";
    case Error::BAD_HEADER: return "Malformed HTTP header.";
    case Error::BARE_CR_LF: return "HTTP lines must end with CRLF.";
    case Error::OBS_FOLD: return "Folded (obs-fold) header lines are not accepted.";
    case Error::CONTROL_CHAR: return "Control character in HTTP header section.";
    case Error::MISSING_HOST: return "HTTP/1.1 request without a Host header.";
    case Error::DUPLICATE_HOST: return "More than one Host header.";
    case Error::CL_AND_TE: return "Content-Length and Transfer-Encoding must not be used together.";
    case Error::DUPLICATE_CL: return "More than one Content-Length header.";
    case Error::BAD_CL: return "Invalid Content-Length header.";
    case Error::BAD_TE: return "Invalid Transfer-Encoding header.";
    case Error::TE_UNSUPPORTED: return "Unsupported transfer coding; only chunked is accepted.";
    case Error::BAD_CHUNK: return "Malformed chunked request body.";
    case Error::EXPECTATION_FAILED: return "Only Expect: 100-continue is supported.";
    case Error::UPGRADE_UNSUPPORTED: return "CONNECT is not supported.";
    case Error::HEADERS_TOO_LARGE: return "Request header section too large.";
    case Error::TOO_MANY_HEADERS: return "Too many request header fields.";
    case Error::BODY_TOO_LARGE: return "Request body too large.";
    case Error::PROTOCOL: return "Malformed HTTP request.";
    case Error::BAD_STATUS_LINE: return "Malformed response from the upstream server.";
    case Error::RESPONSE_TOO_LARGE: return "Upstream response header section too large.";
    case Error::TRUNCATED: return "Upstream closed the connection before the response ended.";
    default: return "Malformed HTTP request.";
    }
}

RequestParser::RequestParser() noexcept { reset(); }

void RequestParser::set_limits(const Limits& l) noexcept {
    _limits = l;
    if (_limits.max_headers > MAX_HEADERS_CAP) _limits.max_headers = MAX_HEADERS_CAP;
}

void RequestParser::set_body_buffer(uint8_t* out, size_t cap) noexcept {
    _body_out = out;
    _body_out_cap = out ? cap : 0;
}

void RequestParser::reset() noexcept {
    http_parser_init(&_p, HTTP_REQUEST);
    _p.data = this;
    _buf = nullptr;
    _fed = 0;
    _error = Error::NONE;
    _cb_error = Error::NONE;
    _in_trailers = false;
    _block_done = false;
    _prev_cr = false;
    _leading = true;
    _scan_pos = 0;
    _line_start = 0;
    _lines = 0;
    _block_end = 0;
    _trailer_start = 0;
    _headers_done = false;
    _complete = false;
    _paused_chunk = false;
    _in_header_value = false;
    _method = Method::OTHER;
    _method_span = {};
    _target = {};
    _path = {};
    _minor = 1;
    _keep_alive = true;
    _chunked = false;
    _has_cl = false;
    _expect_continue = false;
    _content_length = 0;
    _headers_end = 0;
    _nheaders = 0;
    _host = {};
    _content_type = {};
    _authorization = {};
    _body_in_out = false;
    _body_off = 0;
    _body_len = 0;
    _chunk_line_start = 0;
    _chunk_data_end = 0;
}

int64_t RequestParser::fail(Error e) noexcept {
    _error = e;
    return -static_cast<int64_t>(e);
}

bool RequestParser::find_header(const uint8_t* buf, std::string_view name, Span& out) const noexcept {
    for (uint32_t i = 0; i < _nheaders; ++i) {
        const Header& h = _headers[i];
        if (iequals(buf + h.name.off, h.name.len, name)) {
            out = h.value;
            return true;
        }
    }
    out = {};
    return false;
}

// Validates "METHOD SP request-target SP HTTP/D.D" exactly; http-parser tolerates repeated spaces
// and multi-digit versions, which would let two parsers disagree about the same line.
static Error check_request_line(const uint8_t* b, uint32_t begin, uint32_t end, Span& method,
                                Span& target) noexcept {
    uint32_t i = begin;
    while (i < end && is_tchar(b[i])) ++i;
    if (i < end && b[i] != ' ') return Error::BAD_METHOD;
    if (i == begin || i >= end) return i == begin ? Error::BAD_METHOD : Error::BAD_REQUEST_LINE;
    method = {begin, i - begin};
    uint32_t t = ++i;
    while (i < end && b[i] != ' ') {
        // RFC 3986 never allows these unescaped; http-parser lets some of them through.
        switch (b[i]) {
        case '"': case '<': case '>': case '\\': case '^': case '`': case '{': case '|': case '}':
            return Error::BAD_TARGET;
        default:
            if (b[i] <= 0x20 || b[i] >= 0x7f) return Error::BAD_TARGET;
        }
        ++i;
    }
    if (i == t) return Error::BAD_REQUEST_LINE;
    target = {t, i - t};
    if (i >= end) return Error::BAD_VERSION;  // HTTP/0.9 style "GET /"
    ++i;
    if (end - i != 8 || std::memcmp(b + i, "HTTP/", 5) != 0 || b[i + 6] != '.' ||
        b[i + 5] < '0' || b[i + 5] > '9' || b[i + 7] < '0' || b[i + 7] > '9')
        return Error::BAD_VERSION;
    if (b[i + 5] == '0') return Error::BAD_VERSION;
    if (b[i + 5] > '1') return Error::VERSION_NOT_SUPPORTED;
    return Error::NONE;
}

// Walks new bytes of the header (or trailer) block. Returns <0 error, 0 need more, 1 when the
// block's final empty line has been seen (_block_end is then the offset after it).
int RequestParser::scan_block(const uint8_t* buf, size_t len) noexcept {
    if (_block_done) return 1;
    const uint32_t block_start = _in_trailers ? _trailer_start : 0;
    size_t limit_end = static_cast<size_t>(block_start) + _limits.max_header_bytes;
    size_t end = len < limit_end ? len : limit_end;
    uint32_t pos = _scan_pos;
    for (; pos < end; ++pos) {
        uint8_t c = buf[pos];
        if (_prev_cr) {
            _prev_cr = false;
            if (c != '\n') { _scan_pos = pos; return static_cast<int>(fail(Error::BARE_CR_LF)); }
            uint32_t line_len = pos - 1 - _line_start;
            if (line_len == 0) {
                if (_leading && !_in_trailers) {  // RFC 9112 2.2: ignore empty lines before the request line
                    _line_start = pos + 1;
                    continue;
                }
                _block_end = pos + 1;
                _scan_pos = pos + 1;
                _block_done = true;
                return 1;
            }
            if (!_in_trailers && _lines == 0) {
                Error e = check_request_line(buf, _line_start, pos - 1, _method_span, _target);
                if (e != Error::NONE) { _scan_pos = pos; return static_cast<int>(fail(e)); }
            } else {
                // field-name ":" with no whitespace before the colon (RFC 9112 5.1); the Debian
                // http-parser build is not strict here.
                uint32_t i = _line_start;
                while (i < pos - 1 && is_tchar(buf[i])) ++i;
                if (i == _line_start || i >= pos - 1 || buf[i] != ':') {
                    _scan_pos = pos;
                    return static_cast<int>(fail(Error::BAD_HEADER));
                }
            }
            _leading = false;
            ++_lines;
            uint32_t fields = _in_trailers ? _lines : _lines - 1;
            if (fields > _limits.max_headers) { _scan_pos = pos; return static_cast<int>(fail(Error::TOO_MANY_HEADERS)); }
            _line_start = pos + 1;
            continue;
        }
        if (pos == _line_start && (c == ' ' || c == '\t')) {
            _scan_pos = pos;
            bool fold = _in_trailers || _lines > 0;
            return static_cast<int>(fail(fold ? Error::OBS_FOLD : Error::BAD_REQUEST_LINE));
        }
        // Rest of the line up to CR: memchr is vectorised in libc, and the control-character
        // test below is a branch-free reduction the compiler vectorises (LF counts as a control
        // character here, so a bare LF is caught too).
        const void* cr = std::memchr(buf + pos, '\r', end - pos);
        uint32_t stop = cr ? static_cast<uint32_t>(static_cast<const uint8_t*>(cr) - buf) : static_cast<uint32_t>(end);
        unsigned bad = 0;
        for (uint32_t i = pos; i < stop; ++i) bad |= is_ctl(buf[i]);
        if (bad) {
            while (!is_ctl(buf[pos])) ++pos;
            _scan_pos = pos;
            return static_cast<int>(fail(buf[pos] == '\n' ? Error::BARE_CR_LF : Error::CONTROL_CHAR));
        }
        if (!cr) { pos = stop; break; }
        _prev_cr = true;
        pos = stop;  // the loop's ++pos steps past the CR
    }
    _scan_pos = pos;
    if (len >= limit_end) return static_cast<int>(fail(Error::HEADERS_TOO_LARGE));
    return 0;
}

// Chunk-size line: 1*HEXDIG [ chunk-ext ] CRLF, where the extension may only hold visible
// characters, SP and HTAB (http-parser would swallow anything, bare LF included, up to CR).
bool RequestParser::check_chunk_line(const uint8_t* b, uint32_t begin, uint32_t end) noexcept {
    // end is the offset after LF
    if (end < begin + 3 || b[end - 1] != '\n' || b[end - 2] != '\r') return false;
    // The CRLF that ends the previous chunk's data: the Debian http-parser is built with
    // HTTP_PARSER_STRICT=0 and skips that check, so "3\r\nabcXY" would pass without this.
    if (begin != _headers_end && (begin < 2 || b[begin - 2] != '\r' || b[begin - 1] != '\n')) return false;
    uint32_t stop = end - 2;
    uint32_t i = begin;
    while (i < stop && ((b[i] >= '0' && b[i] <= '9') || ((b[i] | 0x20) >= 'a' && (b[i] | 0x20) <= 'f'))) ++i;
    if (i == begin || i - begin > 16) return false;
    if (i == stop) return true;
    // Optional BWS before ';'
    while (i < stop && (b[i] == ' ' || b[i] == '\t')) ++i;
    if (i == stop || b[i] != ';') return false;
    for (; i < stop; ++i)
        if (b[i] != '\t' && (b[i] < 0x20 || b[i] == 0x7f)) return false;
    return true;
}

int64_t RequestParser::parse(uint8_t* buf, size_t len) noexcept {
    if (_error != Error::NONE) return -static_cast<int64_t>(_error);
    if (_complete) return static_cast<int64_t>(_fed);
    if (len > 0xffffffffu) len = 0xffffffffu;  // offsets are 32-bit; limits keep us far below
    _buf = buf;
    for (;;) {
        size_t upto = len;
        if (!_headers_done || _in_trailers) {
            int r = scan_block(buf, len);
            if (r < 0) return -static_cast<int64_t>(_error);
            if (r == 0) return 0;
            upto = _block_end;
        }
        if (_fed >= upto) return 0;
        int64_t r = feed_parser(buf, upto);
        if (r != 0) return r;
        if (_fed >= len) return 0;
    }
}

// One http_parser_execute over [_fed, upto). Returns <0 on error, >0 when the request is
// complete, 0 to continue the loop in parse().
int64_t RequestParser::feed_parser(uint8_t* buf, size_t upto) noexcept {
    size_t n = http_parser_execute(&_p, &settings(), reinterpret_cast<const char*>(buf + _fed),
                                   upto - _fed);
    _fed += n;
    auto err = static_cast<http_errno>(_p.http_errno);
    if (err == HPE_OK) return 0;
    if (err != HPE_PAUSED) {
        if (_cb_error != Error::NONE) return fail(_cb_error);
        switch (err) {
        case HPE_INVALID_METHOD: return fail(Error::BAD_METHOD);
        case HPE_INVALID_URL: case HPE_INVALID_HOST: case HPE_INVALID_PORT:
        case HPE_INVALID_PATH: case HPE_INVALID_QUERY_STRING: case HPE_INVALID_FRAGMENT:
            return fail(Error::BAD_TARGET);
        case HPE_INVALID_VERSION: case HPE_INVALID_CONSTANT: return fail(Error::BAD_VERSION);
        case HPE_INVALID_HEADER_TOKEN: return fail(Error::BAD_HEADER);
        case HPE_INVALID_CONTENT_LENGTH:
            return fail(_headers_done && _chunked ? Error::BAD_CHUNK : Error::BAD_CL);
        case HPE_UNEXPECTED_CONTENT_LENGTH: {
            // Raised both for CL+TE and for a second Content-Length; our header table tells which.
            Span s;
            bool te = find_header(buf, "transfer-encoding", s);
            return fail(te ? Error::CL_AND_TE : Error::DUPLICATE_CL);
        }
        case HPE_INVALID_CHUNK_SIZE: return fail(Error::BAD_CHUNK);
        case HPE_INVALID_TRANSFER_ENCODING: return fail(Error::BAD_TE);
        case HPE_HEADER_OVERFLOW: return fail(Error::HEADERS_TOO_LARGE);
        case HPE_LF_EXPECTED: case HPE_STRICT:
            return fail(_headers_done ? Error::BAD_CHUNK : Error::BAD_HEADER);
        default: return fail(Error::PROTOCOL);
        }
    }
    // Paused by one of our callbacks.
    if (_complete) return static_cast<int64_t>(_fed);
    if (_paused_chunk) {
        _paused_chunk = false;
        if (!check_chunk_line(buf, _chunk_line_start, static_cast<uint32_t>(_fed))) return fail(Error::BAD_CHUNK);
        uint64_t size = _p.content_length;
        if (_body_len + size > _limits.max_body_bytes) return fail(Error::BODY_TOO_LARGE);
        if (_body_out && _body_len + size > _body_out_cap) return fail(Error::BODY_TOO_LARGE);
        if (size == 0) {
            _in_trailers = true;
            _block_done = false;
            _prev_cr = false;
            _lines = 0;
            _trailer_start = static_cast<uint32_t>(_fed);
            _scan_pos = _trailer_start;
            _line_start = _trailer_start;
        } else {
            // Offsets stay below 2^32 because the buffer length is clamped in parse().
            uint64_t next = _fed + size + 2;
            _chunk_line_start = next > 0xffffffffu ? 0xffffffffu : static_cast<uint32_t>(next);
        }
        http_parser_pause(&_p, 0);
        return 0;
    }
    return fail(Error::PROTOCOL);
}

int RequestParser::cb_url(http_parser*, const char*, size_t) { return 0; }

int RequestParser::cb_header_field(http_parser* p, const char* at, size_t n) {
    auto* self = static_cast<RequestParser*>(p->data);
    if (self->_headers_done) return 0;  // trailer fields are validated by the scanner, not kept
    auto off = static_cast<uint32_t>(reinterpret_cast<const uint8_t*>(at) - self->_buf);
    if (!self->_in_header_value && self->_nheaders > 0) {
        Header& h = self->_headers[self->_nheaders - 1];
        if (h.name.off + h.name.len == off) { h.name.len += static_cast<uint32_t>(n); return 0; }
    }
    if (self->_nheaders >= self->_limits.max_headers) {
        self->_cb_error = Error::TOO_MANY_HEADERS;
        return 1;
    }
    Header& h = self->_headers[self->_nheaders++];
    h.name = {off, static_cast<uint32_t>(n)};
    h.value = {off + static_cast<uint32_t>(n), 0};
    self->_in_header_value = false;
    return 0;
}

int RequestParser::cb_header_value(http_parser* p, const char* at, size_t n) {
    auto* self = static_cast<RequestParser*>(p->data);
    if (self->_headers_done || self->_nheaders == 0) return 0;
    auto off = static_cast<uint32_t>(reinterpret_cast<const uint8_t*>(at) - self->_buf);
    Header& h = self->_headers[self->_nheaders - 1];
    if (self->_in_header_value && h.value.off + h.value.len == off) {
        h.value.len += static_cast<uint32_t>(n);
    } else {
        h.value = {off, static_cast<uint32_t>(n)};
    }
    self->_in_header_value = true;
    return 0;
}

int RequestParser::cb_headers_complete(http_parser* p) {
    auto* self = static_cast<RequestParser*>(p->data);
    int r = self->on_headers_complete_();
    return r;
}

int RequestParser::on_headers_complete_() noexcept {
    _headers_done = true;
    _in_header_value = false;
    _headers_end = _block_end;
    const uint8_t* b = _buf;

    // Trim values and pick out the headers we act on.
    uint32_t hosts = 0, cls = 0, tes = 0;
    Span te_spans[8];
    uint32_t nte = 0;
    Span expect;
    bool has_expect = false;
    for (uint32_t i = 0; i < _nheaders; ++i) {
        Header& h = _headers[i];
        h.value = trim(b, h.value);
        const uint8_t* name = b + h.name.off;
        uint32_t nl = h.name.len;
        if (iequals(name, nl, "host")) { ++hosts; _host = h.value; }
        else if (iequals(name, nl, "content-length")) ++cls;
        else if (iequals(name, nl, "transfer-encoding")) {
            ++tes;
            if (nte < 8) te_spans[nte++] = h.value;
        }
        else if (iequals(name, nl, "content-type")) { if (_content_type.len == 0) _content_type = h.value; }
        else if (iequals(name, nl, "authorization")) { if (_authorization.len == 0) _authorization = h.value; }
        else if (iequals(name, nl, "expect")) { expect = h.value; has_expect = true; }
    }

    if (_p.http_major != 1) { _cb_error = _p.http_major == 0 ? Error::BAD_VERSION : Error::VERSION_NOT_SUPPORTED; return -1; }
    _minor = _p.http_minor >= 1 ? 1 : 0;

    switch (static_cast<http_method>(_p.method)) {
    case HTTP_GET: _method = Method::GET; break;
    case HTTP_HEAD: _method = Method::HEAD; break;
    case HTTP_POST: _method = Method::POST; break;
    case HTTP_PUT: _method = Method::PUT; break;
    case HTTP_DELETE: _method = Method::DELETE; break;
    case HTTP_OPTIONS: _method = Method::OPTIONS; break;
    case HTTP_PATCH: _method = Method::PATCH; break;
    case HTTP_CONNECT: _cb_error = Error::UPGRADE_UNSUPPORTED; return -1;
    default: _method = Method::OTHER; break;
    }

    // Path: origin-form as is; absolute-form from the first '/' after "scheme://authority".
    {
        uint32_t s = _target.off, e = _target.off + _target.len;
        if (_target.len > 0 && b[s] != '/' && !(b[s] == '*' && _target.len == 1)) {
            uint32_t i = s;
            while (i + 2 < e && !(b[i] == ':' && b[i + 1] == '/' && b[i + 2] == '/')) ++i;
            if (i + 2 >= e) { _cb_error = Error::BAD_TARGET; return -1; }
            i += 3;
            while (i < e && b[i] != '/' && b[i] != '?') ++i;
            s = i;
        }
        uint32_t q = s;
        while (q < e && b[q] != '?' && b[q] != '#') ++q;
        _path = {s, q - s};
    }

    if (hosts > 1) { _cb_error = Error::DUPLICATE_HOST; return -1; }
    if (hosts == 0 && _minor == 1) { _cb_error = Error::MISSING_HOST; return -1; }

    if (tes > 0) {
        if (cls > 0) { _cb_error = Error::CL_AND_TE; return -1; }
        if (_minor == 0) { _cb_error = Error::BAD_TE; return -1; }  // RFC 9112 6.1
        if (nte < tes) { _cb_error = Error::BAD_TE; return -1; }
        uint32_t chunked = 0, total = 0;
        bool unsupported = false;
        for (uint32_t i = 0; i < nte; ++i) {
            uint32_t s = te_spans[i].off, e = s + te_spans[i].len;
            while (s < e) {
                while (s < e && (b[s] == ' ' || b[s] == '\t' || b[s] == ',')) ++s;
                if (s >= e) break;
                uint32_t t = s;
                while (t < e && b[t] != ',' && b[t] != ' ' && b[t] != '\t' && b[t] != ';') ++t;
                ++total;
                if (iequals(b + s, t - s, "chunked")) {
                    ++chunked;
                    if (chunked > 1) { _cb_error = Error::BAD_TE; return -1; }
                } else {
                    unsupported = true;
                }
                while (t < e && b[t] != ',') ++t;  // skip coding parameters
                s = t;
            }
        }
        if (total == 0) { _cb_error = Error::BAD_TE; return -1; }
        if (unsupported) { _cb_error = Error::TE_UNSUPPORTED; return -1; }
        _chunked = true;
    }
    if (cls > 1) { _cb_error = Error::DUPLICATE_CL; return -1; }
    if (cls == 1) {
        _has_cl = true;
        _content_length = _p.content_length;
        if (_content_length > _limits.max_body_bytes) { _cb_error = Error::BODY_TOO_LARGE; return -1; }
    }
    if (has_expect) {
        if (!iequals(b + expect.off, expect.len, "100-continue")) { _cb_error = Error::EXPECTATION_FAILED; return -1; }
        // Only meaningful for HTTP/1.1 with a body to wait for (RFC 9110 10.1.1).
        _expect_continue = _minor == 1 && (_chunked || _content_length > 0);
    }
    _keep_alive = http_should_keep_alive(&_p) != 0;
    _body_off = _headers_end;
    _body_in_out = _chunked && _body_out != nullptr;
    _chunk_line_start = _headers_end;
    return 0;
}

int RequestParser::cb_body(http_parser* p, const char* at, size_t n) {
    auto* self = static_cast<RequestParser*>(p->data);
    self->_expect_continue = false;
    if (!self->_chunked) {
        self->_body_len += n;
        return 0;
    }
    if (self->_body_in_out) {
        std::memcpy(self->_body_out + self->_body_len, at, n);
    } else {
        // In place: the write cursor never passes the read position, so memmove is safe and
        // bytes http-parser has yet to read are never touched.
        std::memmove(self->_buf + self->_headers_end + self->_body_len, at, n);
    }
    self->_body_len += n;
    return 0;
}

int RequestParser::cb_message_complete(http_parser* p) {
    auto* self = static_cast<RequestParser*>(p->data);
    self->_complete = true;
    self->_expect_continue = false;
    http_parser_pause(p, 1);  // stop at the end of this request; pipelined bytes stay unread
    return 0;
}

int RequestParser::cb_chunk_header(http_parser* p) {
    auto* self = static_cast<RequestParser*>(p->data);
    self->_paused_chunk = true;
    http_parser_pause(p, 1);
    return 0;
}

const http_parser_settings& RequestParser::settings() noexcept {
    static const http_parser_settings s = {
        nullptr, &cb_url, nullptr, &cb_header_field, &cb_header_value, &cb_headers_complete,
        &cb_body, &cb_message_complete, &cb_chunk_header, nullptr,
    };
    return s;
}

}  // namespace tlb::http
