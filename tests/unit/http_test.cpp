// lib/http: request framing (strictness, limits, resumability), response framing (CL, chunked,
// close-delimited, SSE, 1xx, no-body rules) and error responses.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "http/error_response.hpp"
#include "http/request.hpp"
#include "http/response.hpp"
#include "http/scan.hpp"

using namespace tlb::http;

namespace {

std::string span_str(const std::string& buf, Span s) { return buf.substr(s.off, s.len); }

// Everything observable about a parsed request, as one comparable string.
struct Parsed {
    int64_t rc = 0;
    std::string summary;
};

std::string summarize(const RequestParser& p, const uint8_t* b, int64_t rc) {
    std::string s = "rc=" + std::to_string(rc);
    if (rc < 0) return s + " err=" + error_name(p.error());
    auto str = [&](Span x) { return std::string(reinterpret_cast<const char*>(b) + x.off, x.len); };
    s += " m=" + str(p.method_span()) + " t=" + str(p.target()) + " path=" + str(p.path());
    s += " v=1." + std::to_string(p.version_minor()) + " ka=" + std::to_string(p.keep_alive());
    s += " chunked=" + std::to_string(p.chunked()) + " cl=" + std::to_string(p.content_length());
    for (uint32_t i = 0; i < p.header_count(); ++i)
        s += " [" + str(p.headers()[i].name) + ":" + str(p.headers()[i].value) + "]";
    s += " body=" + std::string(reinterpret_cast<const char*>(p.body_data(b)), p.body_length());
    return s;
}

// Parses `req` fed in pieces ending at the given cut points (the buffer grows like a TCP
// reassembly buffer). Uses a fresh copy because in-place de-chunking rewrites the buffer.
Parsed parse_cuts(const std::string& req, const std::vector<size_t>& cuts, const Limits& lim = {},
                  uint8_t* body_out = nullptr, size_t body_cap = 0) {
    std::vector<uint8_t> buf(req.begin(), req.end());
    RequestParser p;
    p.set_limits(lim);
    p.set_body_buffer(body_out, body_cap);
    int64_t rc = 0;
    for (size_t c : cuts) {
        rc = p.parse(buf.data(), c);
        if (rc != 0) break;
    }
    if (rc == 0) rc = p.parse(buf.data(), buf.size());
    return {rc, summarize(p, buf.data(), rc)};
}

Parsed parse_all(const std::string& req, const Limits& lim = {}) { return parse_cuts(req, {}, lim); }

int64_t status_of(const std::string& req, const Limits& lim = {}) {
    std::vector<uint8_t> buf(req.begin(), req.end());
    RequestParser p;
    p.set_limits(lim);
    int64_t rc = p.parse(buf.data(), buf.size());
    if (rc >= 0) return rc == 0 ? 0 : 200;
    EXPECT_EQ(-rc, static_cast<int64_t>(p.error()));
    return p.error_status_code();
}

const std::string CHAT_BODY = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";

std::string post_cl(const std::string& body) {
    return "POST /v1/chat/completions HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\n"
           "Authorization: Bearer sk-x\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
}

std::string post_chunked(const std::string& body, size_t chunk) {
    std::string r = "POST /v1/completions?x=1 HTTP/1.1\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n";
    char hex[32];
    for (size_t i = 0; i < body.size(); i += chunk) {
        size_t n = std::min(chunk, body.size() - i);
        snprintf(hex, sizeof hex, "%zx", n);
        r += std::string(hex) + (i == 0 ? ";ext=1" : "") + "\r\n" + body.substr(i, n) + "\r\n";
    }
    return r + "0\r\nX-Trailer: t\r\n\r\n";
}

}  // namespace

TEST(HttpRequest, SimpleGet) {
    std::string r = "GET /v1/models HTTP/1.1\r\nHost: example\r\nUser-Agent: t \r\n\r\n";
    std::vector<uint8_t> b(r.begin(), r.end());
    RequestParser p;
    int64_t rc = p.parse(b.data(), b.size());
    ASSERT_EQ(rc, static_cast<int64_t>(r.size()));
    EXPECT_EQ(p.method(), Method::GET);
    EXPECT_EQ(span_str(r, p.path()), "/v1/models");
    EXPECT_EQ(span_str(r, p.host()), "example");
    EXPECT_TRUE(p.keep_alive());
    EXPECT_EQ(p.header_count(), 2u);
    EXPECT_EQ(span_str(r, p.headers()[1].value), "t");  // trailing space trimmed
    EXPECT_EQ(p.body_length(), 0u);
    Span ua;
    EXPECT_TRUE(p.find_header(b.data(), "user-agent", ua));
    EXPECT_FALSE(p.find_header(b.data(), "x-none", ua));
}

TEST(HttpRequest, PostContentLengthBodyIsNotCopied) {
    std::string r = post_cl(CHAT_BODY);
    std::vector<uint8_t> b(r.begin(), r.end());
    RequestParser p;
    ASSERT_EQ(p.parse(b.data(), b.size()), static_cast<int64_t>(r.size()));
    EXPECT_EQ(p.method(), Method::POST);
    EXPECT_EQ(p.body_data(b.data()), b.data() + p.headers_end());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(p.body_data(b.data())), p.body_length()), CHAT_BODY);
    EXPECT_EQ(span_str(r, p.content_type()), "application/json");
    EXPECT_EQ(span_str(r, p.authorization()), "Bearer sk-x");
    EXPECT_TRUE(p.has_content_length());
    EXPECT_EQ(p.content_length(), CHAT_BODY.size());
}

TEST(HttpRequest, ChunkedInPlaceAndIntoBuffer) {
    std::string r = post_chunked(CHAT_BODY, 7);
    Parsed a = parse_all(r);
    ASSERT_GT(a.rc, 0);
    EXPECT_EQ(a.rc, static_cast<int64_t>(r.size()));
    EXPECT_NE(a.summary.find("body=" + CHAT_BODY), std::string::npos) << a.summary;
    EXPECT_NE(a.summary.find("path=/v1/completions "), std::string::npos) << a.summary;
    // Trailer fields are validated but not kept as headers.
    EXPECT_EQ(a.summary.find("X-Trailer"), std::string::npos);

    std::vector<uint8_t> out(4096);
    Parsed b = parse_cuts(r, {}, {}, out.data(), out.size());
    EXPECT_EQ(a.summary, b.summary);
    // Into a buffer too small for the decoded body: 413.
    Parsed c = parse_cuts(r, {}, {}, out.data(), 10);
    EXPECT_LT(c.rc, 0);
    EXPECT_NE(c.summary.find("body_too_large"), std::string::npos);
}

TEST(HttpRequest, SplitAtEveryByteBoundaryParsesIdentically) {
    std::string big(3000, 'x');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    const std::vector<std::string> reqs = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\nGET /v1/models?q=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        post_cl(CHAT_BODY),
        post_cl(big),
        post_chunked(CHAT_BODY, 5),
        post_chunked(CHAT_BODY, 1),
        post_chunked(big, 1000),
        "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd",
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\n",  // pipelined
        // Errors must be the same error wherever the bytes are cut.
        "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a\nb\r\nabc\r\n0\r\n\r\n",
    };
    for (const auto& r : reqs) {
        Parsed whole = parse_all(r);
        ASSERT_NE(whole.rc, 0) << r;
        for (size_t k = 1; k < r.size(); ++k) {
            Parsed two = parse_cuts(r, {k});
            ASSERT_EQ(whole.summary, two.summary) << "cut at " << k << " of:\n" << r;
        }
        std::vector<size_t> every;
        for (size_t k = 1; k < r.size(); ++k) every.push_back(k);
        Parsed bytewise = parse_cuts(r, every);
        EXPECT_EQ(whole.summary, bytewise.summary) << r;
    }
}

TEST(HttpRequest, PipelinedRequestsAndReset) {
    std::string r1 = post_cl("abc");
    std::string r = r1 + "GET /two HTTP/1.1\r\nHost: b\r\n\r\n";
    std::vector<uint8_t> b(r.begin(), r.end());
    RequestParser p;
    int64_t rc = p.parse(b.data(), b.size());
    ASSERT_EQ(rc, static_cast<int64_t>(r1.size()));
    EXPECT_EQ(p.parse(b.data(), b.size()), rc);  // idempotent once complete
    p.reset();
    uint8_t* next = b.data() + rc;
    ASSERT_EQ(p.parse(next, b.size() - rc), static_cast<int64_t>(b.size() - rc));
    EXPECT_EQ(std::string(reinterpret_cast<char*>(next) + p.path().off, p.path().len), "/two");
}

TEST(HttpRequest, KeepAliveSemantics) {
    auto ka = [](const std::string& r) {
        std::vector<uint8_t> b(r.begin(), r.end());
        RequestParser p;
        EXPECT_GT(p.parse(b.data(), b.size()), 0) << r;
        return p.keep_alive();
    };
    EXPECT_TRUE(ka("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    EXPECT_FALSE(ka("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
    EXPECT_FALSE(ka("GET / HTTP/1.0\r\n\r\n"));
    EXPECT_TRUE(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
}

TEST(HttpRequest, ExpectContinue) {
    std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                       "Content-Length: 5\r\n\r\n";
    std::string r = head + "hello";
    std::vector<uint8_t> b(r.begin(), r.end());
    RequestParser p;
    EXPECT_EQ(p.parse(b.data(), head.size()), 0);
    EXPECT_TRUE(p.headers_complete());
    EXPECT_TRUE(p.expect_continue());
    EXPECT_EQ(p.parse(b.data(), head.size() + 2), 0);
    EXPECT_FALSE(p.expect_continue());  // body started: no 100 needed any more
    EXPECT_EQ(p.parse(b.data(), b.size()), static_cast<int64_t>(r.size()));
    EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx"), 417);
}

struct Rejection {
    const char* name;
    std::string req;
    int status;
    Error err;
};

TEST(HttpRequest, EachRejectionHasItsStatus) {
    const std::string H = "Host: a\r\n";
    const std::vector<Rejection> cases = {
        {"cl+te", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, Error::CL_AND_TE},
        {"te+cl", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, Error::CL_AND_TE},
        {"dup cl conflicting", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, Error::DUPLICATE_CL},
        {"dup cl same", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400, Error::DUPLICATE_CL},
        {"cl list", "POST / HTTP/1.1\r\n" + H + "Content-Length: 5, 5\r\n\r\nhello", 400, Error::BAD_CL},
        {"cl negative", "POST / HTTP/1.1\r\n" + H + "Content-Length: -1\r\n\r\n", 400, Error::BAD_CL},
        {"cl overflow", "POST / HTTP/1.1\r\n" + H + "Content-Length: 99999999999999999999999\r\n\r\n", 400, Error::BAD_CL},
        {"chunk size not hex", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, Error::BAD_CHUNK},
        {"chunk size empty", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n", 400, Error::BAD_CHUNK},
        {"chunk size overflow", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 400, Error::BAD_CHUNK},
        {"chunk data too long", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", 400, Error::BAD_CHUNK},
        {"chunk data bad terminator", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", 400, Error::BAD_CHUNK},
        {"chunk ext bare lf", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n3;x\ny\r\nabc\r\n0\r\n\r\n", 400, Error::BAD_CHUNK},
        {"chunk size trailing junk", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n3 x\r\nabc\r\n0\r\n\r\n", 400, Error::BAD_CHUNK},
        {"obs-fold", "GET / HTTP/1.1\r\n" + H + "X-A: b\r\n\tc\r\n\r\n", 400, Error::OBS_FOLD},
        {"obs-fold space", "GET / HTTP/1.1\r\n" + H + "X-A: b\r\n c\r\n\r\n", 400, Error::OBS_FOLD},
        {"obs-fold in trailer", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", 400, Error::OBS_FOLD},
        {"ctl in value", "GET / HTTP/1.1\r\n" + H + "X-A: b\x01" "c\r\n\r\n", 400, Error::CONTROL_CHAR},
        {"nul in value", std::string("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 38), 400, Error::CONTROL_CHAR},
        {"del in target", "GET /a\x7f HTTP/1.1\r\n" + H + "\r\n", 400, Error::CONTROL_CHAR},
        {"bare lf", "GET / HTTP/1.1\n" + H + "\r\n", 400, Error::BARE_CR_LF},
        {"bare cr", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400, Error::BARE_CR_LF},
        {"bad method", "G@T / HTTP/1.1\r\n" + H + "\r\n", 400, Error::BAD_METHOD},
        {"unknown method", "FOO / HTTP/1.1\r\n" + H + "\r\n", 400, Error::BAD_METHOD},
        {"lower method", "get / HTTP/1.1\r\n" + H + "\r\n", 400, Error::BAD_METHOD},
        {"double space", "GET  / HTTP/1.1\r\n" + H + "\r\n", 400, Error::BAD_REQUEST_LINE},
        {"no target", "GET HTTP/1.1\r\n" + H + "\r\n", 400, Error::BAD_VERSION},
        {"bad target", "GET /a\"b HTTP/1.1\r\n" + H + "\r\n", 400, Error::BAD_TARGET},
        {"bad version", "GET / HTTP/1.x\r\n" + H + "\r\n", 400, Error::BAD_VERSION},
        {"version 1.10", "GET / HTTP/1.10\r\n" + H + "\r\n", 400, Error::BAD_VERSION},
        {"http/0.9", "GET /\r\n\r\n", 400, Error::BAD_VERSION},
        {"lowercase http", "GET / http/1.1\r\n" + H + "\r\n", 400, Error::BAD_VERSION},
        {"http/2.0", "GET / HTTP/2.0\r\n" + H + "\r\n", 505, Error::VERSION_NOT_SUPPORTED},
        {"leading space", " GET / HTTP/1.1\r\n" + H + "\r\n", 400, Error::BAD_REQUEST_LINE},
        {"space before colon", "GET / HTTP/1.1\r\n" + H + "X-A : b\r\n\r\n", 400, Error::BAD_HEADER},
        {"tab before colon", "GET / HTTP/1.1\r\n" + H + "X-A\t: b\r\n\r\n", 400, Error::BAD_HEADER},
        {"empty name", "GET / HTTP/1.1\r\n" + H + ": b\r\n\r\n", 400, Error::BAD_HEADER},
        {"no colon", "GET / HTTP/1.1\r\n" + H + "X-A b\r\n\r\n", 400, Error::BAD_HEADER},
        {"missing host", "GET / HTTP/1.1\r\n\r\n", 400, Error::MISSING_HOST},
        {"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, Error::DUPLICATE_HOST},
        {"te gzip", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, Error::TE_UNSUPPORTED},
        {"te gzip only", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip\r\n\r\n", 501, Error::TE_UNSUPPORTED},
        {"te chunked twice", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400, Error::BAD_TE},
        {"te empty", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: \r\n\r\n", 400, Error::BAD_TE},
        {"te on 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, Error::BAD_TE},
        {"connect", "CONNECT a:443 HTTP/1.1\r\n" + H + "\r\n", 400, Error::UPGRADE_UNSUPPORTED},
    };
    for (const auto& c : cases) {
        std::vector<uint8_t> b(c.req.begin(), c.req.end());
        RequestParser p;
        int64_t rc = p.parse(b.data(), b.size());
        EXPECT_LT(rc, 0) << c.name;
        EXPECT_EQ(p.error(), c.err) << c.name << ": got " << error_name(p.error());
        EXPECT_EQ(p.error_status_code(), c.status) << c.name;
        // Errors are sticky.
        EXPECT_EQ(p.parse(b.data(), b.size()), rc) << c.name;
    }
}

TEST(HttpRequest, Limits) {
    Limits lim;
    lim.max_header_bytes = 100;
    lim.max_headers = 3;
    lim.max_body_bytes = 10;
    std::string ok = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789";
    EXPECT_EQ(status_of(ok, lim), 200);
    // Header bytes: 431 as soon as the limit is passed, even before the block ends.
    std::string longhdr = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(120, 'v');
    EXPECT_EQ(status_of(longhdr, lim), 431);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", lim), 431);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", lim), 200);
    // An endless stream of empty lines is still bounded.
    EXPECT_EQ(status_of(std::string(200, '\r') + "\n", lim), 400);
    std::string crlfs;
    for (int i = 0; i < 60; ++i) crlfs += "\r\n";
    EXPECT_EQ(status_of(crlfs, lim), 431);
    // Body: Content-Length over the limit is refused at the headers, before the body arrives.
    EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", lim), 413);
    // Chunked: refused at the chunk header that would pass the limit.
    EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5\r\n01234\r\n6\r\n", lim), 413);
    EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5\r\n01234\r\n5\r\n01234\r\n0\r\n\r\n", lim), 200);
    // Trailers count against the header limits too.
    EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", lim), 431);
}

TEST(HttpRequest, NeedMoreThenComplete) {
    std::string r = post_cl("0123456789");
    std::vector<uint8_t> b(r.begin(), r.end());
    RequestParser p;
    EXPECT_EQ(p.parse(b.data(), 0), 0);
    EXPECT_EQ(p.parse(b.data(), r.size() - 1), 0);
    EXPECT_TRUE(p.headers_complete());
    EXPECT_FALSE(p.complete());
    EXPECT_EQ(p.parse(b.data(), r.size()), static_cast<int64_t>(r.size()));
    EXPECT_TRUE(p.complete());
}

TEST(HttpRequest, AbsoluteFormTarget) {
    std::string r = "GET http://lb.example:8080/v1/models?x HTTP/1.1\r\nHost: lb.example\r\n\r\n";
    std::vector<uint8_t> b(r.begin(), r.end());
    RequestParser p;
    ASSERT_GT(p.parse(b.data(), b.size()), 0);
    EXPECT_EQ(span_str(r, p.path()), "/v1/models");
}

// ---------------------------------------------------------------------------------------------
// The fast path (requests framed without http-parser) against the library path.

namespace {

// Everything a caller can observe, at every point of the feed (not only at the end).
std::string observe(const RequestParser& p, const uint8_t* b, size_t len, int64_t rc) {
    auto str = [&](Span x) {
        if (static_cast<size_t>(x.off) + x.len > len) return std::string("<out of buffer>");
        return std::to_string(x.off) + ":" + std::string(reinterpret_cast<const char*>(b) + x.off, x.len);
    };
    std::string s = "rc=" + std::to_string(rc) + " err=" + error_name(p.error()) + " hc=" +
                    std::to_string(p.headers_complete()) + " c=" + std::to_string(p.complete()) +
                    " ec=" + std::to_string(p.expect_continue()) + " nh=" + std::to_string(p.header_count());
    s += " m=" + std::to_string(static_cast<int>(p.method())) + str(p.method_span()) + " t=" + str(p.target()) +
         " path=" + str(p.path()) + " v=" + std::to_string(p.version_minor()) + " ka=" + std::to_string(p.keep_alive()) +
         " ch=" + std::to_string(p.chunked()) + " hcl=" + std::to_string(p.has_content_length()) +
         " cl=" + std::to_string(p.content_length()) + " he=" + std::to_string(p.headers_end()) +
         " host=" + str(p.host()) + " ct=" + str(p.content_type()) + " auth=" + str(p.authorization());
    for (uint32_t i = 0; i < p.header_count(); ++i)
        s += " [" + str(p.headers()[i].name) + "=" + str(p.headers()[i].value) + "]";
    s += " bl=" + std::to_string(p.body_length());
    if (p.complete()) s += " body=" + std::string(reinterpret_cast<const char*>(p.body_data(b)), p.body_length());
    return s;
}

// Feeds req in steps of `step` bytes (0: whole) with the fast path on or off and records what is
// observable after every call, then parses any pipelined remainder as the next request.
std::string trace(const std::string& req, bool fast, size_t step, const Limits& lim) {
    std::vector<uint8_t> buf(req.begin(), req.end());
    RequestParser p;
    p.set_limits(lim);
    p.set_fast_path(fast);
    std::string t;
    int64_t rc = 0;
    for (size_t len = step ? 0 : buf.size();; len = std::min(buf.size(), len + step)) {
        rc = p.parse(buf.data(), len);
        t += observe(p, buf.data(), len, rc) + "\n";
        if (rc != 0 || len == buf.size()) break;
    }
    if (rc > 0) {
        p.reset();
        const size_t r = static_cast<size_t>(rc);
        t += "next: " + observe(p, buf.data() + r, buf.size() - r, p.parse(buf.data() + r, buf.size() - r));
    }
    return t;
}

void expect_same_on_both_paths(const std::string& req, const Limits& lim = {}) {
    for (size_t step : {size_t{0}, size_t{1}, size_t{2}, size_t{7}, size_t{61}}) {
        ASSERT_EQ(trace(req, true, step, lim), trace(req, false, step, lim)) << "step " << step << " of:\n" << req;
    }
}

const std::vector<std::string>& path_cases() {
    static const std::vector<std::string> cases = {
        // Taken by the fast path.
        post_cl(CHAT_BODY),
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\n\r\nGET /v1/models?x=1&y=?#frag HTTP/1.1\r\nhost: a\r\nX-Empty:\r\nX-Blank: \t \r\nX-Obs: caf\xc3\xa9\r\n\r\n",
        "HEAD /a#b?c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "PUT /a HTTP/1.0\r\nConnection: KEEP-ALIVE  \r\nContent-Length: 3\r\n\r\nabc",
        "DELETE /a HTTP/1.0\r\nContent-Length:\t 0007 \r\n\r\n1234567GET / HTTP/1.1\r\n\r\n",
        "PATCH /a HTTP/1.9\r\nHost: a\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n",
        "OPTIONS /a HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\nContent-Type: \r\nContent-Type: b\r\n\r\nhello",
        "POST /x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer k\r\nAuthorization: other\r\nContent-Length: 999999999999999999\r\n\r\n",
        "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection-X: close\r\nContent-Lengthy: 1\r\nUpgrades: x\r\n\r\nabc",
        // Errors found after the header block by on_headers_complete, on both paths.
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nExpect: later\r\nContent-Length: 1\r\n\r\nx",
        // Left to http-parser (each must still agree).
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a.example/b?c HTTP/1.1\r\nHost: a\r\n\r\n",
        "PROPFIND /a HTTP/1.1\r\nHost: a\r\n\r\n",
        "POSTX /a HTTP/1.1\r\nHost: a\r\n\r\n",
        "get /a HTTP/1.1\r\nHost: a\r\n\r\n",
        "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding-X: 1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODINGS: chunked\r\nContent-Length: 1\r\n\r\nx",
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n",
        "GET / HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive, upgrade\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\t\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection:\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\t\r\n\r\nx",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\nx",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0000000000000000000001\r\n\r\nx",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\nx",
        // Errors of the block scanner (neither path gets to frame these).
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\r b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n",
        "GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n x\r\n\r\n",
    };
    return cases;
}

}  // namespace

TEST(HttpRequest, FastPathTakesTheCommonRequests) {
    auto fast = [](const std::string& r) {
        std::vector<uint8_t> b(r.begin(), r.end());
        RequestParser p;
        EXPECT_NE(p.parse(b.data(), b.size()), 0) << r;
        return p.fast_framed();
    };
    EXPECT_TRUE(fast(post_cl(CHAT_BODY)));
    EXPECT_TRUE(fast("GET /v1/models HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"));
    EXPECT_TRUE(fast("GET /v1/models HTTP/1.1\r\nHost: a\r\n\r\n"));
    EXPECT_TRUE(fast("GET /v1/models HTTP/1.1\r\n\r\n"));  // its 400 (no Host) is found there too
    EXPECT_FALSE(fast(post_chunked(CHAT_BODY, 8)));
    EXPECT_FALSE(fast("GET http://a/v1/models HTTP/1.1\r\nHost: a\r\n\r\n"));
    EXPECT_FALSE(fast("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n\r\n"));
    std::vector<uint8_t> b(CHAT_BODY.size() + 512);
    RequestParser off;
    off.set_fast_path(false);
    const std::string r = post_cl(CHAT_BODY);
    std::copy(r.begin(), r.end(), b.begin());
    EXPECT_GT(off.parse(b.data(), r.size()), 0);
    EXPECT_FALSE(off.fast_framed());
    off.reset();  // the switch is kept across reset()
    EXPECT_GT(off.parse(b.data(), r.size()), 0);
    EXPECT_FALSE(off.fast_framed());
}

TEST(HttpRequest, FastPathMatchesHttpParser) {
    for (const auto& r : path_cases()) expect_same_on_both_paths(r);
    // Small limits: the limits are enforced before either path frames the request.
    Limits small;
    small.max_header_bytes = 64;
    small.max_headers = 2;
    small.max_body_bytes = 4;
    for (const auto& r : path_cases()) expect_same_on_both_paths(r, small);
}

TEST(HttpRequest, FastPathMatchesHttpParserOnMutations) {
    // Deterministic mutations of requests the fast path takes: byte flips towards the characters
    // that matter to framing, insertions and deletions.
    const std::vector<std::string> seeds = {
        post_cl(CHAT_BODY),
        "GET /v1/models?q HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nab",
        "POST /v1/completions HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcdGET / HTTP/1.1\r\n",
    };
    const char alphabet[] = {'\r', '\n', ' ', '\t', ':', '0', '9', 'a', 'K', '-', ',', '/', '?', '#', '*', '\x01', '\x7f', '\xe9', 'T', 'c'};
    uint32_t x = 2463534242u;
    auto rnd = [&x] { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x; };
    Limits lim;
    lim.max_header_bytes = 512;
    lim.max_headers = 8;
    lim.max_body_bytes = 512;
    for (int iter = 0; iter < 3000; ++iter) {
        std::string r = seeds[rnd() % seeds.size()];
        const int edits = 1 + static_cast<int>(rnd() % 3);
        for (int e = 0; e < edits && !r.empty(); ++e) {
            const size_t at = rnd() % r.size();
            const char c = alphabet[rnd() % sizeof alphabet];
            switch (rnd() % 3) {
            case 0: r[at] = c; break;
            case 1: r.insert(r.begin() + static_cast<std::ptrdiff_t>(at), c); break;
            default: r.erase(at, 1); break;
            }
        }
        for (size_t step : {size_t{0}, size_t{1 + rnd() % 40}})
            ASSERT_EQ(trace(r, true, step, lim), trace(r, false, step, lim)) << "step " << step << " of:\n" << r;
    }
}

TEST(HttpRequest, NameStartingWithTransferEncodingIsRefused) {
    // http-parser treats any header name that starts with "transfer-encoding" as announcing a
    // transfer coding; the fast path leaves such requests to it, so the verdict stays 400.
    EXPECT_EQ(status_of("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding-X: 1\r\nContent-Length: 1\r\n\r\nx"), 400);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encodings: x\r\n\r\n"), 400);
    EXPECT_EQ(status_of("GET / HTTP/1.1\r\nHost: a\r\nX-Transfer-Encoding: x\r\n\r\n"), 200);
}

TEST(HttpScan, FindCtlMatchesScalarReference) {
    uint32_t x = 12345;
    auto rnd = [&x] { x = x * 1103515245u + 12345u; return x >> 8; };
    std::vector<uint8_t> b(200);
    for (int iter = 0; iter < 4000; ++iter) {
        for (auto& c : b) {
            const uint32_t k = rnd() % 100;
            c = k < 90 ? static_cast<uint8_t>(0x20 + rnd() % 0x5f)
                : k < 93 ? static_cast<uint8_t>('\t')
                : k < 96 ? static_cast<uint8_t>(0x80 + rnd() % 0x80)
                         : static_cast<uint8_t>(rnd() % 0x20 == 0x1f ? 0x7f : rnd() % 0x20);
        }
        const size_t from = rnd() % 80, end = from + rnd() % 120;
        const size_t want = tlb::http::scan::find_ctl_scalar(b.data(), from, end);
        ASSERT_EQ(tlb::http::scan::find_ctl(b.data(), from, end), want) << from << " " << end;
#if defined(__SSE2__)
        ASSERT_EQ(tlb::http::scan::find_ctl_sse2(b.data(), from, end), want) << from << " " << end;
#endif
    }
    // Every byte value, alone, at every position of short and long ranges.
    for (int c = 0; c < 256; ++c) {
        for (size_t len : {size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{40}}) {
            for (size_t at = 0; at < len; ++at) {
                std::vector<uint8_t> v(len + 16, 'a');
                v[8 + at] = static_cast<uint8_t>(c);
                const size_t want = tlb::http::scan::is_ctl(static_cast<uint8_t>(c)) ? 8 + at : 8 + len;
                ASSERT_EQ(tlb::http::scan::find_ctl(v.data(), 8, 8 + len), want) << c << " " << len << " " << at;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses

namespace {

struct Recorder : ResponseSink {
    std::string log;
    std::string body;
    std::string event;
    std::vector<std::string> events;
    void on_head(uint16_t status, bool es) noexcept override {
        log += "head " + std::to_string(status) + (es ? " sse;" : ";");
    }
    void on_body(const uint8_t* p, size_t n) noexcept override { body.append(reinterpret_cast<const char*>(p), n); }
    void on_event_data(const uint8_t* p, size_t n) noexcept override { event.append(reinterpret_cast<const char*>(p), n); }
    void on_event_end(bool done) noexcept override {
        events.push_back(event + (done ? " <done>" : ""));
        event.clear();
    }
};

struct RespResult {
    int64_t rc;  // bytes of the last segment used, or error
    size_t total_used;
    std::string summary;
};

// Feeds resp as segments cut at the given points; eof: call finish() after the last segment.
RespResult feed_response(const std::string& resp, const std::vector<size_t>& cuts, bool eof,
                         bool head = false) {
    ResponseParser p;
    Recorder rec;
    p.reset(head);
    p.set_sink(&rec);
    size_t prev = 0, used = 0;
    int64_t rc = 0;
    std::vector<size_t> all = cuts;
    all.push_back(resp.size());
    for (size_t c : all) {
        rc = p.feed(reinterpret_cast<const uint8_t*>(resp.data()) + prev, c - prev);
        if (rc < 0) break;
        if (rc > 0) { used = prev + static_cast<size_t>(rc); break; }
        prev = c;
    }
    if (rc == 0 && eof) {
        rc = p.finish();
        if (rc > 0) used = resp.size();
    }
    std::string s = rec.log + " rc>0=" + std::to_string(rc > 0) + " err=" + error_name(p.error()) +
                    " status=" + std::to_string(p.status()) + " interim=" + std::to_string(p.interim_count()) +
                    " chunked=" + std::to_string(p.chunked()) + " close=" + std::to_string(p.close_delimited()) +
                    " ka=" + std::to_string(p.keep_alive()) + " body=[" + rec.body + "] events=" +
                    std::to_string(p.events()) + " done=" + std::to_string(p.done_seen());
    for (auto& e : rec.events) s += " {" + e + "}";
    return {rc, used, s};
}

void expect_split_invariant(const std::string& resp, bool eof, const RespResult& whole) {
    for (size_t k = 1; k < resp.size(); ++k) {
        RespResult two = feed_response(resp, {k}, eof);
        ASSERT_EQ(whole.summary, two.summary) << "cut at " << k;
        ASSERT_EQ(whole.total_used, two.total_used) << "cut at " << k;
    }
    std::vector<size_t> every;
    for (size_t k = 1; k < resp.size(); ++k) every.push_back(k);
    RespResult bytewise = feed_response(resp, every, eof);
    EXPECT_EQ(whole.summary, bytewise.summary);
}

const std::string USAGE_JSON =
    R"({"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})";

}  // namespace

TEST(HttpResponse, ContentLength) {
    std::string r = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(USAGE_JSON.size()) + "\r\n\r\n" + USAGE_JSON;
    RespResult w = feed_response(r + "garbage", {}, false);
    ASSERT_GT(w.rc, 0) << w.summary;
    EXPECT_EQ(w.total_used, r.size());
    EXPECT_NE(w.summary.find("body=[" + USAGE_JSON + "]"), std::string::npos) << w.summary;
    EXPECT_NE(w.summary.find("ka=1"), std::string::npos);
    expect_split_invariant(r, false, feed_response(r, {}, false));
}

TEST(HttpResponse, ChunkedWithInterim) {
    std::string r = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    RespResult w = feed_response(r, {}, false);
    ASSERT_GT(w.rc, 0) << w.summary;
    EXPECT_EQ(w.total_used, r.size());
    EXPECT_NE(w.summary.find("body=[hello, world]"), std::string::npos) << w.summary;
    EXPECT_NE(w.summary.find("interim=1"), std::string::npos) << w.summary;
    EXPECT_NE(w.summary.find("chunked=1"), std::string::npos);
    expect_split_invariant(r, false, w);
}

TEST(HttpResponse, CloseDelimited) {
    std::string r = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end";
    RespResult w = feed_response(r, {}, true);
    ASSERT_GT(w.rc, 0) << w.summary;
    EXPECT_NE(w.summary.find("close=1"), std::string::npos);
    EXPECT_NE(w.summary.find("body=[until the end]"), std::string::npos);
    EXPECT_NE(w.summary.find("ka=0"), std::string::npos);
    expect_split_invariant(r, true, w);
    // Without EOF it never completes; a connection closed in the middle of a CL body is truncated.
    EXPECT_EQ(feed_response(r, {}, false).rc, 0);
    RespResult t = feed_response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", {}, true);
    EXPECT_LT(t.rc, 0);
    EXPECT_NE(t.summary.find("err=truncated"), std::string::npos);
}

TEST(HttpResponse, ServerSentEvents) {
    std::string ev1 = R"({"choices":[{"delta":{"content":"Hel"}}]})";
    std::string ev2 = R"({"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}})";
    std::string body = ": keep-alive comment\n\ndata: " + ev1 + "\r\n\r\n" + "event: x\ndata:" + ev2 +
                       "\n\n" + "data: line1\ndata: line2\nid: 4\n\n" + "data: [DONE]\n\n";
    std::string r = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n";
    // Put the SSE body in chunks that do not line up with events.
    for (size_t i = 0; i < body.size(); i += 23) {
        size_t n = std::min<size_t>(23, body.size() - i);
        char hex[16];
        snprintf(hex, sizeof hex, "%zx", n);
        r += std::string(hex) + "\r\n" + body.substr(i, n) + "\r\n";
    }
    r += "0\r\n\r\n";
    RespResult w = feed_response(r, {}, false);
    ASSERT_GT(w.rc, 0) << w.summary;
    EXPECT_NE(w.summary.find("head 200 sse;"), std::string::npos) << w.summary;
    EXPECT_NE(w.summary.find("events=4 done=1"), std::string::npos) << w.summary;
    EXPECT_NE(w.summary.find("{" + ev1 + "}"), std::string::npos) << w.summary;
    EXPECT_NE(w.summary.find("{" + ev2 + "}"), std::string::npos) << w.summary;
    EXPECT_NE(w.summary.find("{line1\nline2}"), std::string::npos) << w.summary;
    EXPECT_NE(w.summary.find("{[DONE] <done>}"), std::string::npos) << w.summary;
    EXPECT_NE(w.summary.find("body=[]"), std::string::npos);  // SSE goes to events, not on_body
    expect_split_invariant(r, false, w);

    // Close-delimited SSE (no chunking) with bare CR line ends.
    std::string r2 = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: a\r\rdata: [DONE]\r\r";
    RespResult w2 = feed_response(r2, {}, true);
    ASSERT_GT(w2.rc, 0);
    EXPECT_NE(w2.summary.find("events=2 done=1 {a} {[DONE] <done>}"), std::string::npos) << w2.summary;
    expect_split_invariant(r2, true, w2);
    // "[DONE]" with trailing text is not the end marker.
    RespResult w3 = feed_response("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: [DONE]x\n\n", {}, true);
    EXPECT_NE(w3.summary.find("done=0"), std::string::npos) << w3.summary;
}

TEST(HttpResponse, NoBodyRules) {
    // HEAD: Content-Length describes the GET body, but no body follows.
    std::string h = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    RespResult w = feed_response(h, {}, false, true);
    ASSERT_GT(w.rc, 0) << w.summary;
    EXPECT_EQ(w.total_used, h.size());
    for (const char* st : {"204 No Content", "304 Not Modified"}) {
        std::string r = std::string("HTTP/1.1 ") + st + "\r\nContent-Length: 0\r\n\r\n";
        RespResult x = feed_response(r + "HTTP/1.1", {}, false);
        ASSERT_GT(x.rc, 0) << st;
        EXPECT_EQ(x.total_used, r.size());
    }
    RespResult x = feed_response("HTTP/1.1 204 No Content\r\n\r\n", {}, false);
    EXPECT_GT(x.rc, 0);
}

TEST(HttpResponse, Errors) {
    EXPECT_LT(feed_response("HTTP/1.1 2000 OK\r\n\r\n", {}, false).rc, 0);
    EXPECT_LT(feed_response("HTTX/1.1 200 OK\r\n\r\n", {}, false).rc, 0);
    EXPECT_LT(feed_response("HTTP/1.1 100 Continue\r\n\r\nHTTX/1.1 200 OK\r\n\r\n", {}, false).rc, 0);
    EXPECT_LT(feed_response("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", {}, false).rc, 0);
    EXPECT_LT(feed_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", {}, false).rc, 0);
    EXPECT_LT(feed_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", {}, false).rc, 0);
    EXPECT_LT(feed_response("", {}, true).rc, 0);  // closed before any byte
}

TEST(HttpError, BuildsOpenAiStyleResponse) {
    uint8_t buf[1024];
    int64_t n = build_error_response(buf, sizeof buf, 400,
                                     {"messages[2].content must be a \"string\"", {}, "invalid_body", {}}, true);
    ASSERT_GT(n, 0);
    std::string s(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
    std::string body = R"({"error":{"message":"messages[2].content must be a \"string\"","type":"invalid_request_error","param":null,"code":"invalid_body"}})" "\n";
    EXPECT_EQ(s, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\nConnection: keep-alive\r\n\r\n" + body);
    // Our own response parser agrees on the framing.
    RespResult r = feed_response(s, {}, false);
    ASSERT_GT(r.rc, 0);
    EXPECT_EQ(r.total_used, s.size());

    n = build_error_response(buf, sizeof buf, Error::HEADERS_TOO_LARGE);
    s.assign(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
    EXPECT_EQ(s.rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0), 0u) << s;
    EXPECT_NE(s.find("Connection: close"), std::string::npos);
    EXPECT_NE(s.find(R"("code":"headers_too_large")"), std::string::npos);
    n = build_error_response(buf, sizeof buf, 503, {"no backend", "", "", ""}, false);
    s.assign(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
    EXPECT_NE(s.find(R"("type":"server_error","param":null,"code":null)"), std::string::npos) << s;
    // Too small a buffer is an error, not an overflow.
    EXPECT_EQ(build_error_response(buf, 40, Error::BAD_CHUNK), -1);
}

TEST(HttpError, EveryErrorHasNameStatusAndMessage) {
    for (int i = 1; i < static_cast<int>(Error::COUNT_); ++i) {
        auto e = static_cast<Error>(i);
        EXPECT_STRNE(error_name(e), "unknown");
        EXPECT_GE(error_status(e), 400);
        EXPECT_GT(std::strlen(error_message(e)), 5u);
    }
}
