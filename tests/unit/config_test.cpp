// lib/config: parsing, defaults, validation messages, effective config and reference docs.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "config/config.hpp"

using namespace tlb::config;

namespace {

#ifndef TLB_SOURCE_DIR
#define TLB_SOURCE_DIR "."
#endif

const std::string SRC = TLB_SOURCE_DIR;

// A minimal valid config; the bad-config cases below edit single lines of it so that line numbers
// in the expected messages are easy to check against this listing.
const std::vector<std::string> BASE = {
    /* 1 */ "[[ports]]",
    /* 2 */ "name = \"c\"",
    /* 3 */ "device = \"net_ring0\"",
    /* 4 */ "role = \"client\"",
    /* 5 */ "address = \"10.10.0.1/24\"",
    /* 6 */ "",
    /* 7 */ "[[ports]]",
    /* 8 */ "name = \"b\"",
    /* 9 */ "device = \"net_ring1\"",
    /* 10 */ "role = \"backend\"",
    /* 11 */ "address = \"10.20.0.1/24\"",
    /* 12 */ "",
    /* 13 */ "[vip]",
    /* 14 */ "address = \"10.10.0.1\"",
    /* 15 */ "",
    /* 16 */ "[[backends]]",
    /* 17 */ "name = \"g1\"",
    /* 18 */ "address = \"10.20.0.11:8000\"",
    /* 19 */ "models = [\"m\"]",
    /* 20 */ "",
    /* 21 */ "[[backends]]",
    /* 22 */ "name = \"g2\"",
    /* 23 */ "address = \"10.20.0.12:8000\"",
    /* 24 */ "models = [\"m\"]",
    /* 25 */ "",
    /* 26 */ "[dataplane]",
    /* 27 */ "workers = 1",
};

std::string join(const std::vector<std::string>& lines) {
    std::string s;
    for (auto& l : lines) s += l + "\n";
    return s;
}

// BASE with line `n` (1-based) replaced by `text` (which may hold several lines or be empty),
// plus `append` at the end.
std::string edit(int n, const std::string& text, const std::string& append = "") {
    auto lines = BASE;
    if (n > 0) lines.at(size_t(n - 1)) = text;
    return join(lines) + append;
}

// BASE with several lines replaced.
std::string edits(std::initializer_list<std::pair<int, std::string>> changes) {
    auto lines = BASE;
    for (auto& [n, text] : changes) lines.at(size_t(n - 1)) = text;
    return join(lines);
}

// BASE with the given lines emptied.
std::string blank(std::initializer_list<int> ns) {
    auto lines = BASE;
    for (int n : ns) lines.at(size_t(n - 1)).clear();
    return join(lines);
}

// BASE's ports and VIP followed by n backends of 4 lines each ("[[backends]]", name, address,
// models); many_backends_line(i) is the line of backends[i]'s header.
std::string many_backends(int n) {
    std::string s = join(std::vector<std::string>(BASE.begin(), BASE.begin() + 15));
    for (int i = 0; i < n; ++i)
        s += "[[backends]]\nname = \"g" + std::to_string(i) + "\"\naddress = \"10.20.0.11:" +
             std::to_string(8000 + i) + "\"\nmodels = [\"m\"]\n";
    return s;
}
int many_backends_line(int i) { return 16 + 4 * i; }

// The ConfigError message of loading `text` as "t.toml", or "OK".
std::string error_of(const std::string& text) {
    try {
        load_string(text, "t.toml");
        return "OK";
    } catch (const ConfigError& e) {
        return e.what();
    }
}

std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST(Config, BaseIsValid) {
    Config c = load_string(join(BASE), "t.toml");
    ASSERT_EQ(c.ports.size(), 2u);
    EXPECT_EQ(c.ports[0].role, PortRole::Client);
    EXPECT_EQ(c.ports[1].role, PortRole::Backend);
    EXPECT_EQ(c.ports[0].address.addr, 0x0a0a0001u);
    EXPECT_EQ(c.ports[0].address.prefix_len, 24);
    EXPECT_EQ(c.vip.address, 0x0a0a0001u);
    ASSERT_EQ(c.backends.size(), 2u);
    EXPECT_EQ(c.backends[1].address.addr, 0x0a14000cu);
    EXPECT_EQ(c.backends[1].address.port, 8000);
    EXPECT_EQ(c.source, "t.toml");
}

// ---------------------------------------------------------------------------------------------
// Bad configs: each gives one line naming file, line, key and what is wrong.

struct BadCase {
    const char* what;
    std::string text;
    std::string message;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.what; }

class BadConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, GivesExpectedMessage) {
    const BadCase& c = GetParam();
    std::string got = error_of(c.text);
    EXPECT_EQ(got, c.message) << "case: " << c.what << "\nconfig:\n" << c.text;
    EXPECT_EQ(got.find('\n'), std::string::npos) << "message must be one line";
}

const std::vector<BadCase> BAD_CASES = {
    {"wrong type", edit(27, "workers = \"2\""),
     "t.toml:27: dataplane.workers: has type string, expected an integer in [1, 16]"},
    {"float for integer", edit(27, "workers = 1.5"),
     "t.toml:27: dataplane.workers: has type float, expected an integer in [1, 16]"},
    {"out of range", edit(27, "workers = 0"),
     "t.toml:27: dataplane.workers: 0 is out of range (expected an integer in [1, 16])"},
    {"negative integer", edit(27, "workers = -3"),
     "t.toml:27: dataplane.workers: -3 is out of range (expected an integer in [1, 16])"},
    {"float out of range", edit(0, "", "[backends.profile]\ndecode_batch_slowdown = 11.0\n"),
     "t.toml:29: backends[1].profile.decode_batch_slowdown: 11.0 is out of range (expected a number "
     "in [0, 10])"},
    {"not a power of two", edit(5, "address = \"10.10.0.1/24\"\nrx_desc = 1000"),
     "t.toml:6: ports[0].rx_desc: 1000 is not a power of two (expected an integer in [64, 32768], a "
     "power of two)"},
    {"unknown key", edit(18, "adress = \"10.20.0.11:8000\""),
     "t.toml:18: backends[0].adress: unknown key (did you mean 'address'?)"},
    {"unknown key in profile", edit(0, "", "[backends.profile]\nmax_batches = 8\n"),
     "t.toml:29: backends[1].profile.max_batches: unknown key (did you mean 'max_batch'?)"},
    {"unknown section", edit(0, "", "[telemtry]\nbackend_header = true\n"),
     "t.toml:28: telemtry: unknown section (did you mean 'telemetry'?)"},
    {"unknown top-level key", "workers = 2\n" + join(BASE),
     "t.toml:1: workers: unknown top-level key (keys belong in a section) (expected one of: eal, "
     "ports, vip, backends, policy, limits, telemetry, dataplane, tokens)"},
    {"duplicate backend name", edit(22, "name = \"g1\""),
     "t.toml:22: backends[1].name: duplicate backend name \"g1\" (already used by backends[0] at line "
     "17)"},
    {"duplicate backend address", edit(23, "address = \"10.20.0.11:8000\""),
     "t.toml:23: backends[1].address: 10.20.0.11:8000 is already backends[0] (g1) (expected one entry "
     "per address:port)"},
    {"bad address:port", edit(18, "address = \"10.20.0.300:8000\""),
     "t.toml:18: backends[0].address: \"10.20.0.300:8000\" is not a valid IPv4 address:port (expected "
     "an IPv4 address:port such as \"10.20.0.11:8000\")"},
    {"address without port", edit(18, "address = \"10.20.0.11\""),
     "t.toml:18: backends[0].address: \"10.20.0.11\" is not a valid IPv4 address:port (expected an "
     "IPv4 address:port such as \"10.20.0.11:8000\")"},
    {"bad prefix", edit(5, "address = \"10.10.0.1/33\""),
     "t.toml:5: ports[0].address: \"10.10.0.1/33\" is not a valid IPv4 address/prefix length "
     "(expected an IPv4 address/prefix length such as \"10.10.0.1/24\")"},
    {"bad IPv4 address", edit(14, "address = \"10.10.0\""),
     "t.toml:14: vip.address: \"10.10.0\" is not a valid IPv4 address (expected an IPv4 address such "
     "as \"10.10.0.1\")"},
    {"missing backends[].address", edit(18, ""),
     "t.toml:16: backends[0].address: missing required key (expected an IPv4 address:port such as "
     "\"10.20.0.11:8000\")"},
    {"missing ports[].device", edit(9, ""),
     "t.toml:7: ports[1].device: missing required key (expected a PCI address such as "
     "\"0000:3b:00.0\" or a vdev spec such as \"net_af_packet0,iface=tlbc0\")"},
    {"missing vip section", blank({13, 14}),
     "t.toml:1: vip.address: missing required key (expected an IPv4 address such as \"10.10.0.1\")"},
    {"empty models", edit(24, "models = []"),
     "t.toml:24: backends[1].models: must not be empty (expected a non-empty array of distinct "
     "model names)"},
    {"duplicate model", edit(24, "models = [\"m\", \"m\"]"),
     "t.toml:24: backends[1].models[1]: duplicate \"m\" (expected a non-empty array of distinct "
     "model names)"},
    {"model not a string", edit(24, "models = [\"m\", 7]"),
     "t.toml:24: backends[1].models[1]: has type integer, expected a string"},
    {"VIP outside client prefix", edit(14, "address = \"10.99.0.1\""),
     "t.toml:14: vip.address: 10.99.0.1 is not inside any client port's prefix (expected an address "
     "in 10.10.0.0/24)"},
    {"no backend port", edit(10, "role = \"client\""),
     "t.toml:1: ports: no port with role = \"backend\" (expected at least one)"},
    {"no client port", edit(4, "role = \"backend\""),
     "t.toml:1: ports: no port with role = \"client\" (expected at least one)"},
    {"bad role", edit(4, "role = \"server\""),
     "t.toml:4: ports[0].role: \"server\" is not allowed (expected \"client\" or \"backend\")"},
    {"unknown policy", edit(0, "", "[policy]\nname = \"fastest\"\n"),
     "t.toml:29: policy.name: \"fastest\" is not allowed (expected \"round_robin\", \"random\", "
     "\"least_requests\", \"power_of_two\", \"least_tokens\", \"prefix_hash\" or \"token_aware\")"},
    {"alias candidate unknown model",
     edit(0, "", "[[policy.aliases]]\nname = \"auto\"\ncandidates = [\"m\", \"llama-70b\"]\n"),
     "t.toml:30: policy.aliases[0].candidates[1]: unknown model \"llama-70b\" (expected a model served "
     "by some backend: m)"},
    {"sensitive zone no backend is in",
     edit(0, "", "[policy]\nsensitive_zones = [\"private\"]\n"),
     "t.toml:29: policy.sensitive_zones[0]: no backend is in trust zone \"private\" (expected one of "
     "the backends' trust_zone: \"default\")"},
    {"bad tag_match", edit(0, "", "[policy]\ntag_match = \"always\"\n"),
     "t.toml:29: policy.tag_match: \"always\" is not allowed (expected \"prefer\", \"require\" or "
     "\"off\")"},
    {"sensitive tag not a name", edit(0, "", "[policy]\nsensitive_tags = [\"p i i\"]\n"),
     "t.toml:29: policy.sensitive_tags[0]: \"p i i\" is not a valid name (expected an array of distinct "
     "names)"},
    {"alias shadows a model", edit(0, "", "[[policy.aliases]]\nname = \"m\"\ncandidates = [\"m\"]\n"),
     "t.toml:29: policy.aliases[0].name: \"m\" is a served model (expected an alias name no backend "
     "serves)"},
    {"duplicate port name", edit(8, "name = \"c\""),
     "t.toml:8: ports[1].name: duplicate port name \"c\" (already used by ports[0] at line 2)"},
    {"duplicate device", edit(9, "device = \"net_ring0,size=4\""),
     "t.toml:9: ports[1].device: device \"net_ring0\" is already used by ports[0] (expected one port "
     "per device)"},
    {"duplicate PCI device", edits({{3, "device = \"0000:3B:00.0\""}, {9, "device = \"3b:00.0\""}}),
     "t.toml:9: ports[1].device: device \"0000:3b:00.0\" is already used by ports[0] (expected one "
     "port per device)"},
    {"bad device", edit(3, "device = \"eth0\""),
     "t.toml:3: ports[0].device: \"eth0\" is neither a PCI address nor a vdev spec (expected a PCI "
     "address such as \"0000:3b:00.0\" or a vdev spec such as \"net_af_packet0,iface=tlbc0\")"},
    {"overlapping subnets", edit(11, "address = \"10.10.0.2/16\""),
     "t.toml:11: ports[1].address: 10.10.0.2/16 overlaps ports[0] (10.10.0.1/24) (expected disjoint "
     "subnets)"},
    {"gateway off subnet", edit(11, "address = \"10.20.0.1/24\"\ngateway = \"10.30.0.1\""),
     "t.toml:12: ports[1].gateway: 10.30.0.1 is not inside 10.20.0.1/24 (expected a next hop on the "
     "port's subnet)"},
    {"backend unreachable", edit(23, "address = \"10.30.0.12:8000\""),
     "t.toml:23: backends[1].address: 10.30.0.12 is not inside any backend port's prefix and no "
     "backend port has a gateway"},
    {"backend is the appliance", edit(23, "address = \"10.20.0.1:8000\""),
     "t.toml:23: backends[1].address: 10.20.0.1 is an address of the appliance itself"},
    {"ports as a table", "[ports]\nname = \"c\"\n" + join(std::vector<std::string>(BASE.begin() + 12, BASE.end())),
     "t.toml:1: ports: has type table, expected an array of tables [[ports]]"},
    {"profile not a table", edit(24, "models = [\"m\"]\nprofile = 3"),
     "t.toml:25: backends[1].profile: has type integer, expected a table [backends.profile]"},
    {"pool_prewarm above pool_max", edit(0, "", "[limits]\npool_prewarm = 9\npool_max = 8\n"),
     "t.toml:29: limits.pool_prewarm: 9 exceeds limits.pool_max (8)"},
    {"lcores given twice", edit(0, "", "[eal]\nargs = [\"--no-huge\", \"-l\", \"0-1\"]\nlcores = \"0-1\"\n"),
     "t.toml:29: eal.args[1]: \"-l\" conflicts with eal.lcores (expected the lcore list in one place)"},
    {"bad shm name", edit(0, "", "[telemetry]\nscoreboard_shm = \"tokenlb/sb\"\n"),
     "t.toml:29: telemetry.scoreboard_shm: \"tokenlb/sb\" is not a POSIX shared-memory name (expected "
     "a shared-memory name such as \"/tokenlb-scoreboard\")"},
    {"bad metrics url", edit(24, "models = [\"m\"]\nmetrics_url = \"10.20.0.12:8000/metrics\""),
     "t.toml:25: backends[1].metrics_url: \"10.20.0.12:8000/metrics\" is not an http:// URL (expected "
     "\"\" or a URL such as \"http://10.20.0.11:8000/metrics\")"},
    {"bad backend name", edit(22, "name = \"gpu 2\""),
     "t.toml:22: backends[1].name: \"gpu 2\" is not a valid name (expected a name of 1-47 letters, "
     "digits, '.', '_' or '-')"},
    {"wrong type bool", edit(0, "", "[telemetry]\nbackend_header = \"yes\"\n"),
     "t.toml:29: telemetry.backend_header: has type string, expected true or false"},
    {"too few mbufs", edit(5, "address = \"10.10.0.1/24\"\nmbufs = 2047"),
     "t.toml:6: ports[0].mbufs: 2047 is too few for 1 x 1024 rx + 1 x 1024 tx descriptors (expected at "
     "least 2112)"},
    {"too many workers", edit(27, "workers = 17"),
     "t.toml:27: dataplane.workers: 17 is out of range (expected an integer in [1, 16])"},
    {"model name with a space", edit(24, "models = [\"llama 3\"]"),
     "t.toml:24: backends[1].models[0]: \"llama 3\" is not a valid model name (expected a non-empty "
     "array of distinct model names)"},
    {"name too long", edit(22, "name = \"" + std::string(48, 'x') + "\""),
     "t.toml:22: backends[1].name: \"" + std::string(48, 'x') +
         "\" is not a valid name (expected a name of 1-47 letters, digits, '.', '_' or '-')"},
    {"weight out of range", edit(24, "models = [\"m\"]\nweight = 1001"),
     "t.toml:25: backends[1].weight: 1001 is out of range (expected an integer in [0, 1000])"},
    {"too many backends", many_backends(65),
     "t.toml:" + std::to_string(many_backends_line(64)) +
         ": backends: 65 backends configured (expected at most 64)"},
    {"no backends",
     join(std::vector<std::string>(BASE.begin(), BASE.begin() + 15)),
     "t.toml:1: backends: no backends configured (expected at least one [[backends]])"},
};
// TOML syntax errors (toml++ owns their wording) are checked in SyntaxErrors.

INSTANTIATE_TEST_SUITE_P(Cases, BadConfig, ::testing::ValuesIn(BAD_CASES),
                         [](const ::testing::TestParamInfo<BadCase>& info) {
                             std::string n;
                             for (const char* p = info.param.what; *p; ++p)
                                 n += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
                             return n;
                         });

TEST(Config, EnoughBadCases) { EXPECT_GE(BAD_CASES.size(), 15u); }

TEST(Config, CapacityLimitsAreExact) {
    EXPECT_EQ(error_of(many_backends(64)), "OK");
    // 64 distinct models are fine, the 65th is not.
    std::string s = join(std::vector<std::string>(BASE.begin(), BASE.begin() + 15));
    s += "[[backends]]\nname = \"g\"\naddress = \"10.20.0.11:8000\"\nmodels = [";
    for (int i = 0; i < 64; ++i) s += (i ? ", " : "") + std::string("\"m") + std::to_string(i) + "\"";
    EXPECT_EQ(error_of(s + "]\n"), "OK");
    EXPECT_EQ(error_of(s + ", \"m64\"]\n"),
              "t.toml:19: backends[0].models: more than 64 distinct models (expected at most 64)");
}

TEST(Config, SyntaxErrors) {
    std::string e = error_of(edit(27, "workers = "));
    EXPECT_EQ(e.rfind("t.toml:27: syntax error: ", 0), 0u) << e;
    e = error_of(edit(27, "workers = 1\nworkers = 2"));
    EXPECT_EQ(e.rfind("t.toml:28: syntax error: ", 0), 0u) << e;
    EXPECT_NE(e.find("workers"), std::string::npos) << e;
}

TEST(Config, UnknownKeyWithoutCloseMatchListsKnownKeys) {
    std::string e = error_of(edit(0, "", "[vip]\nzzzzzzzz = 1\n"));
    // [vip] is already defined by BASE: toml++ rejects the redefinition first.
    EXPECT_NE(e.find("syntax error"), std::string::npos) << e;
    e = error_of(edit(14, "address = \"10.10.0.1\"\nzzzzzzzz = 1"));
    EXPECT_EQ(e, "t.toml:15: vip.zzzzzzzz: unknown key (expected one of: address, port)");
}

TEST(Config, MissingFile) {
    try {
        load_file("/nonexistent/tokenlb.toml");
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(), "/nonexistent/tokenlb.toml:1: cannot open file: No such file or directory");
    }
}

// ---------------------------------------------------------------------------------------------
// Defaults: a minimal config gets exactly the struct initializers of config.hpp, which proves the
// key table's defaults and the header agree.

TEST(Config, DefaultsMatchHeaderInitializers) {
    Config c = load_string(join(BASE), "t.toml");
    EXPECT_EQ(c.eal, Eal{});
    EXPECT_EQ(c.eal.args, (std::vector<std::string>{"--no-huge", "-m", "1024", "--no-pci"}));
    EXPECT_EQ(c.vip.port, Vip{}.port);
    EXPECT_EQ(c.policy, Policy{});
    EXPECT_EQ(c.limits, Limits{});
    EXPECT_EQ(c.dataplane.idle_backoff, Dataplane{}.idle_backoff);
    EXPECT_EQ(c.dataplane.burst, 32u);
    EXPECT_EQ(c.tokens, Tokens{});
    // metrics_listen has no header initializer (Endpoint is zero); the table default applies.
    Telemetry t{};
    t.metrics_listen = {0x7f000001, 9100};
    EXPECT_EQ(c.telemetry, t);
    // Ports: everything except the required keys is the header default.
    Port p{};
    p.name = "c";
    p.device = "net_ring0";
    p.role = PortRole::Client;
    p.address = {0x0a0a0001, 24};
    EXPECT_EQ(c.ports[0], p);
    Backend b{};
    b.name = "g1";
    b.address = {0x0a14000b, 8000};
    b.models = {"m"};
    EXPECT_EQ(c.backends[0], b);
    EXPECT_EQ(c.backends[0].profile, BackendProfile{});
}

TEST(Config, ValuesAreParsed) {
    std::string extra =
        "[[policy.aliases]]\nname = \"auto\"\ncandidates = [\"m\"]\n"
        "[limits]\nmax_body_bytes = 1073741824\n"
        "[telemetry]\nmetrics_listen = \"0.0.0.0:9200\"\naccess_log = \"-\"\nbackend_header = true\n";
    Config c = load_string(edit(24, "models = [\"m\", \"n\"]\ntags = [\"code\"]\nweight = 0\n"
                                    "[backends.profile]\nprefill_tokens_per_s = 5000\ncost_per_mtok = 0.25",
                                extra),
                           "t.toml");
    const Backend& b = c.backends[1];
    EXPECT_EQ(b.models, (std::vector<std::string>{"m", "n"}));
    EXPECT_EQ(b.tags, (std::vector<std::string>{"code"}));
    EXPECT_EQ(b.weight, 0u);
    EXPECT_DOUBLE_EQ(b.profile.prefill_tokens_per_s, 5000.0);  // integer accepted for a float key
    EXPECT_DOUBLE_EQ(b.profile.cost_per_mtok, 0.25);
    EXPECT_EQ(b.profile.max_batch, BackendProfile{}.max_batch);
    ASSERT_EQ(c.policy.aliases.size(), 1u);
    EXPECT_EQ(c.policy.aliases[0].name, "auto");
    EXPECT_EQ(c.limits.max_body_bytes, 1073741824u);
    EXPECT_EQ(c.telemetry.metrics_listen, (Endpoint{0, 9200}));
    EXPECT_EQ(c.telemetry.access_log, "-");
    EXPECT_TRUE(c.telemetry.backend_header);
}

// ---------------------------------------------------------------------------------------------
// Shipped configs.

TEST(Config, ShippedSampleValidates) {
    Config c = load_file(SRC + "/conf/tokenlb.toml");
    EXPECT_EQ(c.ports.size(), 2u);
    EXPECT_EQ(c.backends.size(), 3u);
    EXPECT_EQ(c.policy.name, "token_aware");
    ASSERT_EQ(c.policy.aliases.size(), 1u);
    EXPECT_EQ(c.policy.aliases[0].candidates.size(), 2u);
}

TEST(Config, LabConfigFollowsLabConventions) {
    Config c = load_file(SRC + "/conf/lab.toml");
    ASSERT_EQ(c.ports.size(), 2u);
    EXPECT_EQ(c.ports[0].device, "net_af_packet0,iface=tlbc0");
    EXPECT_EQ(c.ports[0].role, PortRole::Client);
    EXPECT_EQ(prefix_to_string(c.ports[0].address), "10.10.0.1/24");
    EXPECT_EQ(c.ports[1].device, "net_af_packet1,iface=tlbg0");
    EXPECT_EQ(c.ports[1].role, PortRole::Backend);
    EXPECT_EQ(prefix_to_string(c.ports[1].address), "10.20.0.1/24");
    EXPECT_TRUE(is_vdev(c.ports[0]));
    EXPECT_EQ(ipv4_to_string(c.vip.address), "10.10.0.1");
    EXPECT_EQ(c.vip.port, 80);
    ASSERT_EQ(c.backends.size(), 4u);
    std::set<std::string> profiles;
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(endpoint_to_string(c.backends[i].address), "10.20.0." + std::to_string(11 + i) + ":8000");
        EXPECT_EQ(c.backends[i].models, std::vector<std::string>{"llama-3-8b"});
        profiles.insert(c.backends[i].profile_name);
    }
    EXPECT_EQ(profiles, (std::set<std::string>{"h100-8b", "a10g-8b", "l4-8b"}));
    EXPECT_GT(c.backends[0].profile.prefill_tokens_per_s, c.backends[3].profile.prefill_tokens_per_s);
    EXPECT_TRUE(c.telemetry.backend_header);
    EXPECT_TRUE(c.dataplane.idle_backoff);
    EXPECT_EQ(c.policy.name, "token_aware");
}

// ---------------------------------------------------------------------------------------------
// Effective config: load(to_toml(cfg)) == cfg, and to_toml is a fixed point.

void expect_round_trip(const Config& c) {
    std::string text = to_toml(c);
    Config back;
    ASSERT_NO_THROW(back = load_string(text, c.source)) << text;
    EXPECT_EQ(back, c) << text;
    EXPECT_EQ(to_toml(back), text);
}

TEST(Config, RoundTripBase) { expect_round_trip(load_string(join(BASE), "t.toml")); }
TEST(Config, RoundTripLab) { expect_round_trip(load_file(SRC + "/conf/lab.toml")); }
TEST(Config, RoundTripSample) { expect_round_trip(load_file(SRC + "/conf/tokenlb.toml")); }

TEST(Config, RoundTripNonDefaultValuesAndEscapes) {
    Config c = load_string(
        edit(11, "address = \"10.20.0.1/24\"\ngateway = \"10.20.0.254\"\nmtu = 9000\nrx_desc = 4096",
             "[eal]\nargs = [\"--huge-dir\", \"/dev/huge pages\", \"quote\\\"d\", \"tab\\there\"]\nlcores = \"2-4\"\n"
             "[[policy.aliases]]\nname = \"auto\"\ncandidates = [\"m\"]\n"
             "[telemetry]\naccess_log = \"/var/log/t\\u00e9st.log\"\n"
             "[limits]\nmax_body_bytes = 123456789\n"),
        "t.toml");
    EXPECT_EQ(c.ports[1].gateway, 0x0a1400feu);
    EXPECT_EQ(c.eal.args[2], "quote\"d");
    EXPECT_EQ(c.eal.args[3], "tab\there");
    EXPECT_EQ(c.telemetry.access_log, "/var/log/t\xc3\xa9st.log");
    expect_round_trip(c);
    // An unset optional key stays unset.
    EXPECT_EQ(to_toml(c).find("gateway = \"0.0.0.0\""), std::string::npos);
}

TEST(Config, EffectiveConfigListsDefaults) {
    std::string t = to_toml(load_string(join(BASE), "t.toml"));
    EXPECT_NE(t.find("\n[limits]\nmax_header_bytes = 16384\n"), std::string::npos) << t;
    EXPECT_NE(t.find("metrics_listen = \"127.0.0.1:9100\""), std::string::npos);
    EXPECT_NE(t.find("[backends.profile]\nprefill_tokens_per_s = 10000.0\n"), std::string::npos) << t;
    EXPECT_NE(t.find("name = \"token_aware\""), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Reference docs and sample stay in step with the declarations.

TEST(Config, DocsAreGenerated) {
    std::istringstream want(reference_markdown()), have(read(SRC + "/docs/config.md"));
    std::string w, h;
    int line = 0;
    bool more_w = true, more_h = true;
    while (more_w || more_h) {
        more_w = bool(std::getline(want, w));
        more_h = bool(std::getline(have, h));
        if (!more_w) w = "<end of file>";
        if (!more_h) h = "<end of file>";
        ++line;
        if (w != h || more_w != more_h) break;
    }
    EXPECT_FALSE(more_w || more_h)
        << "docs/config.md differs from reference_markdown() at line " << line << ":\n  docs:      " << h
        << "\n  generated: " << w << "\nRegenerate it with\n"
        << "  ninja -C build-x lib/config/tlb-config-docgen && build-x/lib/config/tlb-config-docgen > docs/config.md";
}

std::vector<std::string> documented_keys() {
    std::string md = reference_markdown();
    std::regex row(R"(\n\| `([a-z_]+)` \|)");
    std::vector<std::string> keys;
    for (auto it = std::sregex_iterator(md.begin(), md.end(), row); it != std::sregex_iterator(); ++it)
        keys.push_back((*it)[1]);
    return keys;
}

TEST(Config, ReferenceDocumentsEveryKey) {
    auto keys = documented_keys();
    EXPECT_GE(keys.size(), 60u);
    // Every key the effective config writes is documented.
    std::string t = to_toml(load_file(SRC + "/conf/tokenlb.toml"));
    std::regex kv(R"(\n([a-z_]+) = )");
    for (auto it = std::sregex_iterator(t.begin(), t.end(), kv); it != std::sregex_iterator(); ++it)
        EXPECT_NE(std::find(keys.begin(), keys.end(), (*it)[1].str()), keys.end()) << (*it)[1];
}

TEST(Config, SampleMentionsEveryKey) {
    std::string sample = read(SRC + "/conf/tokenlb.toml");
    for (auto& k : documented_keys())
        EXPECT_TRUE(std::regex_search(sample, std::regex("\n(# )?" + k + " = "))) << k;
}

// ---------------------------------------------------------------------------------------------
// Address helpers.

TEST(ConfigHelpers, Ipv4) {
    uint32_t a = 0;
    EXPECT_TRUE(parse_ipv4("0.0.0.0", a));
    EXPECT_EQ(a, 0u);
    EXPECT_TRUE(parse_ipv4("255.255.255.255", a));
    EXPECT_EQ(a, 0xffffffffu);
    EXPECT_TRUE(parse_ipv4("10.20.0.11", a));
    EXPECT_EQ(a, 0x0a14000bu);
    EXPECT_EQ(ipv4_to_string(a), "10.20.0.11");
    for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..2.3", "1.2.3.4 ", " 1.2.3.4",
                            "a.b.c.d", "1.2.3.-4", "1.2.3.4/24", "1234.1.1.1"})
        EXPECT_FALSE(parse_ipv4(bad, a)) << bad;
}

TEST(ConfigHelpers, PrefixAndEndpoint) {
    Ipv4Prefix p;
    EXPECT_TRUE(parse_ipv4_prefix("10.10.0.1/24", p));
    EXPECT_EQ(p.prefix_len, 24);
    EXPECT_TRUE(prefix_contains(p, 0x0a0a00feu));
    EXPECT_FALSE(prefix_contains(p, 0x0a0a01feu));
    EXPECT_TRUE(parse_ipv4_prefix("10.10.0.1/32", p));
    EXPECT_FALSE(prefix_contains(p, 0x0a0a0002u));
    for (const char* bad : {"10.10.0.1", "10.10.0.1/0", "10.10.0.1/33", "10.10.0.1/", "10.10.0.1/024"})
        EXPECT_FALSE(parse_ipv4_prefix(bad, p)) << bad;
    Endpoint e;
    EXPECT_TRUE(parse_endpoint("10.20.0.11:8000", e));
    EXPECT_EQ(e, (Endpoint{0x0a14000b, 8000}));
    EXPECT_EQ(endpoint_to_string(e), "10.20.0.11:8000");
    for (const char* bad : {"10.20.0.11", "10.20.0.11:0", "10.20.0.11:65536", "10.20.0.11:", ":80", "host:80"})
        EXPECT_FALSE(parse_endpoint(bad, e)) << bad;
}
