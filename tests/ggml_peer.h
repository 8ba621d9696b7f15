// llama.cpp's own quantizers, loaded at run time from a llama.cpp build when one is found (never linked,
// never needed to build): the reference groak's quantizers are compared with byte for byte.
//
// Where: $GROAK_LLAMA_CPP (a llama.cpp checkout, its build/ or its build/bin/), else ../llama.cpp and
// ../peer/llama.cpp beside the repository. Tests skip naming GROAK_LLAMA_CPP when none is there.
#pragma once
#include <dlfcn.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace groak::test {

struct GgmlPeer {
  // ggml.h: size_t ggml_quantize_chunk(enum ggml_type, const float* src, void* dst, int64_t start,
  //                                    int64_t nrows, int64_t n_per_row, const float* imatrix)
  using QuantizeChunk = size_t (*)(int type, const float* src, void* dst, int64_t start, int64_t nrows,
                                   int64_t n_per_row, const float* imatrix);
  QuantizeChunk quantize_chunk = nullptr;
  // ggml.h: struct ggml_init_params, passed by value to ggml_init.
  struct GgmlInitParams {
    size_t mem_size;
    void* mem_buffer;
    bool no_alloc;
  };
  std::string library;  // the libggml-base.so loaded
  std::string bin;      // its folder (llama-quantize, llama-imatrix … when built there)

  // The llama.cpp build's folder candidates, in order.
  static std::vector<std::filesystem::path> candidates() {
    std::vector<std::filesystem::path> roots;
    if (const char* e = std::getenv("GROAK_LLAMA_CPP"); e && *e) roots.emplace_back(e);
    const std::filesystem::path repo = std::filesystem::path(GROAK_SOURCE_DIR);
    roots.push_back(repo.parent_path() / "llama.cpp");
    roots.push_back(repo.parent_path() / "peer" / "llama.cpp");
    std::vector<std::filesystem::path> out;
    for (const auto& r : roots)
      for (const char* sub : {"", "bin", "build/bin"}) out.push_back(r / sub);
    return out;
  }

  // The first build found (loaded once per process); null when there is none.
  static const GgmlPeer* find() {
    static const GgmlPeer* peer = []() -> const GgmlPeer* {
      for (const auto& dir : candidates()) {
        const auto lib = dir / "libggml-base.so";
        if (!std::filesystem::exists(lib)) continue;
        void* h = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!h) continue;
        auto* p = new GgmlPeer;  // lives for the process, as the library does
        p->quantize_chunk = reinterpret_cast<QuantizeChunk>(::dlsym(h, "ggml_quantize_chunk"));
        p->library = lib.string();
        p->bin = dir.string();
        // ggml-base reads f16 scales back through ggml_table_f32_f16 (its GGML_FP16_TO_FP32 without F16C),
        // which only ggml_init fills: without one init the k-quants requantise against d = 0. llama-quantize
        // always has a context by then, so one throwaway context reproduces what it writes.
        using Init = void* (*)(GgmlInitParams);
        using Free = void (*)(void*);
        const auto init = reinterpret_cast<Init>(::dlsym(h, "ggml_init"));
        const auto free_ctx = reinterpret_cast<Free>(::dlsym(h, "ggml_free"));
        if (p->quantize_chunk && init && free_ctx) {
          constexpr size_t kTinyPool = 1024;  // no tensors are made: any size works
          free_ctx(init(GgmlInitParams{kTinyPool, nullptr, /*no_alloc=*/true}));
          return p;
        }
        delete p;
      }
      return nullptr;
    }();
    return peer;
  }
};

// Skips the current test unless a llama.cpp build is found; `peer` names the GgmlPeer pointer.
#define GROAK_REQUIRE_GGML_PEER(peer)                                                                     \
  const ::groak::test::GgmlPeer* peer = ::groak::test::GgmlPeer::find();                                 \
  if (!peer)                                                                                            \
    GTEST_SKIP() << "needs a llama.cpp build (libggml-base.so) to compare with: set GROAK_LLAMA_CPP to " \
                    "its build folder; skipped"

}  // namespace groak::test
