// Row kernels of the fused preprocessor (see resize_kernels.h for the maths).
//
// The AVX-512 kernels are compiled with target attributes rather than relying
// on -march=native, so a portable build (DAMOYOLO_NATIVE=OFF) keeps them and
// picks them at run time when the CPU has AVX-512 BW + VBMI.
#include "image/resize_kernels.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DAMOYOLO_HAVE_AVX512_KERNELS 1
#include <immintrin.h>
// GCC 12 warns inside its own headers that the "undefined" source register of
// gathers/permutes may be uninitialised; it is deliberately so (a known false
// positive), and the warning would bury real ones.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#else
#define DAMOYOLO_HAVE_AVX512_KERNELS 0
#endif

namespace damoyolo::image_internal {

// ---------------------------------------------------------------------------
// Scalar
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// AVX-512
// ---------------------------------------------------------------------------

#if DAMOYOLO_HAVE_AVX512_KERNELS

#define DAMOYOLO_AVX512 __attribute__((target("avx512f,avx512bw,avx512vbmi")))

bool avx512_compiled() { return true; }

bool avx512_supported() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vbmi");
  return ok;
}

namespace {

// Byte permutation taking 16 packed pixels of `bpp` bytes to 16 RGBX words.
// The X byte is left as whatever the permutation picks; hresize never reads it.
DAMOYOLO_AVX512 __m512i unpack_index(PixelFormat format) {
  alignas(64) uint8_t idx[64];
  for (int i = 0; i < 16; ++i) {
    for (int c = 0; c < 4; ++c) {
      const int cc = c == 3 ? 0 : c;
      int b = 0;
      switch (format) {
        case PixelFormat::kRGB8: b = 3 * i + cc; break;
        case PixelFormat::kBGR8: b = 3 * i + 2 - cc; break;
        case PixelFormat::kGray8: b = i; break;
        case PixelFormat::kRGBA8: b = 4 * i + cc; break;
        case PixelFormat::kBGRA8: b = 4 * i + 2 - cc; break;
      }
      idx[4 * i + c] = static_cast<uint8_t>(b);
    }
  }
  return _mm512_load_si512(idx);
}

// Index for vpermt2b picking channel c of g0 (bytes 0..63) into the low
// 16 bits and of g1 (bytes 64..127) into the high 16 bits of each dword; odd
// bytes are zeroed by the mask, giving madd-ready (u16, u16) pairs.
DAMOYOLO_AVX512 __m512i pair_index(int c) {
  alignas(64) uint8_t idx[64];
  for (int i = 0; i < 16; ++i) {
    idx[4 * i + 0] = static_cast<uint8_t>(4 * i + c);
    idx[4 * i + 1] = 0;
    idx[4 * i + 2] = static_cast<uint8_t>(64 + 4 * i + c);
    idx[4 * i + 3] = 0;
  }
  return _mm512_load_si512(idx);
}

}  // namespace

DAMOYOLO_AVX512 void unpack_row_avx512(const uint8_t* src, PixelFormat format, int width,
                                       uint32_t* out) {
  const int bpp = pixel_format_bytes(format);
  const __m512i idx = unpack_index(format);
  int x = 0;
  // Masked loads never touch bytes past the row, so the caller's buffer may
  // end exactly at the last pixel.
  for (; x + 16 <= width; x += 16) {
    const __m512i v = _mm512_maskz_loadu_epi8(~0ull >> (64 - 16 * bpp), src + x * bpp);
    _mm512_storeu_si512(out + x, _mm512_permutexvar_epi8(idx, v));
  }
  if (x < width) {
    const int left = width - x;
    const __m512i v = _mm512_maskz_loadu_epi8(~0ull >> (64 - left * bpp), src + x * bpp);
    _mm512_mask_storeu_epi32(out + x, static_cast<__mmask16>((1u << left) - 1),
                             _mm512_permutexvar_epi8(idx, v));
  }
}

DAMOYOLO_AVX512 void hresize_row_avx512(const uint32_t* px, const ResizeTables& t, int dst_w,
                                        int stride, int16_t* out) {
  const __m512i pr = pair_index(0), pg = pair_index(1), pb = pair_index(2);
  const __mmask64 keep = 0x5555555555555555ull;  // the even bytes: low byte of each u16
  const __m128i shift = _mm_cvtsi32_si128(t.hshift);
  int16_t* outr = out;
  int16_t* outg = out + stride;
  int16_t* outb = out + 2 * stride;
  // Tables are padded to kRowPad with valid indices, so whole vectors are safe.
  for (int dx = 0; dx < dst_w; dx += 16) {
    const __m512i i0 = _mm512_loadu_si512(t.xofs0 + dx);
    const __m512i i1 = _mm512_loadu_si512(t.xofs1 + dx);
    const __m512i a = _mm512_loadu_si512(t.alpha + dx);
    const __m512i g0 = _mm512_i32gather_epi32(i0, px, 4);
    const __m512i g1 = _mm512_i32gather_epi32(i1, px, 4);
    const __m512i r = _mm512_maskz_permutex2var_epi8(keep, g0, pr, g1);
    const __m512i g = _mm512_maskz_permutex2var_epi8(keep, g0, pg, g1);
    const __m512i b = _mm512_maskz_permutex2var_epi8(keep, g0, pb, g1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(outr + dx),
                        _mm512_cvtepi32_epi16(_mm512_sra_epi32(_mm512_madd_epi16(r, a), shift)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(outg + dx),
                        _mm512_cvtepi32_epi16(_mm512_sra_epi32(_mm512_madd_epi16(g, a), shift)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(outb + dx),
                        _mm512_cvtepi32_epi16(_mm512_sra_epi32(_mm512_madd_epi16(b, a), shift)));
  }
}

// mulhi_epi16 is exactly (b * h) >> 16 for these non-negative operands, which
// is how OpenCV's own SIMD vertical pass computes it.
DAMOYOLO_AVX512 void vresize_linear_avx512(const int16_t* h0, const int16_t* h1, int b0, int b1,
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

DAMOYOLO_AVX512 void vresize_area2_avx512(const int16_t* h0, const int16_t* h1, int n,
                                          uint8_t* out) {
  const __m512i two = _mm512_set1_epi16(2);
  for (int i = 0; i < n; i += 32) {
    const __m512i s = _mm512_add_epi16(_mm512_loadu_si512(h0 + i), _mm512_loadu_si512(h1 + i));
    const __m512i v = _mm512_srai_epi16(_mm512_add_epi16(s, two), 2);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtusepi16_epi8(v));
  }
}

DAMOYOLO_AVX512 void u8_to_f32_avx512(const uint8_t* in, int n, float* out) {
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm512_storeu_ps(out + i, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)));
  }
  if (i < n) {  // the output may be the caller's buffer: masked store, no overrun
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m128i v = _mm_maskz_loadu_epi8(m, in + i);
    _mm512_mask_storeu_ps(out + i, m, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)));
  }
}

#else  // no AVX-512 kernels in this build: never selected (avx512_supported() is false)

bool avx512_compiled() { return false; }
bool avx512_supported() { return false; }
void unpack_row_avx512(const uint8_t* s, PixelFormat f, int w, uint32_t* o) { unpack_row_scalar(s, f, w, o); }
void hresize_row_avx512(const uint32_t* p, const ResizeTables& t, int w, int s, int16_t* o) {
  hresize_row_scalar(p, t, w, s, o);
}
void vresize_linear_avx512(const int16_t* a, const int16_t* b, int b0, int b1, int n, uint8_t* o) {
  vresize_linear_scalar(a, b, b0, b1, n, o);
}
void vresize_area2_avx512(const int16_t* a, const int16_t* b, int n, uint8_t* o) { vresize_area2_scalar(a, b, n, o); }
void u8_to_f32_avx512(const uint8_t* in, int n, float* out) { u8_to_f32_scalar(in, n, out); }

#endif

}  // namespace damoyolo::image_internal
