// JPEG decoding with libjpeg(-turbo), set up like PIL's JpegDecode so pixels
// match Image.open(p).convert('RGB').
//
// libjpeg reports errors by calling error_exit, whose default calls exit().
// We install an error manager that longjmps back instead. To keep that
// well-defined in C++, every setjmp lives in a small "guarded_*" function whose
// frame (and every frame between it and the longjmp) holds no object with a
// destructor: only libjpeg calls and plain data. All C++ ownership (the Image,
// row buffers, jpeg_destroy_decompress) sits in the caller, outside the jump.
#include <csetjmp>
#include <cstdio>  // jpeglib.h uses FILE and size_t without including them
#include <cstring>
#include <vector>

#include <jpeglib.h>
#include <jerror.h>

#include "image/decoders.h"

namespace damoyolo::image_internal {
namespace {

struct JpegErrorManager {
  jpeg_error_mgr pub;  // first member: libjpeg only sees a jpeg_error_mgr*
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

// Plain data only (see the file comment): value-initialised by the caller so
// jpeg_destroy_decompress is safe even if jpeg_create_decompress never ran.
struct JpegState {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
};

void on_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// PIL ignores libjpeg warnings (corrupt-data warnings still decode), except
// that running out of data is fatal there ("image file is truncated"): libjpeg
// signals that as the warning JWRN_JPEG_EOF and pads with a fake EOI, so we
// turn exactly that warning into an error.
void on_emit_message(j_common_ptr cinfo, int msg_level) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  if (msg_level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    (*cinfo->err->format_message)(cinfo, err->message);
    err->truncated = true;
    std::longjmp(err->jump, 1);
  }
  if (msg_level < 0) cinfo->err->num_warnings++;
}

void on_output_message(j_common_ptr) {}  // never print to stderr from a library

bool guarded_read_header(JpegState* s, const uint8_t* data, size_t size) {
  if (setjmp(s->err.jump)) return false;
  jpeg_create_decompress(&s->cinfo);
  jpeg_mem_src(&s->cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&s->cinfo, JPEG_APP0 + 1, 0xFFFF);  // EXIF lives in APP1
  jpeg_read_header(&s->cinfo, TRUE);
  return true;
}

// The output size (after scale_denom) and whether the decoder will keep the
// whole image's coefficients (progressive, or components in separate scans).
bool guarded_plan(JpegState* s, bool* multi_scan) {
  if (setjmp(s->err.jump)) return false;
  jpeg_calc_output_dimensions(&s->cinfo);
  *multi_scan = jpeg_has_multiple_scans(&s->cinfo);
  return true;
}

bool guarded_start(JpegState* s) {
  if (setjmp(s->err.jump)) return false;
  jpeg_start_decompress(&s->cinfo);
  return true;
}

// PIL opens 4-component JPEGs as "CMYK" with raw mode "CMYK;I" (it assumes
// Adobe's inverted storage), then convert('RGB') computes, per channel,
// nk = 255 - K;  out = nk - C*nk/255 (rounded with PIL's MULDIV255).
// In libjpeg's raw (inverted) terms C = 255 - c_raw and K = 255 - k_raw.
inline uint8_t muldiv255(int a, int b) {
  const int t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

void cmyk_row_to_rgb(const uint8_t* in, uint8_t* out, unsigned width) {
  for (unsigned x = 0; x < width; ++x, in += 4, out += 3) {
    const int nk = in[3];  // 255 - K with K = 255 - k_raw
    for (int c = 0; c < 3; ++c) {
      const int v = nk - muldiv255(255 - in[c], nk);
      out[c] = static_cast<uint8_t>(v < 0 ? 0 : v);
    }
  }
}

bool guarded_read_rows(JpegState* s, uint8_t* base, ptrdiff_t stride, uint8_t* cmyk_row) {
  if (setjmp(s->err.jump)) return false;
  jpeg_decompress_struct* c = &s->cinfo;
  while (c->output_scanline < c->output_height) {
    uint8_t* out = base + static_cast<ptrdiff_t>(c->output_scanline) * stride;
    JSAMPROW row = cmyk_row ? cmyk_row : out;
    if (jpeg_read_scanlines(c, &row, 1) != 1) return false;  // suspension cannot happen with mem src
    if (cmyk_row) cmyk_row_to_rgb(cmyk_row, out, c->output_width);
  }
  return true;
}

// Releases libjpeg's memory on every path, outside the longjmp region.
struct JpegDestroyer {
  JpegState* s;
  ~JpegDestroyer() { jpeg_destroy_decompress(&s->cinfo); }
};

int find_exif_orientation(const jpeg_decompress_struct& cinfo) {
  static const uint8_t kExifId[6] = {'E', 'x', 'i', 'f', 0, 0};
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
    if (m->marker != JPEG_APP0 + 1 || m->data_length < 6) continue;
    if (std::memcmp(m->data, kExifId, 6) != 0) continue;
    return exif_orientation_from_tiff(m->data + 6, m->data_length - 6);
  }
  return 1;
}

}  // namespace

Image decode_jpeg(const uint8_t* data, size_t size, const DecodeOptions& options,
                  const std::string& name, DecodeInfo& info) {
  const int denom = options.jpeg_scale_denom;
  if (denom != 1 && denom != 2 && denom != 4 && denom != 8)
    throw_decode_error(ErrorCode::kInvalidArgument, name,
                       "jpeg_scale_denom must be 1, 2, 4 or 8, got " + std::to_string(denom));

  JpegState state{};
  state.cinfo.err = jpeg_std_error(&state.err.pub);
  state.err.pub.error_exit = on_error_exit;
  state.err.pub.emit_message = on_emit_message;
  state.err.pub.output_message = on_output_message;
  JpegDestroyer destroyer{&state};

  auto fail = [&](const char* stage) {
    const int code = state.err.pub.msg_code;
    if (code == JERR_OUT_OF_MEMORY || code == JERR_NO_BACKING_STORE)
      throw_decode_error(ErrorCode::kOutOfRange, name,
                         std::string("libjpeg needs more memory than DecodeOptions::max_decode_bytes (") +
                             std::to_string(options.max_decode_bytes) + " bytes) allows: " + state.err.message);
    if (state.err.truncated)
      throw_decode_error(ErrorCode::kParseError, name,
                         std::string("image file is truncated (") + state.err.message + ")");
    throw_decode_error(ErrorCode::kParseError, name,
                       std::string("invalid JPEG while ") + stage + ": " + state.err.message);
  };

  if (!guarded_read_header(&state, data, size)) fail("reading the header");
  jpeg_decompress_struct& c = state.cinfo;
  check_pixel_budget(c.image_width, c.image_height, options, name);
  info.exif_orientation = find_exif_orientation(c);
  info.bit_depth = c.data_precision;

  const bool cmyk = c.jpeg_color_space == JCS_CMYK || c.jpeg_color_space == JCS_YCCK;
  if (!cmyk && c.num_components != 1 && c.num_components != 3)
    throw_decode_error(ErrorCode::kUnsupported, name,
                       "JPEG with " + std::to_string(c.num_components) + " components");
  c.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;  // gray -> RGB replicates, like PIL's L -> RGB
  c.dct_method = JDCT_ISLOW;                      // PIL's default
  c.do_fancy_upsampling = TRUE;                   // PIL's default
  c.scale_num = 1;
  c.scale_denom = static_cast<unsigned>(denom);

  // Memory, from the header, before libjpeg allocates anything large
  // (jpeg_start_decompress does). A progressive or multi-scan file keeps every
  // DCT coefficient of the image (2 bytes each, 64 per 8x8 block of each
  // component, blocks padded to whole MCUs): ~6 bytes per pixel for 4:4:4
  // colour, 3 for 4:2:0, on top of the 3 of the output. A baseline file keeps
  // one MCU. Both keep a few MCU rows of samples per component for
  // upsampling and colour conversion.
  bool multi_scan = false;
  if (!guarded_plan(&state, &multi_scan)) fail("reading the header");
  int64_t coefficients = 0;
  if (multi_scan)
    for (int ci = 0; ci < c.num_components; ++ci) {
      const jpeg_component_info& comp = c.comp_info[ci];
      auto round_up = [](int64_t v, int64_t m) { return m > 0 ? (v + m - 1) / m * m : v; };
      coefficients += round_up(comp.width_in_blocks, comp.h_samp_factor) *
                      round_up(comp.height_in_blocks, comp.v_samp_factor) * DCTSIZE2 *
                      static_cast<int64_t>(sizeof(JCOEF));
    }
  const int64_t padded_width =
      (int64_t{c.image_width} + c.max_h_samp_factor * DCTSIZE - 1) / (c.max_h_samp_factor * DCTSIZE) *
      (c.max_h_samp_factor * DCTSIZE);
  const int64_t strips = int64_t{c.num_components} * padded_width * c.max_v_samp_factor * DCTSIZE * 4 +
                         int64_t{c.output_width} * 4 * 2;
  const int64_t output = image_bytes(c.output_width, c.output_height) +
                         exif_copy_bytes(c.output_width, c.output_height, info.exif_orientation, options);
  constexpr int64_t kFixed = 1 << 20;  // tables, state, the saved APP1 markers' headers
  check_decode_budget(output + coefficients + strips + kFixed, options, name,
                      std::to_string(c.image_width) + "x" + std::to_string(c.image_height) +
                          (c.progressive_mode ? " progressive" : multi_scan ? " multi-scan" : "") + " JPEG");
  // And libjpeg's own allocations are held to what the budget leaves it (its
  // whole-image buffers fail with JERR_NO_BACKING_STORE beyond that).
  c.mem->max_memory_to_use = static_cast<long>(options.max_decode_bytes - output);

  if (!guarded_start(&state)) fail("starting decompression");
  Image image(static_cast<int>(c.output_width), static_cast<int>(c.output_height));
  std::vector<uint8_t> cmyk_row(cmyk ? static_cast<size_t>(c.output_width) * 4 : 0);
  if (!guarded_read_rows(&state, image.data(), image.stride(), cmyk ? cmyk_row.data() : nullptr))
    fail("decoding scanlines");
  // No jpeg_finish_decompress: a file whose scan data is complete but whose
  // EOI marker is missing still decodes; the destroyer releases everything.
  return image;
}

}  // namespace damoyolo::image_internal
