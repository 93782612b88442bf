// lib/classify: default rules on positive and negative examples, rule-file errors, multi-span
// input, confirm checks, and the AVX2 script kernel against the scalar reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "classify/classify.hpp"

using namespace tlb::classify;

namespace {

const std::string RULES_DIR = std::string(TLB_SOURCE_DIR) + "/conf/rules";

class DefaultRules : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        std::string err;
        cls = Classifier::load_dir(RULES_DIR, &err).release();
        ASSERT_NE(cls, nullptr) << err;
    }
    static void TearDownTestSuite() {
        delete cls;
        cls = nullptr;
    }
    void SetUp() override {
        ASSERT_NE(cls, nullptr);
        scanner = std::make_unique<Scanner>(*cls);
        ASSERT_TRUE(scanner->ok());
    }
    // True when `text` gets tag `tag`.
    bool has(const std::string& text, const char* tag) {
        const TagSet t = scanner->scan(text);
        const TagSet m = cls->tag_mask(tag);
        EXPECT_NE(m, 0u) << "unknown tag " << tag;
        return (t & m) != 0;
    }
    std::string tags(const std::string& text) { return cls->format(scanner->scan(text)); }

    static Classifier* cls;
    std::unique_ptr<Scanner> scanner;
};
Classifier* DefaultRules::cls = nullptr;

}  // namespace

TEST_F(DefaultRules, RegistryHasDefaultTags) {
    for (const char* t : {"code", "math", "pii", "secrets", "cjk", "cyrillic"}) EXPECT_GE(cls->tag_bit(t), 0) << t;
    EXPECT_EQ(cls->tag_bit("nope"), -1);
    EXPECT_EQ(cls->tag_mask("nope"), 0u);
    EXPECT_LE(cls->tag_count(), MAX_TAGS);
    EXPECT_GT(cls->rule_count(), 40u);
}

TEST_F(DefaultRules, PlainProseHasNoTags) {
    EXPECT_EQ(tags("If you want, we can go for a walk; if it rains, we stay home. For example, return the "
                   "book while you are there, and select the items from the list."),
              "");
    EXPECT_EQ(tags("The meeting is at 10:30 on 2023-10-05; version 1.2.3 costs $5 and $10."), "");
    EXPECT_EQ(tags(""), "");
}

TEST_F(DefaultRules, CodePositives) {
    EXPECT_TRUE(has("Here is my code:\n```python\nprint('hi')\n```\n", "code"));
    EXPECT_TRUE(has("#include <stdio.h>\nint main(void) {\n    printf(\"hi\\n\");\n    return 0;\n}\n", "code"));
    EXPECT_TRUE(has("def add(a, b):\n    return a + b\n", "code"));
    EXPECT_TRUE(has("class Foo(Base):\n    pass\n", "code"));
    EXPECT_TRUE(has("const fs = require('fs');\nconst y = fs.readFileSync('a');\n", "code"));
    EXPECT_TRUE(has("package main\n\nfunc main() {\n\tx := 1\n}\n", "code"));
    EXPECT_TRUE(has("fn main() {\n    let mut v = vec![1, 2, 3];\n}\n", "code"));
    EXPECT_TRUE(has("SELECT name, age FROM users WHERE age > 30;", "code"));
    EXPECT_TRUE(has("$ sudo apt-get install nginx\n$ git clone https://example.com/repo\n", "code"));
    EXPECT_TRUE(has("#!/bin/sh\necho hello\n", "code"));
    EXPECT_TRUE(has("for (int i = 0; i < n; ++i) {\n  sum += a[i];\n}\n", "code"));
}

TEST_F(DefaultRules, ProseMentioningCodeWordsIsNotCode) {
    EXPECT_FALSE(has("What if I import more coffee? For the class, we define our function in life as "
                     "returning home; if it rains, while we wait, select a table from the list.",
                     "code"));
    EXPECT_FALSE(has("Please select the items from the list and update the set of values.", "code"));
    EXPECT_FALSE(has("Visit https://example.com and http://example.org/a/b for details.", "code"));
    EXPECT_FALSE(has("He said: let me think; then, var and const are words too.", "code"));
}

TEST_F(DefaultRules, Math) {
    EXPECT_TRUE(has("The integral \\int_0^1 x^2 dx = \\frac{1}{3}", "math"));
    EXPECT_TRUE(has("$$E = mc^2$$", "math"));
    EXPECT_TRUE(has("Solve for x: 2x + 3 = 7", "math"));
    EXPECT_TRUE(has("∀x ∈ ℝ, x² ≥ 0 and ∑ aᵢ ≤ ∞", "math"));
    EXPECT_TRUE(has("What is 12 * 7 = 84 really?", "math"));
    EXPECT_TRUE(has("\\begin{equation} a = b \\end{equation}", "math"));
    EXPECT_FALSE(has("It costs $5 and $10 at the shop, 3 times a week.", "math"));
    EXPECT_FALSE(has("The price is 5 × cheaper now.", "math"));  // one symbol is not enough
}

TEST_F(DefaultRules, EmailsAndNearMisses) {
    EXPECT_TRUE(has("Contact me at john.doe@example.com please", "pii"));
    EXPECT_TRUE(has("mail: a_b+tag@mail.example.co.uk", "pii"));
    EXPECT_FALSE(has("user@localhost is local", "pii"));
    EXPECT_FALSE(has("follow @handle on the site", "pii"));
    EXPECT_FALSE(has("foo@bar and a@b. are not addresses", "pii"));
}

TEST_F(DefaultRules, PhoneNumbers) {
    EXPECT_TRUE(has("Call +44 20 7946 0958 tomorrow", "pii"));
    EXPECT_TRUE(has("Call (555) 123-4567 tomorrow", "pii"));
    EXPECT_TRUE(has("Call 555-123-4567 tomorrow", "pii"));
    EXPECT_FALSE(has("+1 for this idea, and 2023-10-05 is a date", "pii"));
}

TEST_F(DefaultRules, CardNumbersNeedLuhn) {
    EXPECT_TRUE(has("My card is 4111 1111 1111 1111 thanks", "pii"));
    EXPECT_TRUE(has("card 4111-1111-1111-1111", "pii"));
    EXPECT_TRUE(has("amex 378282246310005.", "pii"));
    EXPECT_TRUE(has("5555555555554444", "pii"));
    const uint64_t before = scanner->confirm_rejects();
    EXPECT_FALSE(has("My card is 4111 1111 1111 1112 thanks", "pii"));
    EXPECT_GT(scanner->confirm_rejects(), before);
    EXPECT_FALSE(has("0000 0000 0000 0000", "pii"));
    EXPECT_FALSE(has("sqrt(2) = 1.4142135623730951", "pii"));  // digits after a decimal point
}

TEST_F(DefaultRules, Iban) {
    EXPECT_TRUE(has("IBAN DE89 3704 0044 0532 0130 00", "pii"));
    EXPECT_TRUE(has("GB82WEST12345698765432", "pii"));
    EXPECT_FALSE(has("IBAN DE88 3704 0044 0532 0130 00", "pii"));
}

TEST_F(DefaultRules, Secrets) {
    EXPECT_TRUE(has("export OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz0123456789", "secrets"));
    EXPECT_TRUE(has("AWS AKIAIOSFODNN7EXAMPLE key", "secrets"));
    EXPECT_TRUE(has("token ghp_abcdefghijklmnopqrstuvwxyz0123456789AB", "secrets"));
    EXPECT_TRUE(has("slack xoxb-123456789012-abcdefghijk", "secrets"));
    EXPECT_TRUE(has("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n", "secrets"));
    EXPECT_TRUE(has("-----BEGIN OPENSSH PRIVATE KEY-----", "secrets"));
    EXPECT_TRUE(has("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
                    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                    "secrets"));
    EXPECT_FALSE(has("The task-manager-application-for-everyone is great; ask-me-anything-about-it", "secrets"));
    EXPECT_FALSE(has("-----BEGIN PUBLIC KEY-----", "secrets"));
    EXPECT_FALSE(has("sk-short", "secrets"));
}

TEST_F(DefaultRules, Scripts) {
    EXPECT_EQ(tags("人工智能是计算机科学的一个分支，它企图了解智能的实质。"), "cjk");
    // Japanese: kanji and kana both count as CJK.
    EXPECT_EQ(tags("私はコーヒーが好きです。あなたはどうですか？"), "cjk");
    EXPECT_EQ(tags("ひらがなとカタカナだけのぶんしょうです"), "cjk");
    EXPECT_EQ(tags("Привет, как дела? Это пример русского текста для проверки."), "cyrillic");
    // A few foreign characters in English text are not "heavy".
    EXPECT_FALSE(has("Translate \"hello\" to Chinese: 你好", "cjk"));
    EXPECT_FALSE(has("What is the capital of Russia? Moscow, in Russian: Москва.", "cyrillic"));
    // Greek and Latin-1 letters are neither.
    EXPECT_EQ(tags("Καλημέρα κόσμε, café, naïve"), "");
    const ScriptCounts& sc = scanner->script_counts();
    EXPECT_GT(sc.greek, 0u);
    EXPECT_EQ(sc.cjk, 0u);
}

TEST_F(DefaultRules, MultipleSpansAddUp) {
    // Each span alone is below min_count=2 of the LaTeX rule; together they reach it.
    const std::string a = "first \\alpha here", b = "then \\beta there";
    EXPECT_FALSE(has(a, "math"));
    EXPECT_FALSE(has(b, "math"));
    const std::string_view spans[] = {a, b};
    EXPECT_NE(scanner->scan(spans, 2) & cls->tag_mask("math"), 0u);
    EXPECT_EQ(scanner->tag_matches(static_cast<uint32_t>(cls->tag_bit("math"))), 2u);
    // Tags from different spans combine.
    const std::string c = "mail me: x.y@example.org", d = "Привет, как дела?";
    const std::string_view spans2[] = {c, d, std::string_view()};
    EXPECT_EQ(cls->format(scanner->scan(spans2, 3)), "pii,cyrillic");
    // A card number split across two spans is not a card number.
    const std::string e = "4111 1111", f = "1111 1111";
    const std::string_view spans3[] = {e, f};
    EXPECT_EQ(scanner->scan(spans3, 2) & cls->tag_mask("pii"), 0u);
    // Script fraction is over all spans.
    const std::string g = "English words only here, many of them, really quite a lot of letters", h = "你好";
    const std::string_view spans4[] = {g, h};
    EXPECT_EQ(scanner->scan(spans4, 2) & cls->tag_mask("cjk"), 0u);
}

TEST_F(DefaultRules, ScannerIsReusableAndIndependent) {
    Scanner other(*cls);
    ASSERT_TRUE(other.ok());
    EXPECT_TRUE(has("john.doe@example.com", "pii"));
    EXPECT_EQ(other.scan("plain words"), 0u);
    EXPECT_EQ(scanner->scan("plain words"), 0u);  // no state left from the previous scan
    EXPECT_EQ(scanner->errors(), 0u);
}

// ---- rule files -------------------------------------------------------------------------------

namespace {
std::string load_error(const std::string& text, const std::string& name = "t.rules") {
    std::string err;
    auto c = Classifier::load_sources({{name, text}}, &err);
    EXPECT_EQ(c, nullptr) << "expected an error for: " << text;
    return err;
}
}  // namespace

TEST(RuleFiles, ParsesFormat) {
    std::string err;
    auto c = Classifier::load_sources(
        {{"a.rules", "# comment\n\n  alpha  /foo\\/bar/i  min_count=2\nbeta /x+y/  \n"},
         {"b.rules", "alpha  script:cyrillic  min_fraction=0.5\ngamma  /\\d{3}-\\d{4}/  confirm=luhn\n"}},
        &err);
    ASSERT_NE(c, nullptr) << err;
    EXPECT_EQ(c->tag_count(), 3u);
    EXPECT_EQ(c->tag_bit("alpha"), 0);
    EXPECT_EQ(c->tag_bit("beta"), 1);
    EXPECT_EQ(c->tag_bit("gamma"), 2);
    ASSERT_EQ(c->rule_count(), 4u);
    EXPECT_EQ(c->rule(0).pattern, "foo/bar");
    EXPECT_EQ(c->rule(0).min_count, 2u);
    EXPECT_EQ(c->rule(0).line, 3u);
    EXPECT_EQ(c->rule(2).script, Script::CYRILLIC);
    EXPECT_EQ(c->rule(2).file, "b.rules");
    EXPECT_EQ(c->rule(3).confirm, Confirm::LUHN);
    Scanner s(*c);
    EXPECT_EQ(s.scan("FOO/BAR"), 0u);  // min_count=2
    EXPECT_EQ(s.scan("FOO/BAR foo/bar"), 1u);
    EXPECT_EQ(s.scan("xxy"), 2u);
}

TEST(RuleFiles, ErrorsNameFileAndLine) {
    EXPECT_EQ(load_error("# c\ncode  /abc/q\n"), "t.rules:2: unknown flag 'q' (known: i s m 8 u)");
    EXPECT_EQ(load_error("code /abc(/\n").rfind("t.rules:1: bad pattern /abc(/: ", 0), 0u) << load_error("code /abc(/\n");
    EXPECT_EQ(load_error("code /abc\n"), "t.rules:1: pattern has no closing '/'");
    EXPECT_EQ(load_error("\n\nCode /abc/\n"), "t.rules:3: bad tag name 'Code' (1-47 of [a-z0-9_-])");
    EXPECT_EQ(load_error("code\n"), "t.rules:1: rule 'code' has no pattern");
    EXPECT_EQ(load_error("code abc\n"), "t.rules:1: expected /pattern/flags or script:NAME after tag 'code'");
    EXPECT_EQ(load_error("code /a/ min_count=0\n"), "t.rules:1: min_count must be an integer in [1, 1000000], got '0'");
    EXPECT_EQ(load_error("code /a/ color=red\n"), "t.rules:1: unknown option 'color' (known: min_count confirm needs_digits needs needs_run prescan min_fraction)");
    EXPECT_EQ(load_error("code /a/ confirm=crc\n"), "t.rules:1: unknown confirm 'crc' (known: luhn iban)");
    EXPECT_EQ(load_error("code /a/ min_fraction=0.5\n"), "t.rules:1: min_fraction= applies to script: rules only");
    EXPECT_EQ(load_error("x script:klingon min_fraction=0.5\n"), "t.rules:1: unknown script 'klingon' (known: cjk cyrillic greek arabic)");
    EXPECT_EQ(load_error("x script:cjk\n"), "t.rules:1: script: rule needs min_fraction=F");
    EXPECT_EQ(load_error("x script:cjk min_fraction=2\n"), "t.rules:1: min_fraction must be a number in (0, 1], got '2'");
    EXPECT_EQ(load_error("x /a*/\n"), "t.rules:1: pattern /a*/ can match empty text");
    EXPECT_EQ(load_error("x /(a)\\1/\n").rfind("t.rules:1: bad pattern /(a)\\1/", 0), 0u);  // backreference
    // The error names the right file among several.
    std::string err;
    EXPECT_EQ(Classifier::load_sources({{"ok.rules", "a /x/\n"}, {"bad.rules", "b /y/\nc /(/\n"}}, &err), nullptr);
    EXPECT_EQ(err.rfind("bad.rules:2: bad pattern /(/", 0), 0u) << err;
    // Too many tags.
    std::string many;
    for (int i = 0; i < 65; ++i) {
        const std::string k = std::to_string(i);
        many.append("t").append(k).append(" /x").append(k).append("/\n");
    }
    EXPECT_EQ(load_error(many), "t.rules:65: more than 64 tags");
}

TEST(RuleFiles, LoadDirAndFiles) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("classify_test_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "b.rules") << "second /bbb/\n";
    std::ofstream(dir / "a.rules") << "first /aaa/\n";
    std::ofstream(dir / "ignored.txt") << "junk\n";
    std::string err;
    auto c = Classifier::load_dir(dir.string(), &err);
    ASSERT_NE(c, nullptr) << err;
    EXPECT_EQ(c->tag_bit("first"), 0);  // files in name order
    EXPECT_EQ(c->tag_bit("second"), 1);
    std::ofstream(dir / "c.rules") << "third /ccc/ bogus\n";
    EXPECT_EQ(Classifier::load_dir(dir.string(), &err), nullptr);
    EXPECT_EQ(err, (dir / "c.rules").string() + ":1: option 'bogus' is not key=value");
    EXPECT_EQ(Classifier::load_files({(dir / "missing.rules").string()}, &err), nullptr);
    EXPECT_EQ(err, (dir / "missing.rules").string() + ": cannot read rules file");
    fs::remove_all(dir);
    EXPECT_EQ(Classifier::load_dir(dir.string(), &err), nullptr);
    EXPECT_NE(err.find("cannot read rules directory"), std::string::npos);
}

// ---- confirm checks ---------------------------------------------------------------------------

TEST(Confirm, Luhn) {
    EXPECT_TRUE(luhn_valid("4111111111111111", 16));
    EXPECT_TRUE(luhn_valid("4111 1111 1111 1111", 19));
    EXPECT_TRUE(luhn_valid(" 4111-1111-1111-1111", 20));  // one leading context character
    EXPECT_FALSE(luhn_valid("4111111111111112", 16));
    EXPECT_FALSE(luhn_valid("411111111111", 12));  // too short
    EXPECT_FALSE(luhn_valid("41111111111111111111", 20));  // too long
    EXPECT_FALSE(luhn_valid("0000000000000000", 16));
}

TEST(Confirm, Iban) {
    EXPECT_TRUE(iban_valid("DE89370400440532013000", 22));
    EXPECT_TRUE(iban_valid("GB82 WEST 1234 5698 7654 32", 27));
    EXPECT_FALSE(iban_valid("GB82 WEST 1234 5698 7654 33", 27));
    EXPECT_FALSE(iban_valid("1234567890123456", 16));
}

// ---- script kernels ---------------------------------------------------------------------------

TEST(ScriptKernel, Avx2MatchesScalar) {
    if (!avx2_supported()) GTEST_SKIP() << "no AVX2";
    std::mt19937_64 rng(42);
    const std::string samples[] = {"Привет, мир! 你好，世界。こんにちは Καλημέρα مرحبا abc 123 ~!@#",
                                   std::string(1000, 'a'), "\xff\xfe\x80\xbf\xc0\xe3\xed\xd0\xd3\xce\xd8\xdb"};
    for (int iter = 0; iter < 2000; ++iter) {
        std::string s;
        const size_t n = rng() % 300;
        if (iter % 3 == 0) {
            for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(rng()));
        } else {
            const std::string& base = samples[iter % 3 == 1 ? 0 : 2];
            for (size_t i = 0; i < n; ++i) s.push_back(base[rng() % base.size()]);
        }
        ScriptCounts a, b;
        count_scripts_scalar(reinterpret_cast<const uint8_t*>(s.data()), s.size(), a);
        count_scripts_avx2(reinterpret_cast<const uint8_t*>(s.data()), s.size(), b);
        ASSERT_EQ(a, b) << "iteration " << iter << " length " << n;
    }
    if (!avx512_supported()) {
        EXPECT_STREQ(script_kernel_name(), "avx2");
    }
}

TEST(ScriptKernel, Avx512MatchesScalar) {
    if (!avx512_supported()) GTEST_SKIP() << "no AVX-512 BW";
    std::mt19937_64 rng(7);
    const std::string samples[] = {"Привет, мир! 你好，世界。こんにちは Καλημέρα مرحبا abc 123 ~!@#(){};=",
                                   "4111 1111 1111 1111 and 555-123-4567, x9", "\xff\xfe\x80\xbf\xc0\xe3\xed\xd0\xd3\xce\xd8\xdb"};
    for (int iter = 0; iter < 3000; ++iter) {
        std::string s;
        const size_t n = rng() % 400;  // covers 64-byte steps, a 32-byte tail block and a short one
        if (iter % 4 == 0) {
            for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(rng()));
        } else {
            const std::string& base = samples[iter % 4 - 1];
            for (size_t i = 0; i < n; ++i) s.push_back(base[rng() % base.size()]);
        }
        ScriptCounts a, b;
        count_scripts_scalar(reinterpret_cast<const uint8_t*>(s.data()), s.size(), a);
        count_scripts_avx512(reinterpret_cast<const uint8_t*>(s.data()), s.size(), b);
        ASSERT_EQ(a, b) << "iteration " << iter << " length " << n;
        // Accumulating over two calls (two spans) also agrees.
        count_scripts_scalar(reinterpret_cast<const uint8_t*>(s.data()), s.size() / 2, a);
        count_scripts_avx512(reinterpret_cast<const uint8_t*>(s.data()), s.size() / 2, b);
        ASSERT_EQ(a, b) << "iteration " << iter << " second span";
    }
    EXPECT_STREQ(script_kernel_name(), "avx512");
}

TEST(ScriptKernel, ScalarCounts) {
    const std::string s = "ab1 Жж 中文 é";  // letters: a b 1 Ж ж 中 文 é = 8
    ScriptCounts c;
    count_scripts_scalar(reinterpret_cast<const uint8_t*>(s.data()), s.size(), c);
    EXPECT_EQ(c.letters, 8u);
    EXPECT_EQ(c.code_points, 11u);
    EXPECT_EQ(c.cyrillic, 2u);
    EXPECT_EQ(c.cjk, 2u);
    EXPECT_EQ(c.greek, 0u);
    EXPECT_EQ(c.bytes, s.size());
    const std::string code = "f(x) { y = 1; }";
    ScriptCounts d;
    count_scripts_scalar(reinterpret_cast<const uint8_t*>(code.data()), code.size(), d);
    EXPECT_EQ(d.punct, 6u);
    EXPECT_EQ(d.digits, 1u);
    // digit_window: densest pair of consecutive 32-byte blocks.
    ScriptCounts w;
    const std::string card = std::string(30, 'x') + "4111 1111 1111 1111" + std::string(100, 'y');
    count_scripts_scalar(reinterpret_cast<const uint8_t*>(card.data()), card.size(), w);
    EXPECT_EQ(w.digit_window, 16u);  // straddles the first block boundary
    ScriptCounts sparse;
    std::string prose;
    for (int i = 0; i < 20; ++i) prose += "In " + std::to_string(1990 + i) + " nothing much happened at all here. ";
    count_scripts_scalar(reinterpret_cast<const uint8_t*>(prose.data()), prose.size(), sparse);
    EXPECT_EQ(sparse.digits, 80u);
    EXPECT_LE(sparse.digit_window, 8u);
}

TEST_F(DefaultRules, DigitGateSkipsScatteredNumbers) {
    std::string prose;
    for (int i = 0; i < 20; ++i) prose += "In " + std::to_string(1990 + i) + " nothing much happened at all here. ";
    EXPECT_EQ(tags(prose), "");
    EXPECT_TRUE(has(prose + " Card: 4111 1111 1111 1111.", "pii"));
}

// @early_exit: the same tags whether the file is scanned in the shared database (prose) or in its
// own database that stops early (code-like text), and the split is chosen by punctuation density.
TEST(EarlyExit, SameTagsInBothModes) {
    const std::string a = "@early_exit\ncode /\\bdef /\ncode /;$/m min_count=2\n";
    const std::string b = "mail /[a-z]@[a-z]+\\.com\\b/\n";
    std::string err;
    auto c = Classifier::load_sources({{"a.rules", a}, {"b.rules", b}}, &err);
    ASSERT_NE(c, nullptr) << err;
    Scanner s(*c);
    const std::string prose = "a few words of plain prose, then more words to make it long, def not code; x@y.com";
    EXPECT_EQ(c->format(s.scan(prose)), "code,mail");
    EXPECT_FALSE(s.last_scan_split());
    const std::string dense = "def f(a): (a); {b}; (c) = (d);\n x = (1);\n y@z.com";
    EXPECT_EQ(c->format(s.scan(dense)), "code,mail");
    EXPECT_TRUE(s.last_scan_split());
    // Split mode still finds a tag that needs several matches, and the shared database still runs.
    const std::string dense2 = "(a) = (b);\n(c) = (d);\n{}()==;;";
    EXPECT_EQ(c->format(s.scan(dense2)), "code");
    EXPECT_TRUE(s.last_scan_split());
    EXPECT_EQ(s.errors(), 0u);
    EXPECT_EQ(load_error("@early\n"), "t.rules:1: unknown directive '@early' (known: @early_exit)");
}

TEST_F(DefaultRules, DenseCodeUsesEarlyExit) {
    std::string code;
    for (int i = 0; i < 50; ++i) code += "int f" + std::to_string(i) + "(int x) {\n  return x * 2;\n}\n";
    EXPECT_EQ(tags(code), "code");
    EXPECT_TRUE(scanner->last_scan_split());
    EXPECT_EQ(tags("Plain English prose about nothing in particular, with a comma or two."), "");
    EXPECT_FALSE(scanner->last_scan_split());
}

// ---- prescan=yes -------------------------------------------------------------------------------

namespace {
std::string read_text(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}
// The default rule files, optionally with every "prescan=yes" removed.
std::vector<Classifier::Source> default_sources(bool keep_prescan) {
    std::vector<Classifier::Source> out;
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(RULES_DIR))
        if (e.path().extension() == ".rules") names.push_back(e.path().string());
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
        std::string t = read_text(n);
        if (!keep_prescan)
            for (size_t p; (p = t.find("prescan=yes")) != std::string::npos;) t.erase(p, 11);
        out.push_back({n, t});
    }
    return out;
}
}  // namespace

TEST(Prescan, ParsesAndRefuses) {
    std::string err;
    auto c = Classifier::load_sources({{"a.rules", "code /```/ prescan=yes\ncode /def / prescan=no\n"}}, &err);
    ASSERT_NE(c, nullptr) << err;
    EXPECT_TRUE(c->rule(0).prescan);
    EXPECT_FALSE(c->rule(1).prescan);
    EXPECT_EQ(load_error("code /a/ prescan=maybe\n"), "t.rules:1: prescan must be yes or no, got 'maybe'");
    EXPECT_EQ(load_error("pii /\\d{12}/ prescan=yes needs_digits=12\n"),
              "t.rules:1: prescan= and needs_digits= exclude each other");
    EXPECT_EQ(load_error("cjk script:cjk min_fraction=0.3 prescan=yes\n"),
              "t.rules:1: prescan= applies to /pattern/ rules only");
    EXPECT_EQ(load_error("a /aa/ prescan=yes\nb /bb/ prescan=yes\nc /cc/ prescan=yes\nd /dd/ prescan=yes\n"),
              "t.rules:4: prescan=yes rules for more than 3 tags");
}

// A prescan tag drops the tag's other rules from the main scan, and nothing else: a rule of that
// tag that needs several matches, and other tags' rules, behave as without prescan.
TEST(Prescan, DecidedTagSkipsItsRules) {
    const std::string rules = "code /```/ prescan=yes\ncode /;$/m min_count=2\nmail /[a-z]@[a-z]+\\.com\\b/\n"
                              "num /\\d\\d\\d\\d\\d\\d\\d\\d/ needs_digits=8\nnum /#\\d+/ prescan=yes\n";
    std::string err;
    auto c = Classifier::load_sources({{"p.rules", rules}}, &err);
    ASSERT_NE(c, nullptr) << err;
    Scanner s(*c);
    EXPECT_EQ(c->format(s.scan("x;\ny;\n")), "code");  // no fence: the main scan finds it
    EXPECT_EQ(s.last_prescan_tags(), 0u);
    EXPECT_EQ(c->format(s.scan("```\nx;\ny;\n a@b.com")), "code,mail");
    EXPECT_EQ(s.last_prescan_tags(), c->tag_mask("code"));
    EXPECT_EQ(s.rule_matches(1), 0u);  // the ;$ rule was not scanned
    EXPECT_EQ(c->format(s.scan("#5 and 12345678")), "num");
    EXPECT_EQ(s.last_prescan_tags(), c->tag_mask("num"));
    EXPECT_EQ(s.rule_matches(3), 0u);  // the digit-gated database was skipped
    EXPECT_EQ(c->format(s.scan("only 12345678 here")), "num");
    EXPECT_EQ(s.rule_matches(3), 1u);
    EXPECT_EQ(s.errors(), 0u);
}

// The default rules give the same tags with and without prescan=yes, on prose, code, prose with a
// fenced block, dense code, math, PII and mixes.
TEST(Prescan, DefaultRulesSameTagsAsWithoutPrescan) {
    std::string err;
    auto with = Classifier::load_sources(default_sources(true), &err);
    ASSERT_NE(with, nullptr) << err;
    auto without = Classifier::load_sources(default_sources(false), &err);
    ASSERT_NE(without, nullptr) << err;
    ASSERT_EQ(with->tag_count(), without->tag_count());
    Scanner a(*with), b(*without);
    const std::string prose =
        "The quarterly report shows that revenue grew by 12 percent while costs stayed flat; could you "
        "summarise it? Спасибо за подробный ответ. El informe final estará listo la próxima semana. ";
    const std::string fence = "Here is my code:\n```python\ndef f(x):\n    return x + 1\n```\n";
    const std::string dense = "int f(int x) {\n  return x * 2;\n}\nfor (int i = 0; i < n; ++i) { s += a[i]; }\n";
    const std::vector<std::string> parts = {
        prose, fence, dense, "mail me at john.doe@example.com", "card 4111 1111 1111 1111",
        "Call (555) 123-4567", "$$E = mc^2$$ and \\frac{1}{2}", "IBAN DE89 3704 0044 0532 0130 00",
        "    ```\nindented fence", "~~~\ntilde fence\n~~~", "token ghp_abcdefghijklmnopqrstuvwxyz0123456789AB",
        "你好，世界。人工智能是计算机科学的一个分支。"};
    std::mt19937 rng(3);
    int fenced = 0;
    for (int iter = 0; iter < 400; ++iter) {
        std::string t;
        const int k = 1 + static_cast<int>(rng() % 6);
        for (int j = 0; j < k; ++j) t += parts[rng() % parts.size()] + (rng() % 2 ? "\n" : " ");
        const TagSet ta = a.scan(t), tb = b.scan(t);
        ASSERT_EQ(with->format(ta), without->format(tb)) << t;
        if (a.last_prescan_tags() & with->tag_mask("code")) ++fenced;
    }
    EXPECT_GT(fenced, 50);  // the prescan did decide code on the fenced texts
    EXPECT_EQ(b.last_prescan_tags(), 0u);
}

// ---- gates: needs=, needs_run=, the merged prescan pass ----------------------------------------

TEST(Gates, ParsesAndRefuses) {
    std::string err;
    auto c = Classifier::load_sources(
        {{"g.rules", "a /x\\\\y/ needs=\\\\,$\nb /a@b/ needs=@\nc /q×r/8 needs=×\nd /\\x{2c}z/ needs=\\x2C,\\x20\n"
                     "e /key[a-z]{20}/ needs_run=23\n"}},
        &err);
    ASSERT_NE(c, nullptr) << err;
    EXPECT_EQ(c->rule(0).needs, (std::vector<std::string>{"\\", "$"}));
    EXPECT_EQ(c->rule(1).needs, (std::vector<std::string>{"@"}));
    EXPECT_EQ(c->rule(2).needs, (std::vector<std::string>{"\xC3\x97"}));  // one two-byte item
    EXPECT_EQ(c->rule(3).needs, (std::vector<std::string>{",", " "}));
    EXPECT_EQ(c->rule(4).needs_run, 23u);
    ASSERT_NE(c->gate_table(), nullptr);
    EXPECT_EQ(load_error("a /x/ needs=\n"), "t.rules:1: needs= has an empty item");
    EXPECT_EQ(load_error("a /x/ needs=a,,b\n"), "t.rules:1: needs= has an empty item");
    EXPECT_EQ(load_error("a /x/ needs=abc\n"), "t.rules:1: needs= item of 3 bytes (items are 1 or 2 bytes)");
    EXPECT_EQ(load_error("a /x/ needs=\\q\n"), "t.rules:1: needs= escape must be \\\\ or \\xHH");
    EXPECT_EQ(load_error("a /x/ needs=1,2,3,4,5,6,7,8,9,a,b,c,d,e,f,g,h\n"), "t.rules:1: needs= has more than 16 items");
    EXPECT_EQ(load_error("a /x/ needs_run=14\n"), "t.rules:1: needs_run must be an integer in [15, 1000000], got '14'");
    EXPECT_EQ(load_error("a /x/ needs=@ needs_run=20\n"), "t.rules:1: needs= and needs_run= exclude each other");
    EXPECT_EQ(load_error("a /\\d{9}/ needs=@ needs_digits=9\n"), "t.rules:1: needs_digits= excludes needs= and needs_run=");
    EXPECT_EQ(load_error("a script:cjk min_fraction=0.3 needs=@\n"), "t.rules:1: needs= applies to /pattern/ rules only");
    EXPECT_EQ(load_error("a script:cjk min_fraction=0.3 needs_run=20\n"),
              "t.rules:1: needs_run= applies to /pattern/ rules only");
    // Seven gate bits: single-byte lists take one, two-byte lists two.
    EXPECT_EQ(load_error("a /a!/ needs=!\nb /b#/ needs=#\nc /c%/ needs=%\nd /d&/ needs=&\ne /e;/ needs=;\n"
                         "f /f:/ needs=:\ng /g</ needs=<\nh /h>/ needs=>\n"),
              "t.rules:8: needs= lists need more than 7 gate bits (each distinct list: 1 for its single bytes, 2 "
              "for its two-byte items)");
    EXPECT_EQ(load_error("a /a!/ needs=!\nb /bxy/ needs=xy\nc /czw/ needs=zw\nd /duv/ needs=uv\ne /e#/ needs=#\n"),
              "t.rules:5: needs= lists need more than 7 gate bits (each distinct list: 1 for its single bytes, 2 "
              "for its two-byte items)");
    // The same list in another order is the same list (no extra bit).
    EXPECT_NE(Classifier::load_sources({{"g.rules", "a /a!/ needs=!,#\nb /b#/ needs=#,!\nc /c%/ needs=%\nd /d&/ needs=&\n"
                                                    "e /e;/ needs=;\nf /f:/ needs=:\ng /g</ needs=<\nh /h>/ needs=>\n"}},
                                       &err),
              nullptr)
        << err;
}

// A closed gate skips its database, an open one scans it; tags follow the rules either way.
TEST(Gates, ClosedGateSkipsDatabase) {
    std::string err;
    auto c = Classifier::load_sources({{"g.rules", "mail /[a-z]@[a-z]+\\.com\\b/ needs=@\nword /\\bzebra\\b/\n"
                                                   "key /\\bkey_[A-Za-z0-9]{16,}/ needs_run=20\n"
                                                   "sym /×|÷/8 needs=×,÷\n"}},
                                      &err);
    ASSERT_NE(c, nullptr) << err;
    Scanner s(*c);
    EXPECT_EQ(c->format(s.scan("a zebra, no address")), "word");
    EXPECT_EQ(s.last_scan_passes(), 1u);  // the ungated database only
    EXPECT_EQ(c->format(s.scan("write to x@y.com")), "mail");
    EXPECT_EQ(s.last_scan_passes(), 2u);
    EXPECT_EQ(c->format(s.scan("an @ alone")), "");
    EXPECT_EQ(s.last_scan_passes(), 2u);  // open gate, no match
    EXPECT_EQ(c->format(s.scan("key_abcdefghijklmnop")), "key");       // a run of 20
    EXPECT_EQ(c->format(s.scan("key_abcdefghijklmno")), "");           // 19: the rule needs 16 after key_
    EXPECT_EQ(s.last_scan_passes(), 2u);                                // but the run of 19 opened the gate
    EXPECT_EQ(c->format(s.scan("key_abcdefghij kl")), "");
    EXPECT_EQ(s.last_scan_passes(), 1u);                                // runs of 14 and 2: closed
    EXPECT_EQ(c->format(s.scan("3 × 4")), "sym");
    EXPECT_EQ(c->format(s.scan("Ça va, ñandú")), "");                   // C3 bytes, no × or ÷
    EXPECT_EQ(s.script_counts().gates & c->gate_table()->seconds, 0u);
    EXPECT_EQ(s.errors(), 0u);
}

namespace {
// A rule file's text with every needs= and needs_run= option removed (needs_digits= stays).
std::string strip_gates(const std::string& text,
                        std::initializer_list<const char*> keys = {" needs=", " needs_run="}) {
    std::string out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        std::string line = text.substr(pos, nl - pos);
        pos = nl + 1;
        const size_t first = line.find_first_not_of(" \t");
        if (first != std::string::npos && line[first] != '#') {
            for (const char* key : keys) {
                for (size_t p; (p = line.find(key)) != std::string::npos;) {
                    size_t e = p + 1;
                    while (e < line.size() && line[e] != ' ' && line[e] != '\t') ++e;
                    line.erase(p, e - p);
                }
            }
        }
        out += line;
        out += '\n';
    }
    return out;
}
}  // namespace

// The gates of the default rules change no tag: the same rules with every needs= / needs_run=
// removed give the same tags on random mixes of texts that open, nearly open and match each gate,
// in prose mode and code-dense mode, as one span and as several. Also without the prescan (the
// merged prescan + main pass against separate passes).
TEST(Gates, DefaultRulesSameTagsAsWithoutGates) {
    std::string err;
    std::vector<Classifier::Source> plain = default_sources(true), bare = default_sources(false);
    for (auto* v : {&plain, &bare})
        for (auto& s : *v) s.text = strip_gates(s.text);
    auto with = Classifier::load_sources(default_sources(true), &err);
    ASSERT_NE(with, nullptr) << err;
    auto without = Classifier::load_sources(plain, &err);
    ASSERT_NE(without, nullptr) << err;
    auto neither = Classifier::load_sources(bare, &err);  // no gates, no prescan
    ASSERT_NE(neither, nullptr) << err;
    ASSERT_NE(with->gate_table(), nullptr);
    ASSERT_EQ(without->gate_table(), nullptr);
    Scanner a(*with), b(*without), n(*neither);
    const std::vector<std::string> parts = {
        // prose and code
        "The quarterly report shows that revenue grew by 12 percent while costs stayed flat. ",
        "Спасибо за подробный ответ. El informe final estará listo la próxima semana. ",
        "Here is my code:\n```python\ndef f(x):\n    return x + 1\n```\n",
        "int f(int x) {\n  return x * 2;\n}\n", "printf(\"%d\\n\", x);\n", "    ```\n", "~~~\n", "`inline`",
        // LaTeX gate (\ $ ^): matches, and the gate bytes without a match
        "\\frac{1}{2}", "\\alpha and \\beta", "\\begin{align}", "$$E = mc^2$$", "\\[ x + y \\]", "$a^2$ and $b_1$",
        "x^2 + y^2", "f^{(n)}", "C:\\path\\to", "costs $5", "^_^", "\\", "$", "^",
        // symbols: 3+ needed; two-byte items (× ÷ ± ¬) and E2 8x; cross pairs and E2 80 punctuation
        "∑ ∫ √", "× ÷ ±", "a × b × c × d", "≤ ≥ ≠", "→ ⇒ ⇔", "ℝ ℕ", "¬ ∧ ∨", "×", "÷÷", "±",
        "Ça va, ñandú, École, È", "“quoted” — dash … ellipsis", "·●◆", "--", "---", "a -- b",
        // three of one two-byte item each (every item of the list must be needed to pass)
        "ℝ ℕ ℤ", "→ → →", "⇒ ⇔ ⇒", "∑ ∏ ∫", "≤ ≥ ≠", "⊂ ⊆ ⊃", "¬ ¬ ¬", "± ± ±", "× × ×", "÷ ÷ ÷",
        // f(x) = ... behind ") "
        "f(x) = 2x + 1", "g(t) = t", "(see above) and", ")=", ") = 3", "h(y)= 1",
        // equations and functions that stay in the main pass
        "2x + 3 = 7", "3 * 4 = 12", "sin(x) and cos(y)", "log(n) ln(x)", "matrix eigenvalue theorem lemma",
        // e-mail behind @
        "mail me at john.doe@example.com", "user@localhost", "@handle", "a@b.co", "@",
        // secrets behind a token run of 15+
        "xoxb-1234567890", "xoxb-123456789", "xoxb-12345678901234", "sk-abcdefghijklmnopqrst",
        "sk-abcdefghijklmnopqrs", "sk_live_abcdefghijklmnop", "AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPL",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "AIzaSyA1234567890abcdefghijklmnopqrstu",
        "eyJhbGciOi.eyJzdWIiOi.abcdefgh", "eyJhbGciO.eyJzdWIiO.abcdefg", "github_pat_" + std::string(60, 'a'),
        "-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----", "-----BEGIN PUBLIC KEY-----",
        "copy-on-write", "state-of-the-art-design", "www.example.com/path", "1.4142135623730951",
        // digits and CJK
        "card 4111 1111 1111 1111", "Call (555) 123-4567", "IBAN DE89 3704 0044 0532 0130 00",
        "你好，世界。人工智能是计算机科学的一个分支。"};
    std::mt19937 rng(11);
    int merged = 0, split = 0, opened = 0;
    for (int iter = 0; iter < 1500; ++iter) {
        std::vector<std::string> pieces;
        const int k = 1 + static_cast<int>(rng() % 7);
        for (int j = 0; j < k; ++j) {
            std::string p = parts[rng() % parts.size()];
            // Sometimes glue a piece to a neighbour without a separator (runs and pairs across pieces).
            const int sep = static_cast<int>(rng() % 4);
            pieces.push_back(p + (sep == 0 ? "" : sep == 1 ? "\n" : " "));
        }
        std::string t;
        for (const auto& p : pieces) t += p;
        const TagSet ta = a.scan(t), tb = b.scan(t), tn = n.scan(t);
        ASSERT_EQ(with->format(ta), without->format(tb)) << t;
        ASSERT_EQ(with->format(ta), neither->format(tn)) << t;
        merged += a.last_scan_merged();
        split += a.last_scan_split();
        opened += (a.script_counts().gates & ~GATE_RUN) != 0;
        // The same pieces as separate spans.
        std::vector<std::string_view> spans(pieces.begin(), pieces.end());
        const TagSet sa = a.scan(spans.data(), spans.size()), sb = b.scan(spans.data(), spans.size());
        ASSERT_EQ(with->format(sa), without->format(sb)) << t;
    }
    EXPECT_GT(merged, 50);
    EXPECT_GT(split, 50);
    EXPECT_GT(opened, 300);
    EXPECT_EQ(a.errors() + b.errors() + n.errors(), 0u);
}

// Each default gate on its own: the minimal matching text opens it and is tagged; the same text
// without the gate's bytes is not a match either way.
TEST_F(DefaultRules, GatesOpenOnTheirEdge) {
    const GateTable* gt = cls->gate_table();
    ASSERT_NE(gt, nullptr);
    EXPECT_TRUE(has("xoxb-1234567890 ok", "secrets"));   // run of exactly 15
    EXPECT_NE(scanner->script_counts().gates & GATE_RUN, 0u);
    EXPECT_FALSE(has("xoxb-123456789 ok", "secrets"));   // 14
    EXPECT_EQ(scanner->script_counts().gates & GATE_RUN, 0u);
    EXPECT_TRUE(has("a ∑ b ∫ c √", "math"));
    EXPECT_TRUE(has("2 × 3 ÷ 4 ± 1", "math"));            // two-byte items and a single byte
    EXPECT_FALSE(has("Ça, ñ, É, È and ·", "math"));      // cross pairs open the gate, no match
    EXPECT_TRUE(has("Let f(x) = x and more", "math"));
    EXPECT_TRUE(has("x \\frac{1}{2} y", "math"));
    EXPECT_TRUE(has("-----BEGIN EC PRIVATE KEY-----", "secrets"));
    EXPECT_TRUE(has("to: a@b.co", "pii"));
    EXPECT_TRUE(has("```\nx\n```", "code"));
}

// The scalar gate facts by definition: single bytes, two-byte items (also across a 64-byte step,
// never across spans), runs of 15 token bytes.
TEST(GateFacts, ScalarDefinition) {
    GateTable gt;
    gt.cls[static_cast<uint8_t>('@')] = 1;       // list 0: single '@'
    gt.cls[static_cast<uint8_t>('(')] |= 2;      // list 1: pair "()" — first byte bit 1
    gt.cls[static_cast<uint8_t>(')')] |= 4;      //                  second byte bit 2
    gt.singles = 1;
    gt.seconds = 4;
    gt.runs = true;
    gt.finish();
    auto facts = [&](const std::string& s) {
        ScriptCounts c;
        count_scripts_scalar(reinterpret_cast<const uint8_t*>(s.data()), s.size(), c, &gt);
        return c.gates;
    };
    EXPECT_EQ(facts("plain words"), 0u);
    EXPECT_EQ(facts("a@b"), 1u);
    EXPECT_EQ(facts("f()"), 4u);
    EXPECT_EQ(facts("f( )"), 0u);
    EXPECT_EQ(facts(")("), 0u);
    EXPECT_EQ(facts(std::string(63, ' ') + "()"), 4u);  // across the 64-byte step
    EXPECT_EQ(facts(std::string(15, 'a')), GATE_RUN);
    EXPECT_EQ(facts(std::string(14, 'a') + " " + std::string(14, 'b')), 0u);
    EXPECT_EQ(facts(std::string(55, ' ') + std::string(15, '-')), GATE_RUN);  // across the step
    EXPECT_EQ(facts("a.b_c-d0123456789"), GATE_RUN);
    ScriptCounts two;  // two spans: no pair or run joins them
    std::string x(10, 'a'), y(")");
    x += '(';
    y.append(10, 'b');
    count_scripts_scalar(reinterpret_cast<const uint8_t*>(x.data()), x.size(), two, &gt);
    count_scripts_scalar(reinterpret_cast<const uint8_t*>(y.data()), y.size(), two, &gt);
    EXPECT_EQ(two.gates, 0u);
}

// The AVX2 and AVX-512 kernels give exactly the scalar counts and gate facts, with the default
// rules' gate table and a dense synthetic one, on random texts of every length up to 600 bytes
// (64-byte steps, 32-byte blocks, short tails), also accumulated over two spans.
TEST(GateFacts, KernelsMatchScalar) {
    std::string err;
    auto c = Classifier::load_dir(RULES_DIR, &err);
    ASSERT_NE(c, nullptr) << err;
    GateTable dense;
    for (int b = 0; b < 256; ++b)
        if (b % 7 == 0 || b == '\\' || b == '$' || b == 0xC3 || b == 0xE2) dense.cls[b] = static_cast<uint8_t>(1 + b % 3);
    for (int b : {int{'('}, 0xC3, 0xE2, int{'-'}}) dense.cls[b] |= 8;   // first bytes (bit 3)
    for (int b : {int{')'}, 0x97, 0x88, int{'-'}}) dense.cls[b] |= 16;  // second bytes (bit 4)
    for (int b : {'x', 'y'}) dense.cls[b] |= 32;              // first bytes (bit 5)
    for (int b : {'y', 'z'}) dense.cls[b] |= 64;              // second bytes (bit 6)
    dense.singles = 7;
    dense.seconds = 16 | 64;
    dense.runs = true;
    dense.finish();
    const GateTable* tables[] = {c->gate_table(), &dense, nullptr};
    std::mt19937_64 rng(5);
    const std::string palette[] = {
        "abcdefghij0123456789_.-xyz", "Привет × ÷ ± ∑ ≤ → ñ É — “”", " \n\t()[]{}@\\$^`~;=,!?",
        std::string("\xff\xfe\x80\xbf\xc0\xc3\x97\xe2\x88\x91\xd0\xd3\xce\xd8\xdb\xe3\xed", 17)};
    for (int iter = 0; iter < 3000; ++iter) {
        std::string s;
        const size_t n = rng() % 600;
        const int mode = iter % 5;
        for (size_t i = 0; i < n; ++i) {
            if (mode == 4) {
                s.push_back(static_cast<char>(rng()));
            } else {
                // Mostly one palette, runs of token characters of random length.
                const std::string& p = palette[(rng() % 4 == 0) ? rng() % 4 : static_cast<size_t>(mode)];
                s.push_back(p[rng() % p.size()]);
            }
        }
        if (mode == 0 && n > 20) {  // a token run of 14..16 at a random place
            const size_t len = 14 + rng() % 3, at = rng() % (n - len);
            for (size_t i = 0; i < len; ++i) s[at + i] = 'k';
            if (at > 0) s[at - 1] = ' ';
            if (at + len < n) s[at + len] = ' ';
        }
        for (const GateTable* gt : tables) {
            const auto* p = reinterpret_cast<const uint8_t*>(s.data());
            ScriptCounts ref;
            count_scripts_scalar(p, s.size(), ref, gt);
            count_scripts_scalar(p, s.size() / 3, ref, gt);  // a second span
            if (avx2_supported()) {
                ScriptCounts got;
                count_scripts_avx2(p, s.size(), got, gt);
                count_scripts_avx2(p, s.size() / 3, got, gt);
                ASSERT_EQ(ref, got) << "avx2 iteration " << iter << " length " << n;
            }
            if (avx512_supported()) {
                ScriptCounts got;
                count_scripts_avx512(p, s.size(), got, gt);
                count_scripts_avx512(p, s.size() / 3, got, gt);
                ASSERT_EQ(ref, got) << "avx512 iteration " << iter << " length " << n;
            }
        }
    }
}

// Prose mode with an open prescan: one pass for the prescan and main rules; a prescan tag that did
// not fire scans its own remaining rules and stops once set; code-dense text keeps separate passes.
TEST(Prescan, MergedPassAndRemainder) {
    const std::string rules = "@early_exit\ncode /```/ prescan=yes needs=`\ncode /;$/m min_count=2\n"
                              "code /\\bdef /\nmail /[a-z]@[a-z]+\\.com\\b/\nword /\\bzebra\\b/\n";
    std::string err;
    auto c = Classifier::load_sources({{"p.rules", rules}}, &err);
    ASSERT_NE(c, nullptr) << err;
    Scanner s(*c);
    EXPECT_EQ(c->format(s.scan("no backtick, a zebra and def here")), "code,word");
    EXPECT_FALSE(s.last_scan_merged());  // prescan closed: one main pass
    EXPECT_EQ(s.last_scan_passes(), 1u);
    EXPECT_EQ(c->format(s.scan("```\nsome prose with a zebra, x@y.com\n```")), "code,mail,word");
    EXPECT_TRUE(s.last_scan_merged());
    EXPECT_EQ(s.last_scan_passes(), 1u);  // the fence decided code: no remainder
    EXPECT_EQ(s.last_prescan_tags(), c->tag_mask("code"));
    EXPECT_EQ(c->format(s.scan("a `quote` then def and def and def")), "code");
    EXPECT_TRUE(s.last_scan_merged());
    EXPECT_EQ(s.last_scan_passes(), 2u);  // merged, then the code remainder
    EXPECT_EQ(s.last_prescan_tags(), 0u);
    EXPECT_EQ(s.rule_matches(2), 1u);     // the remainder stopped at the first def
    EXPECT_EQ(c->format(s.scan("a `quote` and nothing else")), "");
    EXPECT_EQ(s.last_scan_passes(), 2u);
    const std::string dense = "`x` (a) = (b);\n(c) = (d);\n{}()==;;";
    EXPECT_EQ(c->format(s.scan(dense)), "code");
    EXPECT_TRUE(s.last_scan_split());
    EXPECT_FALSE(s.last_scan_merged());
    EXPECT_EQ(s.errors(), 0u);
}

// ---- needs_digits=: scanned only around dense digit pairs ------------------------------------

// The default rules give the same tags when the digit-gated database scans only the regions
// around dense block pairs as when the same rules (needs_digits= removed) scan whole spans: long
// random texts with numbers placed anywhere — valid and invalid cards, phones, IBANs, years,
// long digit runs, digits glued to words — so region edges fall inside and next to numbers.
TEST(DigitRegions, DefaultRulesSameTagsAsWholeSpans) {
    std::string err;
    std::vector<Classifier::Source> whole = default_sources(true);
    for (auto& s : whole) s.text = strip_gates(s.text, {" needs_digits="});
    auto with = Classifier::load_sources(default_sources(true), &err);
    ASSERT_NE(with, nullptr) << err;
    auto without = Classifier::load_sources(whole, &err);
    ASSERT_NE(without, nullptr) << err;
    Scanner a(*with), b(*without);
    const std::vector<std::string> filler = {
        "The quarterly report shows that revenue grew while costs stayed flat. ",
        "Спасибо за подробный ответ, мы вернёмся к этому позже. ", "你好，世界。人工智能是计算机科学的一个分支。",
        "El informe final estará listo la próxima semana. ", "int f(int x) {\n  return x * 2;\n}\n", "\n",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "- ", "x"};
    const std::vector<std::string> numbers = {
        "4111 1111 1111 1111", "4111111111111111", "4111 1111 1111 1112", "5500-0000-0000-0004",
        "+44 20 7946 0958", "(555) 123-4567", "555-123-4567", "555.123.4567", "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432", "(1755-1826)", "2023-10-05", "12", "7", "1234567890123456789012345678901234567890",
        "x4111111111111111", "4111111111111111x", "v1.2.3.4.5.6.7.8", "00000000000000", "+1",
        // the longest matches (40, 33 and 38 bytes): a too narrow margin cuts them
        "+49 (1234) 12345 12345 12345 12345 12345", "FR14 2004 1010 0505 0001 3M02 606",
        "MT84 MALT 0110 0001 2345 MTLC AST0 01S"};
    std::mt19937 rng(17);
    int tagged = 0, partial = 0, scanned = 0;
    for (int iter = 0; iter < 1500; ++iter) {
        std::string t;
        const size_t target = 200 + rng() % 5000;
        while (t.size() < target) {
            if (rng() % 4 == 0) t += numbers[rng() % numbers.size()];
            else t += filler[rng() % filler.size()];
            if (rng() % 3 == 0) t += ' ';
        }
        const TagSet ta = a.scan(t), tb = b.scan(t);
        ASSERT_EQ(with->format(ta), without->format(tb)) << t;
        tagged += (ta & with->tag_mask("pii")) != 0;
        scanned += a.last_digit_bytes() > 0;
        partial += a.last_digit_bytes() > 0 && a.last_digit_bytes() < t.size();
    }
    EXPECT_GT(tagged, 300);
    EXPECT_GT(partial, 300);  // region scans happened, not only whole spans
    EXPECT_GT(scanned, 1000);
    EXPECT_EQ(a.errors() + b.errors(), 0u);
}

// Region geometry and the edge rule, on a rule that breaks its own gate (a match holds one digit,
// not 8): the digit just inside a region's first byte matches only because the region starts
// there (`^`), and that report is dropped; a match inside the region counts.
TEST(DigitRegions, EdgeArtefactsDroppedAndRegionsBounded) {
    std::string err;
    auto c = Classifier::load_sources({{"d.rules", "num /(^|[^a-z])\\d/ needs_digits=8\n"}}, &err);
    ASSERT_NE(c, nullptr) << err;
    Scanner s(*c);
    // Width 2: margin 3. Dense digits in block 4 (bytes 128..159): the pairs of blocks 3-4 and 4-5
    // are dense, their regions [96 - 3, 160 + 3) and [128 - 3, 192 + 3) merge into [93, 195).
    std::string t(256, 'a');
    for (int i = 0; i < 8; ++i) t[128 + i] = 'b';
    t[93] = '5';  // region's first byte, preceded by a letter: no match in the whole text
    const std::string dense = t.substr(0, 128) + "12345678" + t.substr(136);
    EXPECT_EQ(c->format(s.scan(dense)), "num");  // "12345678" itself: '1' after 'a' fails, "a1" no;
    // the digits after digits match ([^a-z] = '1' before '2').
    EXPECT_EQ(s.last_digit_bytes(), 195u - 93u);
    std::string lone = dense;
    for (int i = 0; i < 8; ++i) lone[128 + i] = 'b';
    lone[128] = '1', lone[130] = '2', lone[132] = '3', lone[134] = '4', lone[136] = '5', lone[138] = '6';
    lone[140] = '7', lone[142] = '8';  // 8 digits, each after a letter: no match in the whole text
    const uint64_t rej = s.edge_rejects();
    EXPECT_EQ(c->format(s.scan(lone)), "");
    EXPECT_EQ(s.edge_rejects(), rej + 1);  // the '5' at byte 93 was reported and dropped
    EXPECT_EQ(s.last_digit_bytes(), 195u - 93u);
    // Without dense digits the database is not scanned at all.
    EXPECT_EQ(c->format(s.scan(t)), "");
    EXPECT_EQ(s.last_digit_bytes(), 0u);
    // Unbounded matches: whole spans, as before.
    auto u = Classifier::load_sources({{"u.rules", "num /\\d{8,}/ needs_digits=8\n"}}, &err);
    ASSERT_NE(u, nullptr) << err;
    Scanner su(*u);
    EXPECT_EQ(u->format(su.scan(dense)), "num");
    EXPECT_EQ(su.last_digit_bytes(), dense.size());
}
