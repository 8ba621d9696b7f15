// The scale searches of ggml's quantizers (ggml-quants.c), shared by the legacy and k-quant files: given a
// group of n values, pick integer levels L and a scale (and for the asymmetric ones a min) that minimise a
// weighted squared error. Each mirrors its ggml function operation for operation (same loop order, same
// float expressions, f32 throughout, no FMA contraction), because the bytes llama.cpp writes depend on
// every rounding of these sums. Names keep ggml's so the two can be read side by side.
#pragma once
#include <cstdint>

namespace groak::quant {

// ggml's GROUP_MAX_EPS: a symmetric group whose largest |x| is below this is stored as zeros.
inline constexpr float kGroupMaxEps = 1e-15f;
// The largest |v| whose nearest_int (the 1.5·2^23 trick) is round-half-even of v, so that a SIMD rounding
// instruction gives the same integer; beyond it the mantissa trick wraps.
inline constexpr float kExactRoundLimit = 4194303.f;
// The largest group any caller searches (a 32-element block or sub-block); sizes the searches' scratch.
inline constexpr int kMaxSearchGroup = 32;

// make_qx_quants(n, nmax, x, L, rmse_type = 1, qw): symmetric x ≈ scale·l, l in [−nmax, nmax), stored as
// L[i] = l + nmax. Weights qw[i], or x[i]² when qw is null. Tries 19 candidate inverse scales around
// −nmax/max and keeps the best least-squares fit. Returns the scale (0 for an all-zero group).
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, const float* qw);

// make_q3_quants(n, nmax, x, L, do_rmse = true): as make_qx_quants with weights x², but refined by up to 5
// passes of coordinate descent on single levels instead of the candidate sweep. L[i] = l + nmax.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L);

// make_qkx2_quants / make_qkx3_quants with weights (identical then: qkx3 only differs when its weights
// are null, which no caller here passes): asymmetric x ≈ scale·L − the_min with L in [0, nmax], trying
// nstep+1 inverse scales (nmax + rmin + rdelta·is)/(max − min) and refitting scale and min by weighted
// least squares; the error is |diff| when use_mad, else diff². Laux[n] is scratch; n ≤ kMaxSearchGroup.
// Returns the scale; *the_min = −min ≥ 0 (min is clamped to ≤ 0).
enum class ErrorNorm { Squared, Absolute };
float make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                      uint8_t* Laux, float rmin, float rdelta, int nstep, ErrorNorm norm);

// make_qkx_quants on 8 groups of n at once (a super-block's sub-blocks): group j is x[j·n, j·n + n) with
// weights[j·n …], its levels L[j·n …], its scale scales[j] and its −min the_mins[j]; the same bytes as
// 8 calls of make_qkx_quants.
void make_qkx_quants8(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* scales,
                      float* the_mins, float rmin, float rdelta, int nstep, ErrorNorm norm);

// make_qp_quants(n, nmax, x, L, quant_weights): x ≥ 0 (sub-block scales or mins) ≈ scale·L, L ≤ nmax,
// weighted by quant_weights: a sweep of 8 inverse scales around nmax/max, then up to 5 coordinate-descent
// passes. L is uint8 as in ggml (a negative level wraps, exactly as there). Returns the scale; 0 for an
// all-zero group (and whatever sumlx/suml2 gives, NaN included, otherwise — as ggml).
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* quant_weights);

// The searches that dominate quantisation time, as a table per instruction set. Every table gives the same
// bytes as the scalar one (the oracle): the SIMD ones put one candidate scale in each lane and accumulate
// every lane's sums over i in ggml's order, so each lane performs exactly the scalar operations; they
// fall back to the scalar code for blocks where a lane could leave the range in which rounding
// instructions agree with ggml's nearest_int (NaN, ±inf, |x·iscale| > 2^22 − 1).
using QxSearch = float (*)(int n, int nmax, const float* x, int8_t* L, const float* qw);
using QkxSearch = float (*)(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                            uint8_t* Laux, float rmin, float rdelta, int nstep, ErrorNorm norm);
using QkxSearch8 = void (*)(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* scales,
                            float* the_mins, float rmin, float rdelta, int nstep, ErrorNorm norm);
// IQ4_NL / IQ4_XS's scale sweep (quantize_iq4.cpp): for a block of 32 values x with weights w and m
// candidate inverse scales ids[0, m), sumqx[t] = Σ w·q·x and sumq2[t] = Σ w·q² in ggml's order, q the
// kvalues_iq4nl level nearest to ids[t]·x (ggml's best_index_int8). m ≤ kMaxIq4Candidates.
inline constexpr int kMaxIq4Candidates = 16;
using Iq4Fits = void (*)(const float* x, const float* w, const float* ids, int m, float* sumqx, float* sumq2);
struct SearchKernels {
  const char* name;
  QxSearch make_qx_quants;
  QkxSearch make_qkx_quants;
  QkxSearch8 make_qkx_quants8;  // one group per lane (AVX2), or 8 scalar calls
  Iq4Fits iq4_fits;             // one candidate per lane, or the scalar loop
};
// The scalar IQ4 sweep (quantize_iq4.cpp): the oracle, and the SIMD tables' fallback for NaN input.
void scalar_iq4_fits(const float* x, const float* w, const float* ids, int m, float* sumqx, float* sumq2);
// 8 scalar make_qkx_quants calls (the oracle of make_qkx_quants8, and every table's fallback).
void scalar_make_qkx_quants8(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* scales,
                             float* the_mins, float rmin, float rdelta, int nstep, ErrorNorm norm);
// The AVX2 one (x86/avx2_quant_search.cpp), also in the AVX-512 table; null off x86.
QkxSearch8 avx2_qkx_quants8();
const SearchKernels& scalar_search_kernels();
const SearchKernels* avx2_search_kernels();    // null unless this CPU has AVX2 (x86/avx2_quant_search.cpp)
const SearchKernels* avx512_search_kernels();  // null unless this CPU has AVX-512 F (x86/avx512_quant_search.cpp)
// The table make_qx_quants / make_qkx_quants use, chosen once: the widest this CPU runs, or the one
// GROAK_KERNELS names ("reference" / "portable": scalar, "avx2": AVX2), as for the product kernels.
const SearchKernels& chosen_search_kernels();

}  // namespace groak::quant
