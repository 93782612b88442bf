// libFuzzer target: HTTP/1.1 response framing (return path) with SSE event extraction.
// Checks that feeding the same bytes in one segment or in many (cut points from the input)
// gives the same outcome: completion, bytes used, status, body, events and [DONE].
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "http/response.hpp"

using namespace tlb::http;

namespace {

struct Rec : ResponseSink {
    std::string log;
    void on_head(uint16_t st, bool es) noexcept override { log += "H" + std::to_string(st) + (es ? "s" : "") + ";"; }
    void on_body(const uint8_t* p, size_t n) noexcept override { log.append(reinterpret_cast<const char*>(p), n); }
    // Event data may arrive in several calls; log it raw so the cut points do not show.
    void on_event_data(const uint8_t* p, size_t n) noexcept override { log.append(reinterpret_cast<const char*>(p), n); }
    void on_event_end(bool done) noexcept override { log += done ? "<E!>" : "<E>"; }
};

std::string run(const uint8_t* d, size_t n, size_t step, bool head, bool eof) {
    ResponseParser p;
    Rec rec;
    p.reset(head);
    p.set_sink(&rec);
    int64_t rc = 0;
    size_t used = 0;
    for (size_t off = 0; off < n; off += step) {
        size_t len = n - off < step ? n - off : step;
        rc = p.feed(d + off, len);
        if (rc != 0) {
            if (rc > 0) {
                if (static_cast<size_t>(rc) > len) abort();
                used = off + static_cast<size_t>(rc);
            }
            break;
        }
    }
    if (rc == 0 && eof) rc = p.finish();
    return std::to_string(rc > 0) + "/" + std::to_string(rc < 0 ? static_cast<int>(p.error()) : 0) + "/" +
           std::to_string(used) + "/" + std::to_string(p.status()) + "/" + std::to_string(p.events()) +
           std::to_string(p.done_seen()) + "/" + rec.log;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    const size_t step = 1 + data[0] % 97;
    const bool head = data[1] & 1;
    const bool eof = data[1] & 2;
    const uint8_t* d = data + 2;
    const size_t n = size - 2;
    std::string whole = run(d, n, n ? n : 1, head, eof);
    std::string pieces = run(d, n, step, head, eof);
    // A response completed in one segment reports the bytes used in that segment; in pieces the
    // same absolute offset is reported, so the strings must match exactly.
    if (whole != pieces) {
        fprintf(stderr, "whole:  %s\npieces: %s\n", whole.c_str(), pieces.c_str());
        abort();
    }
    return 0;
}
