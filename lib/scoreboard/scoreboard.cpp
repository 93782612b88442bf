#include "scoreboard/scoreboard.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>

namespace tlb::scoreboard {

namespace {

constexpr float EWMA_ALPHA = 0.1f;
constexpr float RATIO_MIN = 0.2f;
constexpr float RATIO_MAX = 10.0f;

uint64_t wall_ns() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Seqlock read of a trivially copyable block whose first member is the seq word. The copy races
// benignly with the single writer; the sequence check discards torn copies (Linux seqcount,
// Boehm "Can seqlocks get along with programming language memory models?": acquire load of seq,
// copy, acquire fence, relaxed re-load).
template <typename T>
bool seq_read(const T& src, T& dst) {
    // Writers are rare (config changes, one scrape per second), so the retry limit is only a
    // guard against a control plane that died mid-write.
    for (int attempt = 0; attempt < (1 << 20); ++attempt) {
        uint32_t s1 = src.seq.load(std::memory_order_acquire);
        if (s1 & 1u) {
            cpu_relax();
            continue;
        }
        std::memcpy(static_cast<void*>(&dst), static_cast<const void*>(&src), sizeof(T));
        std::atomic_thread_fence(std::memory_order_acquire);
        uint32_t s2 = src.seq.load(std::memory_order_relaxed);
        if (s1 == s2) return true;
    }
    return false;  // writer stuck mid-update (crashed control plane): caller keeps its old copy
}

inline void add_gauge(std::atomic<int64_t>& a, int64_t d) {
    // Single writer: load + store, no locked RMW.
    a.store(a.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}
inline void add_total(std::atomic<uint64_t>& a, uint64_t d) {
    a.store(a.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}

void copy_name(char* dst, const std::string& s) {
    size_t n = std::min<size_t>(s.size(), NAME_LEN - 1);
    std::memcpy(dst, s.data(), n);
    dst[n] = '\0';
}

}  // namespace

void seq_write_begin(std::atomic<uint32_t>& seq) {
    seq.store(seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
}
void seq_write_end(std::atomic<uint32_t>& seq) {
    seq.store(seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

Scoreboard::~Scoreboard() {
    if (_seg) munmap(_seg, _size);
    if (_unlink_on_close && !_shm_name.empty()) shm_unlink(_shm_name.c_str());
}

void Scoreboard::init_header(Segment* seg, uint32_t n_workers) {
    std::memset(static_cast<void*>(seg), 0, sizeof(Segment));
    SegmentHeader& h = seg->header;
    h.magic = MAGIC;
    h.version = LAYOUT_VERSION;
    h.total_size = sizeof(Segment);
    h.max_backends = MAX_BACKENDS;
    h.max_workers = MAX_WORKERS;
    h.max_models = MAX_MODELS;
    h.max_tags = MAX_TAGS;
    h.header_size = sizeof(SegmentHeader);
    h.backend_config_size = sizeof(BackendConfig);
    h.control_live_size = sizeof(ControlLive);
    h.worker_load_size = sizeof(WorkerLoad);
    h.n_workers = std::min(std::max(n_workers, 1u), MAX_WORKERS);
    h.created_unix_ns = wall_ns();
    copy_name(h.zone_names[0], "default");
    h.n_zones = 1;
    for (uint32_t b = 0; b < MAX_BACKENDS; ++b) {
        seg->control[b].ewma_ttft_ratio = 1.0f;
        seg->control[b].ewma_decode_ratio = 1.0f;
    }
}

std::unique_ptr<Scoreboard> Scoreboard::create(const std::string& shm_name, uint32_t n_workers,
                                               std::string* err) {
    shm_unlink(shm_name.c_str());
    int fd = shm_open(shm_name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0644);
    if (fd < 0) {
        if (err) *err = "shm_open(" + shm_name + "): " + std::strerror(errno);
        return nullptr;
    }
    if (ftruncate(fd, sizeof(Segment)) != 0) {
        if (err) *err = "ftruncate(" + shm_name + "): " + std::strerror(errno);
        close(fd);
        shm_unlink(shm_name.c_str());
        return nullptr;
    }
    void* p = mmap(nullptr, sizeof(Segment), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        if (err) *err = "mmap(" + shm_name + "): " + std::strerror(errno);
        shm_unlink(shm_name.c_str());
        return nullptr;
    }
    std::unique_ptr<Scoreboard> sb(new Scoreboard());
    sb->_seg = static_cast<Segment*>(p);
    sb->_size = sizeof(Segment);
    sb->_shm_name = shm_name;
    sb->_unlink_on_close = true;
    init_header(sb->_seg, n_workers);
    return sb;
}

std::unique_ptr<Scoreboard> Scoreboard::create_private(uint32_t n_workers) {
    void* p = mmap(nullptr, sizeof(Segment), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) return nullptr;
    std::unique_ptr<Scoreboard> sb(new Scoreboard());
    sb->_seg = static_cast<Segment*>(p);
    sb->_size = sizeof(Segment);
    init_header(sb->_seg, n_workers);
    return sb;
}

std::unique_ptr<Scoreboard> Scoreboard::attach(const std::string& shm_name, bool writable,
                                               std::string* err) {
    int fd = shm_open(shm_name.c_str(), writable ? O_RDWR : O_RDONLY, 0);
    if (fd < 0) {
        if (err) *err = "shm_open(" + shm_name + "): " + std::strerror(errno);
        return nullptr;
    }
    struct stat st {};
    if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < sizeof(SegmentHeader)) {
        if (err) *err = shm_name + ": segment too small to hold a header";
        close(fd);
        return nullptr;
    }
    void* p = mmap(nullptr, st.st_size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
                   fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        if (err) *err = "mmap(" + shm_name + "): " + std::strerror(errno);
        return nullptr;
    }
    const auto* h = static_cast<const SegmentHeader*>(p);
    std::string why;
    if (h->magic != MAGIC) why = "bad magic (not a tokenlb scoreboard)";
    else if (h->version != LAYOUT_VERSION)
        why = "layout version " + std::to_string(h->version) + ", this build reads version " +
              std::to_string(LAYOUT_VERSION);
    else if (h->total_size != sizeof(Segment) || static_cast<size_t>(st.st_size) != sizeof(Segment))
        why = "segment size " + std::to_string(h->total_size) + " != expected " +
              std::to_string(sizeof(Segment));
    if (!why.empty()) {
        munmap(p, st.st_size);
        if (err) *err = shm_name + ": " + why;
        return nullptr;
    }
    std::unique_ptr<Scoreboard> sb(new Scoreboard());
    sb->_seg = static_cast<Segment*>(p);
    sb->_size = st.st_size;
    sb->_shm_name = shm_name;
    return sb;
}

int Scoreboard::name_id(char (*table)[NAME_LEN], uint32_t& count, uint32_t cap,
                        const std::string& name, bool add) {
    if (name.empty() || name.size() >= NAME_LEN) return -1;
    for (uint32_t i = 0; i < count; ++i)
        if (name == table[i]) return static_cast<int>(i);
    if (!add || count >= cap) return -1;
    SegmentHeader& h = _seg->header;
    seq_write_begin(h.seq);
    copy_name(table[count], name);
    ++count;
    seq_write_end(h.seq);
    h.generation.fetch_add(1, std::memory_order_release);
    return static_cast<int>(count - 1);
}

int Scoreboard::model_id(const std::string& name, bool add) {
    return name_id(_seg->header.model_names, _seg->header.n_models, MAX_MODELS, name, add);
}
int Scoreboard::tag_id(const std::string& name, bool add) {
    return name_id(_seg->header.tag_names, _seg->header.n_tags, MAX_TAGS, name, add);
}
int Scoreboard::zone_id(const std::string& name, bool add) {
    return name_id(_seg->header.zone_names, _seg->header.n_zones, MAX_ZONES, name, add);
}

uint64_t Scoreboard::tag_mask(const std::vector<std::string>& tags, bool add) {
    uint64_t m = 0;
    for (const auto& t : tags) {
        int id = tag_id(t, add);
        if (id >= 0) m |= 1ull << id;
    }
    return m;
}

int Scoreboard::add_backend(const BackendSpec& spec, std::string* err) {
    SegmentHeader& h = _seg->header;
    auto fail = [&](const std::string& m) {
        if (err) *err = "backend '" + spec.name + "': " + m;
        return -1;
    };
    if (h.n_backends >= MAX_BACKENDS) return fail("scoreboard full (MAX_BACKENDS)");
    if (spec.name.empty() || spec.name.size() >= NAME_LEN) return fail("name empty or too long");
    if (spec.models.empty()) return fail("no models");
    uint64_t models = 0;
    for (const auto& m : spec.models) {
        int id = model_id(m, true);
        if (id < 0) return fail("model '" + m + "' does not fit the model table");
        models |= 1ull << id;
    }
    uint64_t tags = 0;
    for (const auto& t : spec.tags) {
        int id = tag_id(t, true);
        if (id < 0) return fail("tag '" + t + "' does not fit the tag table");
        tags |= 1ull << id;
    }
    int zone = zone_id(spec.trust_zone, true);
    if (zone < 0) return fail("trust zone '" + spec.trust_zone + "' does not fit the zone table");
    uint32_t b = h.n_backends;
    BackendConfig& c = _seg->config[b];
    seq_write_begin(c.seq);
    c.ipv4 = spec.ipv4;
    c.port = spec.port;
    c.health = static_cast<uint8_t>(Health::Up);
    c.circuit = static_cast<uint8_t>(Circuit::Closed);
    c.drain = 0;
    c.configured = 1;
    c.weight = spec.weight;
    c.max_context = spec.max_context;
    c.trust_zone = static_cast<uint32_t>(zone);
    c.models = models;
    c.tags = tags;
    c.profile = spec.profile;
    copy_name(c.name, spec.name);
    seq_write_end(c.seq);
    seq_write_begin(h.seq);
    h.n_backends = b + 1;
    seq_write_end(h.seq);
    h.generation.fetch_add(1, std::memory_order_release);
    return static_cast<int>(b);
}

#define TLB_SB_SET(field, value)                  \
    do {                                          \
        BackendConfig& c = _seg->config[b];       \
        seq_write_begin(c.seq);                   \
        c.field = (value);                        \
        seq_write_end(c.seq);                     \
        _seg->header.generation.fetch_add(1, std::memory_order_release); \
    } while (0)

void Scoreboard::set_health(uint32_t b, Health v) { TLB_SB_SET(health, static_cast<uint8_t>(v)); }
void Scoreboard::set_circuit(uint32_t b, Circuit v) { TLB_SB_SET(circuit, static_cast<uint8_t>(v)); }
void Scoreboard::set_drain(uint32_t b, bool v) { TLB_SB_SET(drain, v ? 1 : 0); }
void Scoreboard::set_weight(uint32_t b, uint16_t v) { TLB_SB_SET(weight, v); }
#undef TLB_SB_SET

void Scoreboard::set_metrics(uint32_t b, float kv_usage, uint32_t waiting, uint32_t running,
                             bool stale, uint64_t now_ns) {
    ControlLive& c = _seg->control[b];
    seq_write_begin(c.seq);
    c.kv_usage = kv_usage;
    c.waiting = waiting;
    c.running = running;
    c.stale = stale ? 1 : 0;
    c.metrics_valid = 1;
    c.updated_ns = now_ns;
    seq_write_end(c.seq);
}

void Scoreboard::set_stale(uint32_t b, bool stale) {
    ControlLive& c = _seg->control[b];
    seq_write_begin(c.seq);
    c.stale = stale ? 1 : 0;
    seq_write_end(c.seq);
}

void Scoreboard::learn(const Observation& o, uint64_t now_ns) {
    if (o.backend >= MAX_BACKENDS) return;
    ControlLive& c = _seg->control[o.backend];
    auto ewma = [](float old, float x, bool first) { return first ? x : old + EWMA_ALPHA * (x - old); };
    seq_write_begin(c.seq);
    bool first = c.samples == 0;
    if (o.uncached_prompt_tokens > 0 && o.ttft_s > 0)
        c.ewma_ttft_per_prompt_token_s =
            ewma(c.ewma_ttft_per_prompt_token_s,
                 static_cast<float>(o.ttft_s / o.uncached_prompt_tokens), first);
    if (o.predicted_ttft_s > 0 && o.ttft_s > 0) {
        // Ratios are learned in the log domain so one 10x outlier does not dominate.
        float r = std::clamp(static_cast<float>(o.ttft_s / o.predicted_ttft_s), RATIO_MIN, RATIO_MAX);
        float lr = std::log(std::max(c.ewma_ttft_ratio, 1e-3f));
        c.ewma_ttft_ratio = std::exp(lr + EWMA_ALPHA * (std::log(r) - lr));
    }
    if (o.output_tokens > 1 && o.decode_s > 0) {
        float tps = static_cast<float>((o.output_tokens - 1) / o.decode_s);
        c.ewma_decode_tps = ewma(c.ewma_decode_tps, tps, c.ewma_decode_tps == 0);
        if (o.predicted_decode_tps > 0) {
            float r = std::clamp(static_cast<float>(tps / o.predicted_decode_tps), RATIO_MIN, RATIO_MAX);
            float lr = std::log(std::max(c.ewma_decode_ratio, 1e-3f));
            c.ewma_decode_ratio = std::exp(lr + EWMA_ALPHA * (std::log(r) - lr));
        }
    }
    ++c.samples;
    c.updated_ns = now_ns;
    seq_write_end(c.seq);
}

void Scoreboard::learn_output(uint32_t model, uint32_t output_tokens) {
    if (model >= MAX_MODELS) return;
    ModelLive& m = _seg->model_live[model];
    seq_write_begin(m.seq);
    m.ewma_output_tokens = m.samples == 0
                               ? static_cast<float>(output_tokens)
                               : m.ewma_output_tokens + 0.05f * (output_tokens - m.ewma_output_tokens);
    ++m.samples;
    seq_write_end(m.seq);
}

Ticket Scoreboard::on_route(uint32_t worker, uint32_t backend, uint32_t uncached_prompt_tokens,
                            uint32_t expected_output_tokens) {
    Ticket t{backend, worker, uncached_prompt_tokens, expected_output_tokens, false};
    WorkerLoad& l = _seg->load[backend][worker];
    add_gauge(l.outstanding, 1);
    add_gauge(l.queued_prompt_tokens, uncached_prompt_tokens);
    add_gauge(l.remaining_decode_tokens, expected_output_tokens);
    add_total(l.routed_total, 1);
    return t;
}

void Scoreboard::on_first_byte(Ticket& t) {
    if (t.first_byte) return;
    WorkerLoad& l = _seg->load[t.backend][t.worker];
    add_gauge(l.queued_prompt_tokens, -static_cast<int64_t>(t.uncached_prompt_tokens));
    add_gauge(l.running_decode, 1);
    t.first_byte = true;
}

void Scoreboard::on_complete(Ticket& t, uint32_t true_prompt_tokens, uint32_t true_output_tokens) {
    WorkerLoad& l = _seg->load[t.backend][t.worker];
    if (t.first_byte) add_gauge(l.running_decode, -1);
    else add_gauge(l.queued_prompt_tokens, -static_cast<int64_t>(t.uncached_prompt_tokens));
    add_gauge(l.outstanding, -1);
    add_gauge(l.remaining_decode_tokens, -static_cast<int64_t>(t.expected_output_tokens));
    add_total(l.completed_total, 1);
    add_total(l.prompt_tokens_total, true_prompt_tokens);
    add_total(l.output_tokens_total, true_output_tokens);
    t.first_byte = false;
    t.uncached_prompt_tokens = 0;
    t.expected_output_tokens = 0;
}

uint32_t Scoreboard::n_backends() const {
    return std::min(_seg->header.n_backends, MAX_BACKENDS);
}

bool Scoreboard::read_config(uint32_t b, BackendConfig& out) const {
    if (b >= MAX_BACKENDS) return false;
    return seq_read(_seg->config[b], out);
}

bool Scoreboard::read_control(uint32_t b, ControlLive& out) const {
    if (b >= MAX_BACKENDS) return false;
    return seq_read(_seg->control[b], out);
}

std::string Scoreboard::model_name(uint32_t m) const {
    if (m >= MAX_MODELS) return {};
    return std::string(_seg->header.model_names[m], strnlen(_seg->header.model_names[m], NAME_LEN));
}
std::string Scoreboard::tag_name(uint32_t t) const {
    if (t >= MAX_TAGS) return {};
    return std::string(_seg->header.tag_names[t], strnlen(_seg->header.tag_names[t], NAME_LEN));
}
std::string Scoreboard::zone_name(uint32_t z) const {
    if (z >= MAX_ZONES) return {};
    return std::string(_seg->header.zone_names[z], strnlen(_seg->header.zone_names[z], NAME_LEN));
}

void Scoreboard::read_load(uint32_t b, int64_t& outstanding, int64_t& queued_prompt,
                           int64_t& running, int64_t& remaining_decode) const {
    outstanding = queued_prompt = running = remaining_decode = 0;
    if (b >= MAX_BACKENDS) return;
    uint32_t nw = std::min(_seg->header.n_workers, MAX_WORKERS);
    for (uint32_t w = 0; w < nw; ++w) {
        const WorkerLoad& l = _seg->load[b][w];
        outstanding += l.outstanding.load(std::memory_order_relaxed);
        queued_prompt += l.queued_prompt_tokens.load(std::memory_order_relaxed);
        running += l.running_decode.load(std::memory_order_relaxed);
        remaining_decode += l.remaining_decode_tokens.load(std::memory_order_relaxed);
    }
    // Gauges of different workers are read at slightly different instants; never report
    // negative load.
    outstanding = std::max<int64_t>(outstanding, 0);
    queued_prompt = std::max<int64_t>(queued_prompt, 0);
    running = std::max<int64_t>(running, 0);
    remaining_decode = std::max<int64_t>(remaining_decode, 0);
}

void Scoreboard::snapshot(View& v, uint64_t now_ns) const {
    uint32_t n = n_backends();
    v.n = n;
    v.n_models = std::min(_seg->header.n_models, MAX_MODELS);
    v.available = 0;
    v.generation = _seg->header.generation.load(std::memory_order_acquire);
    v.snapshot_ns = now_ns;
    for (uint32_t m = 0; m < v.n_models; ++m) {
        ModelLive ml;
        if (seq_read(_seg->model_live[m], ml)) v.typical_output[m] = ml.ewma_output_tokens;
    }
    for (uint32_t b = 0; b < n; ++b) {
        BackendConfig c;
        ControlLive cl;
        BackendState& s = v.b[b];
        if (!seq_read(_seg->config[b], c)) continue;  // keep the previous copy
        if (!seq_read(_seg->control[b], cl)) {
            std::memset(static_cast<void*>(&cl), 0, sizeof(cl));
            cl.ewma_ttft_ratio = cl.ewma_decode_ratio = 1.0f;
        }
        s.models = c.models;
        s.tags = c.tags;
        s.zone_bit = c.trust_zone < 32 ? (1u << c.trust_zone) : 0;
        s.max_context = c.max_context;
        s.weight = c.weight;
        s.prefill_s_per_token = c.profile.prefill_tps > 0 ? 1.0f / c.profile.prefill_tps : 1.0f;
        float dr = cl.ewma_decode_ratio > 0 ? cl.ewma_decode_ratio : 1.0f;
        s.decode_tps = std::max(c.profile.decode_tps * dr, 1e-3f);
        s.batch_slowdown = c.profile.decode_batch_slowdown;
        s.max_batch = static_cast<float>(std::max(c.profile.max_batch, 1u));
        s.cost_per_token = c.profile.cost_per_mtok * 1e-6f;
        s.inv_chunk_tokens = 1.0f / static_cast<float>(std::max(c.profile.chunk_tokens, 1u));
        s.kv_capacity_tokens = static_cast<float>(c.profile.kv_capacity_tokens);
        s.ttft_ratio = cl.ewma_ttft_ratio > 0 ? cl.ewma_ttft_ratio : 1.0f;
        s.kv_usage = cl.metrics_valid && !cl.stale ? cl.kv_usage : 0.0f;
        s.waiting = cl.metrics_valid && !cl.stale ? static_cast<float>(cl.waiting) : 0.0f;
        int64_t o, q, r, d;
        read_load(b, o, q, r, d);
        s.outstanding = static_cast<float>(o);
        s.queued_prompt_tokens = static_cast<float>(q);
        s.running = static_cast<float>(r);
        s.remaining_decode_tokens = static_cast<float>(d);
        bool ok = c.configured && c.health != static_cast<uint8_t>(Health::Down) &&
                  c.circuit != static_cast<uint8_t>(Circuit::Open) && !c.drain && c.weight > 0;
        if (ok) v.available |= 1ull << b;
    }
    v.finalize();
}

}  // namespace tlb::scoreboard
