// lib/scoreboard: layout and versioning, worker hooks, control-plane updates, snapshot, and a
// cross-process reader (fork + attach + read while the parent writes).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "scoreboard/scoreboard.hpp"

using namespace tlb::scoreboard;

namespace {

std::string shm_name(const char* tag) {
    char buf[96];
    snprintf(buf, sizeof buf, "/tlb-test-sb-%s-%d", tag, static_cast<int>(getpid()));
    return buf;
}

// (operator+ on a literal and a temporary string trips a GCC 12 -Wrestrict false positive)
std::string numbered(const char* prefix, uint32_t i) {
    std::string s = prefix;
    s += std::to_string(i);
    return s;
}

BackendSpec spec(const std::string& name, float prefill = 10000, float decode = 50) {
    BackendSpec s;
    s.name = name;
    s.ipv4 = 0x0a14000b;
    s.port = 8000;
    s.models = {"llama-3.1-8b"};
    s.tags = {"code"};
    s.profile.prefill_tps = prefill;
    s.profile.decode_tps = decode;
    return s;
}

}  // namespace

TEST(ScoreboardLayout, HeaderDescribesLayout) {
    auto sb = Scoreboard::create_private(4);
    ASSERT_TRUE(sb);
    const SegmentHeader& h = sb->segment()->header;
    EXPECT_EQ(h.magic, MAGIC);
    EXPECT_EQ(h.version, LAYOUT_VERSION);
    EXPECT_EQ(h.total_size, sizeof(Segment));
    EXPECT_EQ(h.max_backends, MAX_BACKENDS);
    EXPECT_EQ(h.max_workers, MAX_WORKERS);
    EXPECT_EQ(h.worker_load_size, 64u);
    EXPECT_EQ(h.n_workers, 4u);
    EXPECT_EQ(h.n_backends, 0u);
    // Worker lines of one backend are adjacent and each on its own cache line.
    auto a = reinterpret_cast<uintptr_t>(&sb->segment()->load[3][0]);
    auto b = reinterpret_cast<uintptr_t>(&sb->segment()->load[3][1]);
    EXPECT_EQ(b - a, 64u);
    EXPECT_EQ(a % 64, 0u);
    EXPECT_EQ(sb->zone_name(0), "default");
}

TEST(ScoreboardLayout, AddBackendAndNameTables) {
    auto sb = Scoreboard::create_private(1);
    std::string err;
    EXPECT_EQ(sb->add_backend(spec("gpu-a"), &err), 0);
    BackendSpec s2 = spec("gpu-b");
    s2.models = {"llama-3.1-8b", "qwen-7b"};
    s2.tags = {"long-context"};
    s2.trust_zone = "private";
    EXPECT_EQ(sb->add_backend(s2, &err), 1);
    EXPECT_EQ(sb->n_backends(), 2u);
    EXPECT_EQ(sb->model_id("llama-3.1-8b", false), 0);
    EXPECT_EQ(sb->model_id("qwen-7b", false), 1);
    EXPECT_EQ(sb->model_id("nope", false), -1);
    BackendConfig c;
    ASSERT_TRUE(sb->read_config(1, c));
    EXPECT_STREQ(c.name, "gpu-b");
    EXPECT_EQ(c.models, 0b11u);
    EXPECT_EQ(c.tags, 1ull << sb->tag_id("long-context", false));
    EXPECT_EQ(sb->zone_name(c.trust_zone), "private");
    EXPECT_EQ(c.port, 8000);

    BackendSpec bad = spec(std::string(NAME_LEN, 'x'));
    EXPECT_EQ(sb->add_backend(bad, &err), -1);
    EXPECT_NE(err.find("name"), std::string::npos);
    BackendSpec nomodel = spec("m");
    nomodel.models.clear();
    EXPECT_EQ(sb->add_backend(nomodel, &err), -1);
}

TEST(ScoreboardLayout, FullTableIsAnError) {
    auto sb = Scoreboard::create_private(1);
    std::string err;
    for (uint32_t i = 0; i < MAX_BACKENDS; ++i)
        ASSERT_EQ(sb->add_backend(spec(numbered("b", i)), &err), static_cast<int>(i));
    EXPECT_EQ(sb->add_backend(spec("one-too-many"), &err), -1);
    EXPECT_NE(err.find("full"), std::string::npos);
}

TEST(ScoreboardHooks, RouteFirstByteCompleteBalance) {
    auto sb = Scoreboard::create_private(2);
    std::string err;
    sb->add_backend(spec("a"), &err);
    Ticket t1 = sb->on_route(0, 0, 1000, 200);
    Ticket t2 = sb->on_route(1, 0, 300, 50);
    int64_t o, q, r, d;
    sb->read_load(0, o, q, r, d);
    EXPECT_EQ(o, 2);
    EXPECT_EQ(q, 1300);
    EXPECT_EQ(r, 0);
    EXPECT_EQ(d, 250);
    sb->on_first_byte(t1);
    sb->on_first_byte(t1);  // idempotent
    sb->read_load(0, o, q, r, d);
    EXPECT_EQ(q, 300);
    EXPECT_EQ(r, 1);
    sb->on_complete(t1, 1000, 180);
    sb->on_complete(t2, 0, 0);  // failed before the first byte
    sb->read_load(0, o, q, r, d);
    EXPECT_EQ(o, 0);
    EXPECT_EQ(q, 0);
    EXPECT_EQ(r, 0);
    EXPECT_EQ(d, 0);
    const WorkerLoad& l0 = sb->segment()->load[0][0];
    EXPECT_EQ(l0.routed_total.load(), 1u);
    EXPECT_EQ(l0.completed_total.load(), 1u);
    EXPECT_EQ(l0.output_tokens_total.load(), 180u);
}

TEST(ScoreboardHooks, SnapshotSumsWorkersAndAppliesAvailability) {
    auto sb = Scoreboard::create_private(3);
    std::string err;
    for (int i = 0; i < 4; ++i) sb->add_backend(spec(numbered("b", i), 1000.f * (i + 1)), &err);
    for (uint32_t w = 0; w < 3; ++w) sb->on_route(w, 2, 100, 10);
    sb->set_health(0, Health::Down);
    sb->set_drain(1, true);
    sb->set_circuit(3, Circuit::Open);
    View v;
    sb->snapshot(v, 1);
    EXPECT_EQ(v.n, 4u);
    EXPECT_EQ(v.available, 1ull << 2);
    EXPECT_FLOAT_EQ(v.b[2].outstanding, 3);
    EXPECT_FLOAT_EQ(v.b[2].queued_prompt_tokens, 300);
    EXPECT_FLOAT_EQ(v.b[2].remaining_decode_tokens, 30);
    EXPECT_FLOAT_EQ(v.b[2].prefill_s_per_token, 1.0f / 3000);
    sb->set_circuit(3, Circuit::HalfOpen);  // probing: gets traffic again
    sb->set_weight(2, 0);
    sb->snapshot(v, 2);
    EXPECT_EQ(v.available, 1ull << 3);
    EXPECT_GT(v.generation, 0u);
}

TEST(ScoreboardLearn, EwmaMovesTowardObservations) {
    auto sb = Scoreboard::create_private(1);
    std::string err;
    sb->add_backend(spec("a", 10000, 50), &err);
    Observation o;
    o.backend = 0;
    o.ttft_s = 0.4;
    o.predicted_ttft_s = 0.1;  // the engine is 4x slower than predicted
    o.uncached_prompt_tokens = 1000;
    o.decode_s = 2.0;
    o.output_tokens = 51;      // 25 tok/s
    o.predicted_decode_tps = 50;
    for (int i = 0; i < 100; ++i) sb->learn(o, i);
    ControlLive c;
    ASSERT_TRUE(sb->read_control(0, c));
    EXPECT_NEAR(c.ewma_ttft_ratio, 4.0, 0.05);
    EXPECT_NEAR(c.ewma_decode_ratio, 0.5, 0.01);
    EXPECT_NEAR(c.ewma_decode_tps, 25.0, 0.01);
    EXPECT_NEAR(c.ewma_ttft_per_prompt_token_s, 0.4e-3, 1e-6);
    EXPECT_EQ(c.samples, 100u);
    View v;
    sb->snapshot(v, 0);
    EXPECT_NEAR(v.b[0].ttft_ratio, 4.0, 0.05);
    EXPECT_NEAR(v.b[0].decode_tps, 25.0, 0.5);
    // Outliers are clamped: one absurd sample moves the ratio by at most alpha x log(10).
    o.ttft_s = 1000;
    sb->learn(o, 101);
    sb->read_control(0, c);
    EXPECT_LT(c.ewma_ttft_ratio, 4.0 * 1.3);
    sb->learn_output(0, 100);
    sb->learn_output(0, 300);
    sb->snapshot(v, 0);
    EXPECT_NEAR(v.typical_output[0], 110, 0.01);  // 100 + 0.05 * (300 - 100)
}

TEST(ScoreboardShm, AttachReadsWhatCreatorWrote) {
    std::string err;
    auto name = shm_name("attach");
    auto sb = Scoreboard::create(name, 2, &err);
    ASSERT_TRUE(sb) << err;
    sb->add_backend(spec("gpu-a"), &err);
    sb->on_route(1, 0, 500, 20);
    auto rd = Scoreboard::attach(name, false, &err);
    ASSERT_TRUE(rd) << err;
    BackendConfig c;
    ASSERT_TRUE(rd->read_config(0, c));
    EXPECT_STREQ(c.name, "gpu-a");
    int64_t o, q, r, d;
    rd->read_load(0, o, q, r, d);
    EXPECT_EQ(o, 1);
    EXPECT_EQ(q, 500);
}

TEST(ScoreboardShm, AttachRefusesOtherVersionsAndGarbage) {
    std::string err;
    auto name = shm_name("version");
    auto sb = Scoreboard::create(name, 1, &err);
    ASSERT_TRUE(sb) << err;
    sb->segment()->header.version = LAYOUT_VERSION + 1;
    EXPECT_FALSE(Scoreboard::attach(name, false, &err));
    EXPECT_NE(err.find("layout version"), std::string::npos) << err;
    sb->segment()->header.version = LAYOUT_VERSION;
    sb->segment()->header.magic = 0x12345678;
    EXPECT_FALSE(Scoreboard::attach(name, false, &err));
    EXPECT_NE(err.find("magic"), std::string::npos) << err;
    sb->segment()->header.magic = MAGIC;
    EXPECT_TRUE(Scoreboard::attach(name, false, &err)) << err;
    EXPECT_FALSE(Scoreboard::attach("/tlb-test-sb-does-not-exist", false, &err));
}

TEST(ScoreboardShm, CreatorUnlinksOnClose) {
    std::string err;
    auto name = shm_name("unlink");
    { auto sb = Scoreboard::create(name, 1, &err); ASSERT_TRUE(sb); }
    EXPECT_FALSE(Scoreboard::attach(name, false, &err));
}

// A forked reader maps the segment while the parent keeps rewriting a backend's config block
// (every profile field = the same counter) and its worker gauges. The child must never see a
// torn config copy, and must see the parent's final values.
TEST(ScoreboardShm, CrossProcessReaderSeesConsistentBlocks) {
    std::string err;
    auto name = shm_name("fork");
    auto sb = Scoreboard::create(name, 1, &err);
    ASSERT_TRUE(sb) << err;
    sb->add_backend(spec("gpu-a"), &err);
    // Start from a consistent block (every checked field equal): the child may read before the
    // parent's first rewrite, and spec()'s profile has different values in those fields.
    {
        BackendConfig& c0 = sb->segment()->config[0];
        seq_write_begin(c0.seq);
        c0.profile.prefill_tps = c0.profile.decode_tps = c0.profile.cost_per_mtok = c0.profile.decode_batch_slowdown = 0.0f;
        c0.max_context = 0;
        seq_write_end(c0.seq);
    }
    int go[2];
    ASSERT_EQ(pipe(go), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        char ch;
        if (read(go[0], &ch, 1) != 1) _exit(10);
        std::string e;
        auto rd = Scoreboard::attach(name, false, &e);
        if (!rd) _exit(11);
        uint64_t reads = 0;
        for (;;) {
            BackendConfig c;
            if (!rd->read_config(0, c)) _exit(12);
            float k = c.profile.prefill_tps;
            if (c.profile.decode_tps != k || c.profile.cost_per_mtok != k ||
                c.profile.decode_batch_slowdown != k || c.max_context != static_cast<uint32_t>(k))
                _exit(13);  // torn read
            ++reads;
            if (k == 50000.0f) break;
        }
        int64_t o, q, r, d;
        rd->read_load(0, o, q, r, d);
        if (o != 7 || q != 700) _exit(14);
        _exit(reads > 0 ? 0 : 15);
    }
    if (write(go[1], "x", 1) != 1) FAIL();
    for (int i = 0; i < 7; ++i) sb->on_route(0, 0, 100, 1);
    BackendConfig& c = sb->segment()->config[0];
    for (int k = 1; k <= 50000; ++k) {
        seq_write_begin(c.seq);
        float f = static_cast<float>(k);
        c.profile.prefill_tps = f;
        c.profile.decode_tps = f;
        c.profile.cost_per_mtok = f;
        c.profile.decode_batch_slowdown = f;
        c.max_context = static_cast<uint32_t>(k);
        seq_write_end(c.seq);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "child exit code (13 = torn read, 14 = wrong load)";
    close(go[0]);
    close(go[1]);
}
