#include "kernels/context.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace groak {

void Context::FreeAligned::operator()(float* p) const { std::free(p); }

Context::Context(int threads, const Kernels* kernels)
    : pool_(threads > 0 ? threads : ThreadPool::hardware_threads()), kernels_(kernels ? kernels : &fast_kernels()) {
  const size_t bytes = static_cast<size_t>(pool_.size()) * kKernelScratchFloats * sizeof(float);
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  scratch_.reset(static_cast<float*>(p));
}

void Context::reserve_act(size_t bytes) {
  if (act_.size() < bytes) act_.resize(bytes);
}

uint8_t* Context::act_buffer(size_t bytes) {
  if (act_.size() < bytes) act_.resize(bytes);
  return act_.data();
}

}  // namespace groak
