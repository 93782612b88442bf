#include "dataplane/setup.hpp"

#include <stdexcept>

namespace tlb::dataplane {

std::unique_ptr<scoreboard::Scoreboard> build_scoreboard(const config::Config& cfg,
                                                         uint32_t n_workers,
                                                         bool private_segment) {
    std::string err;
    std::unique_ptr<scoreboard::Scoreboard> sb =
        private_segment ? scoreboard::Scoreboard::create_private(n_workers)
                        : scoreboard::Scoreboard::create(cfg.telemetry.scoreboard_shm, n_workers, &err);
    if (!sb) throw std::runtime_error("scoreboard: " + err);
    for (const auto& b : cfg.backends) {
        scoreboard::BackendSpec s;
        s.name = b.name;
        s.ipv4 = b.address.addr;
        s.port = b.address.port;
        s.models = b.models;
        s.tags = b.tags;
        s.trust_zone = b.trust_zone;
        s.max_context = b.max_context;
        s.profile.prefill_tps = float(b.profile.prefill_tokens_per_s);
        s.profile.decode_tps = float(b.profile.decode_tokens_per_s);
        s.profile.decode_batch_slowdown = float(b.profile.decode_batch_slowdown);
        s.profile.cost_per_mtok = float(b.profile.cost_per_mtok);
        s.profile.max_batch = b.profile.max_batch;
        s.profile.kv_capacity_tokens = b.profile.kv_capacity_tokens;
        s.profile.chunk_tokens = b.profile.chunk_tokens;
        s.weight = uint16_t(b.weight > 65535 ? 65535 : b.weight);
        for (const auto& m : b.models) sb->model_id(m, true);
        if (sb->add_backend(s, &err) < 0) throw std::runtime_error("scoreboard: " + err);
    }
    return sb;
}

}  // namespace tlb::dataplane
