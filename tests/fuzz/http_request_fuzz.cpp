// libFuzzer target: HTTP/1.1 request framing.
// Checks, beyond "no crash / no sanitizer report":
//  * resumability: the same bytes fed whole and fed in pieces (cut points taken from the input)
//    give the same result, error or request;
//  * in-place de-chunking and de-chunking into a separate buffer give the same body;
//  * every span a parsed request exposes lies inside the buffer;
//  * the fast path (no http-parser) and the http-parser path give the same result.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "http/request.hpp"

using namespace tlb::http;

namespace {

std::string summary(const RequestParser& p, const uint8_t* b, size_t len, int64_t rc) {
    std::string s = std::to_string(rc);
    if (rc <= 0) return s + (rc < 0 ? error_name(p.error()) : "");
    auto in = [&](Span x) {
        if (static_cast<size_t>(x.off) + x.len > len) abort();
        return std::string(reinterpret_cast<const char*>(b) + x.off, x.len);
    };
    s += in(p.method_span()) + " " + in(p.target()) + " " + in(p.path()) + " " + std::to_string(p.keep_alive());
    for (uint32_t i = 0; i < p.header_count(); ++i) s += "|" + in(p.headers()[i].name) + ":" + in(p.headers()[i].value);
    if (p.headers_end() > static_cast<uint64_t>(rc)) abort();
    s += "#" + std::string(reinterpret_cast<const char*>(p.body_data(b)), p.body_length());
    return s;
}

Limits small_limits() {
    Limits l;
    l.max_header_bytes = 2048;
    l.max_headers = 16;
    l.max_body_bytes = 4096;
    return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    // First two bytes choose the cut pattern; the rest is the request stream.
    const unsigned step = 1 + data[0] % 64;
    const bool into_buffer = data[1] & 1;
    const uint8_t* req = data + 2;
    const size_t n = size - 2;

    std::vector<uint8_t> whole(req, req + n);
    RequestParser a;
    a.set_limits(small_limits());
    int64_t ra = a.parse(whole.data(), whole.size());
    std::string sa = summary(a, whole.data(), whole.size(), ra);

    std::vector<uint8_t> pieces(req, req + n);
    std::vector<uint8_t> out(4096);
    RequestParser b;
    b.set_limits(small_limits());
    if (into_buffer) b.set_body_buffer(out.data(), out.size());
    int64_t rb = 0;
    for (size_t len = 0;; len = len + step < n ? len + step : n) {
        rb = b.parse(pieces.data(), len);
        if (rb != 0 || len == n) break;
    }
    std::string sb = summary(b, pieces.data(), pieces.size(), rb);
    if (sa != sb) {
        fprintf(stderr, "whole:  %s\npieces: %s\n", sa.c_str(), sb.c_str());
        abort();
    }
    // Library path only: must agree with the default (fast path where it applies).
    std::vector<uint8_t> lib(req, req + n);
    RequestParser c;
    c.set_limits(small_limits());
    c.set_fast_path(false);
    const int64_t rc = c.parse(lib.data(), lib.size());
    const std::string sc = summary(c, lib.data(), lib.size(), rc);
    if (sa != sc) {
        fprintf(stderr, "fast:   %s\nlibrary: %s\n", sa.c_str(), sc.c_str());
        abort();
    }
    if (ra > 0) {
        // Pipelined remainder: parse it as the next request; must not crash.
        a.reset();
        a.parse(whole.data() + ra, whole.size() - static_cast<size_t>(ra));
    }
    return 0;
}
