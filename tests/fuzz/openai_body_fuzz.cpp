// libFuzzer target: OpenAI request body extraction, model rewrite and usage extraction.
// Checks: the in-place (padded) and copy paths agree; every text span lies inside the text;
// a rewritten body parses again with the new model and the same prompt text; the streaming
// usage scanner and the whole-document usage parser never read out of bounds; the input taken as
// the raw text of a JSON string decodes (picked kernel and the scalar one) as simdjson decodes it.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <simdjson.h>

#include "openai/request.hpp"
#include "openai/text_copy.hpp"
#include "openai/usage.hpp"

using namespace tlb::openai;

namespace {
constexpr size_t MAX = 1 << 16;
struct State {
    Extractor ex;
    UsageParser up;
    std::vector<uint8_t> scratch = std::vector<uint8_t>(MAX);
    std::vector<uint8_t> scratch2 = std::vector<uint8_t>(MAX);
    std::vector<uint8_t> out = std::vector<uint8_t>(MAX + 256 + PADDING);
    Request r1, r2;
    State() {
        if (!ex.init(MAX + 256) || !up.init(MAX)) abort();
    }
};
State& state() {
    static State s;
    return s;
}
std::string text_of(const Request& r) { return std::string(reinterpret_cast<const char*>(r.text), r.text_len); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > MAX) return 0;
    State& s = state();
    const Endpoint ep = (size && (data[0] & 1)) ? Endpoint::COMPLETIONS : Endpoint::CHAT_COMPLETIONS;

    // Exact-size heap copy (ASan catches any read past len on the copy path) and a padded one.
    std::vector<uint8_t> exact(data, data + size);
    // Padding of '}' that the extractor must neither depend on nor leave modified.
    std::vector<uint8_t> padded(size + PADDING, '}');
    if (size) std::memcpy(padded.data(), data, size);

    Error e1 = s.ex.extract(ep, padded.data(), size, padded.size(), s.scratch.data(), s.scratch.size(), s.r1);
    std::string m1 = s.ex.message();
    Error e2 = s.ex.extract(ep, exact.data(), size, size, s.scratch2.data(), s.scratch2.size(), s.r2);
    if (e1 != e2 || m1 != s.ex.message()) abort();
    for (size_t i = size; i < padded.size(); ++i)
        if (padded[i] != '}') abort();
    if (e1 == Error::NONE) {
        if (text_of(s.r1) != text_of(s.r2) || s.r1.model != s.r2.model) abort();
        for (uint32_t i = 0; i < s.r1.span_count; ++i)
            if (static_cast<uint64_t>(s.r1.spans[i].off) + s.r1.spans[i].len > s.r1.text_len) abort();
        std::string before = text_of(s.r1);
        int64_t n = rewrite_model(padded.data(), size, s.r1, "rewritten-\"model\"", s.out.data(), s.out.size() - PADDING);
        if (n < 0) abort();
        Request r3;
        std::vector<uint8_t> scratch3(MAX + 256);
        if (s.ex.extract(ep, s.out.data(), static_cast<size_t>(n), s.out.size(), scratch3.data(), scratch3.size(), r3) != Error::NONE)
            abort();
        if (r3.model != "rewritten-\"model\"" || text_of(r3) != before) abort();
    } else if (s.ex.message()[0] == 0) {
        abort();  // every error has a message
    }

    {
        static const text::DecodeSimpleFn picked = text::pick_decode_simple();
        static simdjson::dom::parser dp;
        std::vector<char> src(data, data + size);
        src.resize(size + 64, '"');
        std::string quoted = "\"" + std::string(reinterpret_cast<const char*>(data), size) + "\"";
        std::string_view want;
        if (!dp.parse(quoted).get(want)) {
            for (text::DecodeSimpleFn fn : {picked, &text::decode_simple_scalar}) {
                std::vector<uint8_t> dst(size + 64, 0xee);
                size_t in = 0, out = 0;
                const bool done = fn(src.data(), size, dst.data(), in, out);
                if (in > size || out > in) abort();
                for (size_t i = size; i < dst.size(); ++i)
                    if (dst[i] != 0xee) abort();
                if (done && std::string_view(reinterpret_cast<const char*>(dst.data()), out) != want) abort();
            }
        }
    }

    Usage u;
    s.up.parse(exact.data(), size, size, u);
    UsageScanner sc;
    sc.reset();
    sc.feed(data, size / 2);
    sc.feed(data + size / 2, size - size / 2);
    if (sc.captured()) s.up.parse(sc.object(), sc.object_len(), sc.object_capacity(), u, true);
    return 0;
}
