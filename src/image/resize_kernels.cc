// Row kernels of the fused preprocessor (see resize_kernels.h for the maths).
//
// The AVX2 and AVX-512 kernels are compiled with target attributes
// (common/cpu_features.h) whatever the build's -march, so a portable build
// (DAMOYOLO_NATIVE=OFF) has them too; row_kernels() hands out the level the
// caller picked at run time.
#include "image/resize_kernels.h"

#include <algorithm>
#include <cstring>

#if DAMOYOLO_X86_SIMD
#include <immintrin.h>
// GCC 12 warns inside its own headers that the "undefined" source register of
// gathers/permutes may be uninitialised; it is deliberately so (a known false
// positive), and the warning would bury real ones.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace damoyolo::image_internal {

// ---------------------------------------------------------------------------
// Scalar
// ---------------------------------------------------------------------------

void channel_bytes(PixelFormat format, int out[3]) {
  const bool swapped = format == PixelFormat::kBGR8 || format == PixelFormat::kBGRA8;
  for (int c = 0; c < 3; ++c) out[c] = format == PixelFormat::kGray8 ? 0 : swapped ? 2 - c : c;
}

void unpack_row_scalar(const uint8_t* s, PixelFormat format, int width, uint32_t* out) {
  auto rgbx = [](uint32_t r, uint32_t g, uint32_t b) { return r | (g << 8) | (b << 16); };
  switch (format) {
    case PixelFormat::kRGB8:
      for (int x = 0; x < width; ++x, s += 3) out[x] = rgbx(s[0], s[1], s[2]);
      break;
    case PixelFormat::kBGR8:
      for (int x = 0; x < width; ++x, s += 3) out[x] = rgbx(s[2], s[1], s[0]);
      break;
    case PixelFormat::kGray8:
      for (int x = 0; x < width; ++x) out[x] = rgbx(s[x], s[x], s[x]);
      break;
    case PixelFormat::kRGBA8:
      for (int x = 0; x < width; ++x, s += 4) out[x] = rgbx(s[0], s[1], s[2]);
      break;
    case PixelFormat::kBGRA8:
      for (int x = 0; x < width; ++x, s += 4) out[x] = rgbx(s[2], s[1], s[0]);
      break;
  }
}

void hresize_row_scalar(const uint32_t* px, const ResizeTables& t, int dst_w, int stride,
                        int16_t* out) {
  for (int dx = 0; dx < dst_w; ++dx) {
    const uint32_t p0 = px[t.xofs0[dx]], p1 = px[t.xofs1[dx]];
    const int a0 = static_cast<int16_t>(t.alpha[dx] & 0xffff);
    const int a1 = static_cast<int16_t>(static_cast<uint32_t>(t.alpha[dx]) >> 16);
    for (int c = 0; c < 3; ++c) {
      const int v = static_cast<int>((p0 >> (8 * c)) & 0xff) * a0 +
                    static_cast<int>((p1 >> (8 * c)) & 0xff) * a1;
      out[c * stride + dx] = static_cast<int16_t>(v >> t.hshift);
    }
  }
}

void vresize_linear_scalar(const int16_t* h0, const int16_t* h1, int b0, int b1, int n,
                           uint8_t* out) {
  for (int i = 0; i < n; ++i) {
    const int v = (((b0 * h0[i]) >> 16) + ((b1 * h1[i]) >> 16) + 2) >> 2;
    out[i] = static_cast<uint8_t>(std::clamp(v, 0, 255));  // saturating, like OpenCV's SIMD pack
  }
}

void vresize_area2_scalar(const int16_t* h0, const int16_t* h1, int n, uint8_t* out) {
  for (int i = 0; i < n; ++i) out[i] = static_cast<uint8_t>((h0[i] + h1[i] + 2) >> 2);
}

void u8_to_f32_scalar(const uint8_t* in, int n, float* out) {
  for (int i = 0; i < n; ++i) out[i] = static_cast<float>(in[i]);
}

#if DAMOYOLO_X86_SIMD

namespace {

// ---------------------------------------------------------------------------
// AVX2
// ---------------------------------------------------------------------------

DAMOYOLO_TARGET_AVX2 void hresize_row_avx2(const uint8_t* row, const uint8_t* next_row,
                                           const ResizeTables& t, int dst_w, int stride, int16_t* out) {
  // Per 8 destination columns: two 4-qword gathers (one 8-byte load covers
  // both taps, as in the AVX-512 kernel), the first for columns 0,1,4,5 and
  // the second for 2,3,6,7, so that per 128-bit lane a vpshufb of each puts
  // the columns' u16 pairs (left tap | right tap << 16, channel byte cb) in
  // natural order: dwords 0,1 from the first gather, 2,3 from the second.
  const int bpp = pixel_format_bytes(t.format);
  int cb[3];
  channel_bytes(t.format, cb);
  __m256i pick_a[3], pick_b[3];
  for (int c = 0; c < 3; ++c) {
    alignas(32) int8_t a[32], b[32];
    std::memset(a, -128, sizeof a);  // 0x80: zero the byte
    std::memset(b, -128, sizeof b);
    for (int lane = 0; lane < 2; ++lane) {
      for (int j = 0; j < 2; ++j) {  // the lane's two qwords (columns)
        const int8_t left = static_cast<int8_t>(8 * j + cb[c]), right = static_cast<int8_t>(8 * j + cb[c] + bpp);
        a[16 * lane + 4 * j + 0] = left;
        a[16 * lane + 4 * j + 2] = right;
        b[16 * lane + 8 + 4 * j + 0] = left;
        b[16 * lane + 8 + 4 * j + 2] = right;
      }
    }
    pick_a[c] = _mm256_load_si256(reinterpret_cast<const __m256i*>(a));
    pick_b[c] = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
  }
  // int32 → int16 by truncation (like the scalar cast): the low u16 of each
  // dword to the lane's low qword; then qwords 0 and 2 to the low 128 bits.
  const __m256i low_words = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                             0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
  const __m128i shift = _mm_cvtsi32_si128(t.hshift);
  const long long* base = reinterpret_cast<const long long*>(row);
  for (int dx = 0; dx < dst_w; dx += 8) {  // tables are padded: whole vectors are safe
    const __m256i ofs = _mm256_permutevar8x32_epi32(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.byte_ofs + dx)), order);
    __m256i q0 = _mm256_i32gather_epi64(base, _mm256_castsi256_si128(ofs), 1);
    __m256i q1 = _mm256_i32gather_epi64(base, _mm256_extracti128_si256(ofs, 1), 1);
    const __m256i s03 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.byte_shift + dx));
    const __m256i s47 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.byte_shift + dx + 4));
    q0 = _mm256_srlv_epi64(q0, _mm256_permute2x128_si256(s03, s47, 0x20));  // columns 0,1,4,5
    q1 = _mm256_srlv_epi64(q1, _mm256_permute2x128_si256(s03, s47, 0x31));  // columns 2,3,6,7
    if (next_row) {
      _mm_prefetch(reinterpret_cast<const char*>(next_row + t.byte_ofs[dx]), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(next_row + t.byte_ofs[dx + 7] + 7), _MM_HINT_T0);
    }
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.alpha + dx));
    for (int c = 0; c < 3; ++c) {
      const __m256i pairs = _mm256_or_si256(_mm256_shuffle_epi8(q0, pick_a[c]), _mm256_shuffle_epi8(q1, pick_b[c]));
      const __m256i sum = _mm256_sra_epi32(_mm256_madd_epi16(pairs, a), shift);
      const __m256i w = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(sum, low_words), _MM_SHUFFLE(3, 1, 2, 0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + c * stride + dx), _mm256_castsi256_si128(w));
    }
  }
}

// 16 outputs of the vertical passes, as int16 (a lambda would not inherit
// the target attribute).
DAMOYOLO_TARGET_AVX2 inline __m256i vlinear16_avx2(const int16_t* h0, const int16_t* h1, __m256i vb0,
                                                   __m256i vb1) {
  const __m256i s0 = _mm256_mulhi_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h0)), vb0);
  const __m256i s1 = _mm256_mulhi_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h1)), vb1);
  return _mm256_srai_epi16(_mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_set1_epi16(2)), 2);
}

DAMOYOLO_TARGET_AVX2 inline __m256i varea16_avx2(const int16_t* h0, const int16_t* h1) {
  const __m256i s = _mm256_add_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h0)),
                                     _mm256_loadu_si256(reinterpret_cast<const __m256i*>(h1)));
  return _mm256_srai_epi16(_mm256_add_epi16(s, _mm256_set1_epi16(2)), 2);
}

// vpackuswb saturates int16 to [0, 255] like the scalar clamp; it works per
// 128-bit lane, hence the qword permute after it.
DAMOYOLO_TARGET_AVX2 void vresize_linear_avx2(const int16_t* h0, const int16_t* h1, int b0, int b1,
                                              int n, uint8_t* out) {
  const __m256i vb0 = _mm256_set1_epi16(static_cast<int16_t>(b0));
  const __m256i vb1 = _mm256_set1_epi16(static_cast<int16_t>(b1));
  for (int i = 0; i < n; i += 32) {  // n is a multiple of kRowPad
    const __m256i v = _mm256_packus_epi16(vlinear16_avx2(h0 + i, h1 + i, vb0, vb1),
                                          vlinear16_avx2(h0 + i + 16, h1 + i + 16, vb0, vb1));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permute4x64_epi64(v, _MM_SHUFFLE(3, 1, 2, 0)));
  }
}

DAMOYOLO_TARGET_AVX2 void vresize_area2_avx2(const int16_t* h0, const int16_t* h1, int n, uint8_t* out) {
  for (int i = 0; i < n; i += 32) {
    const __m256i v = _mm256_packus_epi16(varea16_avx2(h0 + i, h1 + i), varea16_avx2(h0 + i + 16, h1 + i + 16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permute4x64_epi64(v, _MM_SHUFFLE(3, 1, 2, 0)));
  }
}

DAMOYOLO_TARGET_AVX2 void u8_to_f32_avx2(const uint8_t* in, int n, float* out) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)));
  }
  for (; i < n; ++i) out[i] = static_cast<float>(in[i]);  // the caller's buffer: no overrun
}

// ---------------------------------------------------------------------------
// AVX-512 (F, BW, VL, VBMI)
// ---------------------------------------------------------------------------

DAMOYOLO_TARGET_AVX512 void hresize_row_avx512(const uint8_t* row, const uint8_t* next_row,
                                               const ResizeTables& t, int dst_w, int stride, int16_t* out) {
  // vpermt2b indices: for destination column i (lane i of the two 8-qword
  // gathers, bytes 8i.. of the 128-byte pair), put channel byte cb of the left
  // pixel in the low u16 and of the right pixel (bpp bytes on) in the high u16
  // of dword i. The mask zeroes the odd bytes, leaving madd-ready u16 pairs.
  // (A vpshufb variant with a chunk-interleaved row layout measured no faster
  // once the final un-shuffle was paid for.)
  const int bpp = pixel_format_bytes(t.format);
  int cb[3];
  channel_bytes(t.format, cb);
  __m512i perm[3];
  for (int c = 0; c < 3; ++c) {
    alignas(64) uint8_t idx[64];
    for (int i = 0; i < 16; ++i) {
      idx[4 * i + 0] = static_cast<uint8_t>(8 * i + cb[c]);
      idx[4 * i + 1] = 0;
      idx[4 * i + 2] = static_cast<uint8_t>(8 * i + cb[c] + bpp);
      idx[4 * i + 3] = 0;
    }
    perm[c] = _mm512_load_si512(idx);
  }
  const __mmask64 low_bytes = 0x5555555555555555ull;
  const __m128i shift = _mm_cvtsi32_si128(t.hshift);
  for (int dx = 0; dx < dst_w; dx += 16) {  // tables are padded: whole vectors are safe
    const __m256i o0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.byte_ofs + dx));
    const __m256i o1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.byte_ofs + dx + 8));
    // 8-element qword gathers: half the element loads of two dword gathers.
    __m512i q0 = _mm512_i32gather_epi64(o0, row, 1);
    __m512i q1 = _mm512_i32gather_epi64(o1, row, 1);
    q0 = _mm512_srlv_epi64(q0, _mm512_loadu_si512(t.byte_shift + dx));
    q1 = _mm512_srlv_epi64(q1, _mm512_loadu_si512(t.byte_shift + dx + 8));
    if (next_row) {  // the 16 columns span a few cache lines of the next row
      _mm_prefetch(reinterpret_cast<const char*>(next_row + t.byte_ofs[dx]), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(next_row + t.byte_ofs[dx + 8]), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(next_row + t.byte_ofs[dx + 15] + 7), _MM_HINT_T0);
    }
    const __m512i a = _mm512_loadu_si512(t.alpha + dx);
    for (int c = 0; c < 3; ++c) {
      const __m512i pairs = _mm512_maskz_permutex2var_epi8(low_bytes, q0, perm[c], q1);
      const __m512i sum = _mm512_sra_epi32(_mm512_madd_epi16(pairs, a), shift);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + c * stride + dx), _mm512_cvtepi32_epi16(sum));
    }
  }
}

// mulhi_epi16 is exactly (b * h) >> 16 for these non-negative operands, which
// is how OpenCV's own SIMD vertical pass computes it.
DAMOYOLO_TARGET_AVX512 void vresize_linear_avx512(const int16_t* h0, const int16_t* h1, int b0, int b1,
                                                  int n, uint8_t* out) {
  const __m512i vb0 = _mm512_set1_epi16(static_cast<int16_t>(b0));
  const __m512i vb1 = _mm512_set1_epi16(static_cast<int16_t>(b1));
  const __m512i two = _mm512_set1_epi16(2);
  for (int i = 0; i < n; i += 32) {  // n is a multiple of kRowPad
    const __m512i s0 = _mm512_mulhi_epi16(_mm512_loadu_si512(h0 + i), vb0);
    const __m512i s1 = _mm512_mulhi_epi16(_mm512_loadu_si512(h1 + i), vb1);
    const __m512i v = _mm512_srai_epi16(_mm512_add_epi16(_mm512_add_epi16(s0, s1), two), 2);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtusepi16_epi8(v));
  }
}

DAMOYOLO_TARGET_AVX512 void vresize_area2_avx512(const int16_t* h0, const int16_t* h1, int n,
                                                 uint8_t* out) {
  const __m512i two = _mm512_set1_epi16(2);
  for (int i = 0; i < n; i += 32) {
    const __m512i s = _mm512_add_epi16(_mm512_loadu_si512(h0 + i), _mm512_loadu_si512(h1 + i));
    const __m512i v = _mm512_srai_epi16(_mm512_add_epi16(s, two), 2);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtusepi16_epi8(v));
  }
}

DAMOYOLO_TARGET_AVX512 void u8_to_f32_avx512(const uint8_t* in, int n, float* out) {
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm512_storeu_ps(out + i, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)));
  }
  if (i < n) {  // the output is the caller's buffer: masked store, no overrun
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(out + i, m, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, in + i))));
  }
}

}  // namespace

#endif  // DAMOYOLO_X86_SIMD

namespace {

using cpu::IsaLevel;

const RowKernels kScalarKernels = {IsaLevel::kScalar, nullptr, vresize_linear_scalar, vresize_area2_scalar,
                                   u8_to_f32_scalar};
#if DAMOYOLO_X86_SIMD
const RowKernels kAvx2Kernels = {IsaLevel::kAvx2, hresize_row_avx2, vresize_linear_avx2, vresize_area2_avx2,
                                 u8_to_f32_avx2};
const RowKernels kAvx512Kernels = {IsaLevel::kAvx512, hresize_row_avx512, vresize_linear_avx512,
                                   vresize_area2_avx512, u8_to_f32_avx512};
#endif

}  // namespace

const RowKernels& row_kernels(IsaLevel level) {
#if DAMOYOLO_X86_SIMD
  switch (level) {
    case IsaLevel::kAvx512: return kAvx512Kernels;
    case IsaLevel::kAvx2: return kAvx2Kernels;
    case IsaLevel::kScalar: break;
  }
#endif
  return kScalarKernels;
}

}  // namespace damoyolo::image_internal
