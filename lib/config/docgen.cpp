// Prints the configuration reference (docs/config.md) generated from the key declarations.
//   build-x/lib/config/tlb-config-docgen > docs/config.md
#include <cstdio>

#include "config/config.hpp"

int main() {
    std::string md = tlb::config::reference_markdown();
    return std::fwrite(md.data(), 1, md.size(), stdout) == md.size() ? 0 : 1;
}
