#include "http/request.hpp"

#include <cstring>

#include "http/scan.hpp"
#include "http/util.hpp"

namespace tlb::http {

namespace {

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

inline uint64_t load8(const void* p) noexcept { uint64_t v; std::memcpy(&v, p, 8); return v; }
inline uint32_t load4(const void* p) noexcept { uint32_t v; std::memcpy(&v, p, 4); return v; }

// Case-insensitive compare of a header name with a lowercase literal of the same length n >= 4,
// by words. OR-ing 0x20 folds exactly the letters here: the literals hold only letters and '-',
// and the only other byte that folds onto '-' is CR, which a (validated) name never holds.
inline bool name_is(const uint8_t* p, uint32_t n, const char* lit) noexcept {
    if (n < 8)
        return ((load4(p) | 0x20202020u) == load4(lit)) && ((load4(p + n - 4) | 0x20202020u) == load4(lit + n - 4));
    constexpr uint64_t FOLD = 0x2020202020202020ull;
    for (uint32_t i = 0; i + 8 < n; i += 8)
        if ((load8(p + i) | FOLD) != load8(lit + i)) return false;
    return (load8(p + n - 8) | FOLD) == load8(lit + n - 8);
}

// Request-target bytes: visible ASCII except the ones RFC 3986 never allows unescaped (http-parser
// lets some of them through); SP ends the target.
// ('?' and '#' are told apart so that the path's end is found on the way.)
constexpr uint8_t TARGET_BAD = 0, TARGET_OK = 1, TARGET_SP = 2, TARGET_QF = 3;
struct TargetTable {
    uint8_t t[256] = {};
    constexpr TargetTable() {
        for (int c = 0x21; c < 0x7f; ++c) t[c] = TARGET_OK;
        for (char c : std::string_view("\"<>\\^`{|}")) t[static_cast<uint8_t>(c)] = TARGET_BAD;
        t[uint8_t{' '}] = TARGET_SP;
        t[uint8_t{'?'}] = t[uint8_t{'#'}] = TARGET_QF;
    }
};
constexpr TargetTable TARGET{};

// The header names framing acts on, told apart by length first so that each header costs at
// most one compare.
enum class Kind : uint8_t {
    OTHER, HOST, CONTENT_LENGTH, TRANSFER_ENCODING, CONTENT_TYPE, AUTHORIZATION, EXPECT,
    CONNECTION, PROXY_CONNECTION, UPGRADE,
};

inline Kind header_kind(const uint8_t* n, uint32_t len) noexcept {
    switch (len) {
    case 4: return name_is(n, 4, "host") ? Kind::HOST : Kind::OTHER;
    case 6: return name_is(n, 6, "expect") ? Kind::EXPECT : Kind::OTHER;
    case 7: return name_is(n, 7, "upgrade") ? Kind::UPGRADE : Kind::OTHER;
    case 10: return name_is(n, 10, "connection") ? Kind::CONNECTION : Kind::OTHER;
    case 12: return name_is(n, 12, "content-type") ? Kind::CONTENT_TYPE : Kind::OTHER;
    case 13: return name_is(n, 13, "authorization") ? Kind::AUTHORIZATION : Kind::OTHER;
    case 14: return name_is(n, 14, "content-length") ? Kind::CONTENT_LENGTH : Kind::OTHER;
    case 16: return name_is(n, 16, "proxy-connection") ? Kind::PROXY_CONNECTION : Kind::OTHER;
    case 17: return name_is(n, 17, "transfer-encoding") ? Kind::TRANSFER_ENCODING : Kind::OTHER;
    default: return Kind::OTHER;
    }
}

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

// One header field (value trimmed) into the summary on_headers_complete checks.
template <class Summary>
static inline void summarize(Summary& s, Kind k, Span value) noexcept {
    switch (k) {
    case Kind::HOST: ++s.hosts; s.host = value; break;
    case Kind::CONTENT_LENGTH: ++s.cls; break;
    case Kind::TRANSFER_ENCODING:
        ++s.tes;
        if (s.nte < 8) s.te[s.nte++] = value;
        break;
    case Kind::CONTENT_TYPE: if (s.content_type.len == 0) s.content_type = value; break;
    case Kind::AUTHORIZATION: if (s.authorization.len == 0) s.authorization = value; break;
    case Kind::EXPECT: s.expect = value; s.has_expect = true; break;
    default: break;
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
    _fast = false;
    _vminor = 1;
    _target_q = 0;
    _scan_headers = 0;
    _fp_ok = true;
    _fp_conn_close = false;
    _fp_conn_keep_alive = false;
    _fp_cl = UINT64_MAX;
    _sum = {};
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
// query: where the path part of the target ends (its first '?' or '#', else its end).
static Error check_request_line(const uint8_t* b, uint32_t begin, uint32_t end, Span& method,
                                Span& target, uint32_t& query, uint8_t& minor) noexcept {
    uint32_t i = begin;
    while (i < end && is_tchar(b[i])) ++i;
    if (i < end && b[i] != ' ') return Error::BAD_METHOD;
    if (i == begin || i >= end) return i == begin ? Error::BAD_METHOD : Error::BAD_REQUEST_LINE;
    method = {begin, i - begin};
    uint32_t t = ++i;
    uint8_t k = TARGET_SP;
    uint32_t q = 0;
    for (;;) {
        while (i < end && (k = TARGET.t[b[i]]) == TARGET_OK) ++i;
        if (i >= end || k != TARGET_QF) break;
        if (q == 0) q = i;
        ++i;
    }
    if (i < end && k == TARGET_BAD) return Error::BAD_TARGET;
    if (i == t) return Error::BAD_REQUEST_LINE;
    target = {t, i - t};
    query = q != 0 ? q : i;
    if (i >= end) return Error::BAD_VERSION;  // HTTP/0.9 style "GET /"
    ++i;
    if (end - i != 8 || std::memcmp(b + i, "HTTP/", 5) != 0 || b[i + 6] != '.' ||
        b[i + 5] < '0' || b[i + 5] > '9' || b[i + 7] < '0' || b[i + 7] > '9')
        return Error::BAD_VERSION;
    if (b[i + 5] == '0') return Error::BAD_VERSION;
    if (b[i + 5] > '1') return Error::VERSION_NOT_SUPPORTED;
    minor = static_cast<uint8_t>(b[i + 7] - '0');
    return Error::NONE;
}

// A line of the header (or trailer) block ends at `cr` (the LF after it has been checked).
// Returns <0 error, 0 to go on, 1 when it was the block's final empty line.
int RequestParser::line_done_(const uint8_t* buf, uint32_t cr) noexcept {
    const uint32_t start = _line_start;
    if (cr == start) {
        if (_leading && !_in_trailers) {  // RFC 9112 2.2: ignore empty lines before the request line
            _line_start = cr + 2;
            return 0;
        }
        _block_end = cr + 2;
        _block_done = true;
        return 1;
    }
    uint32_t colon = 0;
    if (!_in_trailers && _lines == 0) {
        Error e = check_request_line(buf, start, cr, _method_span, _target, _target_q, _vminor);
        if (e != Error::NONE) return static_cast<int>(fail(e));
    } else {
        // field-name ":" with no whitespace before the colon (RFC 9112 5.1); the Debian
        // http-parser build is not strict here.
        uint32_t i = start;
        while (i + 4 <= cr && (unsigned{is_tchar(buf[i])} & unsigned{is_tchar(buf[i + 1])} & unsigned{is_tchar(buf[i + 2])} &
                                  unsigned{is_tchar(buf[i + 3])})) i += 4;
        while (i < cr && is_tchar(buf[i])) ++i;
        if (i == start || i >= cr || buf[i] != ':') return static_cast<int>(fail(Error::BAD_HEADER));
        colon = i;
    }
    _leading = false;
    ++_lines;
    uint32_t fields = _in_trailers ? _lines : _lines - 1;
    if (fields > _limits.max_headers) return static_cast<int>(fail(Error::TOO_MANY_HEADERS));
    if (colon != 0 && !_in_trailers) header_line_(buf, start, colon, cr);
    _line_start = cr + 2;
    return 0;
}

// A validated header field line of the header block: kept in the table as http-parser reports
// it after trimming (the fast path uses it as is; the library path rebuilds the table from its
// callbacks), summarised, and checked for anything that needs http-parser's judgement.
void RequestParser::header_line_(const uint8_t* buf, uint32_t start, uint32_t colon, uint32_t cr) noexcept {
    uint32_t v = colon + 1;
    while (v < cr && (buf[v] == ' ' || buf[v] == '\t')) ++v;
    uint32_t e = cr;
    while (e > v && (buf[e - 1] == ' ' || buf[e - 1] == '\t')) --e;
    Header& h = _headers[_scan_headers++];
    h.name = {start, colon - start};
    h.value = v < cr ? Span{v, e - v} : Span{cr + 2, 0};  // http-parser reports an empty value at the next line
    const Kind k = header_kind(buf + start, h.name.len);
    summarize(_sum, k, h.value);
    switch (k) {
    case Kind::CONTENT_LENGTH: {
        // 1*DIGIT then only SP up to CR (HTAB there is an error for http-parser); at most 18
        // digits, so the library's overflow check cannot trigger. Anything else, or a second
        // Content-Length, is left to http-parser (and its error mapping).
        if (_fp_cl != UINT64_MAX) { _fp_ok = false; break; }
        uint32_t p = v;
        uint64_t n = 0;
        while (p < cr && p - v < 19 && buf[p] >= '0' && buf[p] <= '9') n = n * 10 + (buf[p++] - '0');
        const uint32_t digits = p - v;
        while (p < cr && buf[p] == ' ') ++p;
        if (digits == 0 || digits > 18 || p != cr) { _fp_ok = false; break; }
        _fp_cl = n;
        break;
    }
    case Kind::CONNECTION: {
        // Exactly one token, as http-parser matches it: trailing SP only.
        uint32_t n = cr - v;
        while (n > 0 && buf[v + n - 1] == ' ') --n;
        if (n == 10 && iequals(buf + v, n, "keep-alive")) _fp_conn_keep_alive = true;
        else if (n == 5 && iequals(buf + v, n, "close")) _fp_conn_close = true;
        else _fp_ok = false;
        break;
    }
    case Kind::TRANSFER_ENCODING:
    case Kind::UPGRADE:
    case Kind::PROXY_CONNECTION:
        _fp_ok = false;
        break;
    default:
        // http-parser marks the message as using Transfer-Encoding as soon as a name starts
        // with "transfer-encoding", so "Transfer-Encoding-X: 1" is refused there (400).
        if (h.name.len > 17 && name_is(buf + start, 17, "transfer-encoding")) _fp_ok = false;
        break;
    }
}

// Walks new bytes of the header (or trailer) block. Returns <0 error, 0 need more, 1 when the
// block's final empty line has been seen (_block_end is then the offset after it).
int RequestParser::scan_block(const uint8_t* buf, size_t len) noexcept {
    if (_block_done) return 1;
    const uint32_t block_start = _in_trailers ? _trailer_start : 0;
    size_t limit_end = static_cast<size_t>(block_start) + _limits.max_header_bytes;
    size_t end = len < limit_end ? len : limit_end;
    size_t pos = _scan_pos;
    while (pos < end) {
        if (_prev_cr) {
            _prev_cr = false;
            if (buf[pos] != '\n') { _scan_pos = static_cast<uint32_t>(pos); return static_cast<int>(fail(Error::BARE_CR_LF)); }
            ++pos;
            int r = line_done_(buf, static_cast<uint32_t>(pos - 2));
            if (r != 0) { _scan_pos = static_cast<uint32_t>(pos); return r; }
            continue;
        }
        if (pos == _line_start && (buf[pos] == ' ' || buf[pos] == '\t')) {
            _scan_pos = static_cast<uint32_t>(pos);
            bool fold = _in_trailers || _lines > 0;
            return static_cast<int>(fail(fold ? Error::OBS_FOLD : Error::BAD_REQUEST_LINE));
        }
        // The rest of the line up to its CR, checking every byte on the way: the first control
        // character must be that CR (a bare LF or any other control character is an error).
        size_t i = scan::find_ctl(buf, pos, end);
        if (i == end) { pos = end; break; }
        if (buf[i] != '\r') {
            _scan_pos = static_cast<uint32_t>(i);
            return static_cast<int>(fail(buf[i] == '\n' ? Error::BARE_CR_LF : Error::CONTROL_CHAR));
        }
        _prev_cr = true;
        pos = i + 1;
    }
    _scan_pos = static_cast<uint32_t>(pos);
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
    if (_fast) return fast_body_(len);
    _buf = buf;
    for (;;) {
        size_t upto = len;
        if (!_headers_done || _in_trailers) {
            int r = scan_block(buf, len);
            if (r < 0) return -static_cast<int64_t>(_error);
            if (r == 0) return 0;
            upto = _block_end;
            if (!_headers_done && !_in_trailers && _fed == 0) {
                if (_fast_enabled && fast_headers_(buf)) {
                    if (_error != Error::NONE) return -static_cast<int64_t>(_error);
                    return fast_body_(len);
                }
            }
        }
        if (_fed >= upto) return 0;
        int64_t r = feed_parser(buf, upto);
        if (r != 0) return r;
        if (_fed >= len) return 0;
    }
}

// The fast path. A request whose header block (already validated line by line by scan_block)
// has nothing in it that needs http-parser's judgement is framed here, with the result
// http-parser would give: one of the seven common methods spelled exactly, an origin-form
// target, at most one Content-Length of plain digits, Connection absent or exactly
// keep-alive/close, and no Transfer-Encoding, Upgrade or Proxy-Connection. Anything else
// returns false before any state is changed that the library path depends on, and the request
// goes through http-parser as before. Returns true when the headers are done (or failed).
bool RequestParser::fast_headers_(const uint8_t* b) noexcept {
    // http-parser counts header bytes against HTTP_MAX_HEADER_SIZE (80 KiB); stay far below it.
    if (!_fp_ok || _block_end > 65536) return false;
    const uint8_t* m = b + _method_span.off;
    unsigned method;
    switch (_method_span.len) {
    case 3:
        if (std::memcmp(m, "GET", 3) == 0) method = HTTP_GET;
        else if (std::memcmp(m, "PUT", 3) == 0) method = HTTP_PUT;
        else return false;
        break;
    case 4:
        if (std::memcmp(m, "POST", 4) == 0) method = HTTP_POST;
        else if (std::memcmp(m, "HEAD", 4) == 0) method = HTTP_HEAD;
        else return false;
        break;
    case 5: if (std::memcmp(m, "PATCH", 5) != 0) return false; method = HTTP_PATCH; break;
    case 6: if (std::memcmp(m, "DELETE", 6) != 0) return false; method = HTTP_DELETE; break;
    case 7: if (std::memcmp(m, "OPTIONS", 7) != 0) return false; method = HTTP_OPTIONS; break;
    default: return false;
    }
    // check_request_line allowed only visible ASCII in the target; from '/' http-parser
    // accepts all of it (path, '?' query, '#' fragment).
    if (b[_target.off] != '/') return false;

    HeadFacts f;
    f.major = 1;
    f.minor = _vminor;
    f.method = method;
    f.content_length = _fp_cl;
    // http_should_keep_alive() for a request.
    f.keep_alive = f.minor > 0 ? !_fp_conn_close : _fp_conn_keep_alive;

    _fast = true;
    _fed = _block_end;
    _nheaders = _scan_headers;
    if (on_headers_complete_(f) != 0) fail(_cb_error);
    return true;
}

// Content-Length body on the fast path: nothing to scan, only to count.
int64_t RequestParser::fast_body_(size_t len) noexcept {
    const uint64_t want = _has_cl ? _content_length : 0;
    const uint64_t have = len > _headers_end ? len - _headers_end : 0;
    if (have > 0 && want > 0) _expect_continue = false;  // the body has started
    if (have >= want) {
        _body_len = want;
        _fed = _headers_end + want;
        _complete = true;
        _expect_continue = false;
        return static_cast<int64_t>(_fed);
    }
    _body_len = have;
    _fed = len;
    return 0;
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
    HeadFacts f;
    f.major = p->http_major;
    f.minor = p->http_minor;
    f.method = p->method;
    f.content_length = p->content_length;
    f.keep_alive = http_should_keep_alive(p) != 0;
    // The table came from http-parser's callbacks: trim the values and summarise it.
    const uint8_t* b = self->_buf;
    self->_sum = {};
    for (uint32_t i = 0; i < self->_nheaders; ++i) {
        Header& h = self->_headers[i];
        h.value = trim(b, h.value);
        summarize(self->_sum, header_kind(b + h.name.off, h.name.len), h.value);
    }
    return self->on_headers_complete_(f);
}

int RequestParser::on_headers_complete_(const HeadFacts& f) noexcept {
    _headers_done = true;
    _in_header_value = false;
    _headers_end = _block_end;
    const uint8_t* b = _buf;

    const HeaderSummary& sm = _sum;
    _host = sm.host;
    _content_type = sm.content_type;
    _authorization = sm.authorization;
    const uint32_t hosts = sm.hosts, cls = sm.cls, tes = sm.tes, nte = sm.nte;
    const Span* te_spans = sm.te;
    const Span expect = sm.expect;
    const bool has_expect = sm.has_expect;

    if (f.major != 1) { _cb_error = f.major == 0 ? Error::BAD_VERSION : Error::VERSION_NOT_SUPPORTED; return -1; }
    _minor = f.minor >= 1 ? 1 : 0;

    switch (static_cast<http_method>(f.method)) {
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
        if (s == _target.off) q = _target_q;  // found by the request-line check
        else while (q < e && b[q] != '?' && b[q] != '#') ++q;
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
        _content_length = f.content_length;
        if (_content_length > _limits.max_body_bytes) { _cb_error = Error::BODY_TOO_LARGE; return -1; }
    }
    if (has_expect) {
        if (!iequals(b + expect.off, expect.len, "100-continue")) { _cb_error = Error::EXPECTATION_FAILED; return -1; }
        // Only meaningful for HTTP/1.1 with a body to wait for (RFC 9110 10.1.1).
        _expect_continue = _minor == 1 && (_chunked || _content_length > 0);
    }
    _keep_alive = f.keep_alive;
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
