#!/usr/bin/python3
"""Regenerates the PIL-parity cases in this folder (run with Debian's /usr/bin/python3,
Pillow 9.4). For every NAME.{png,jpg,bmp} it writes NAME.rgb: the raw RGB bytes of
Image.open(NAME).convert('RGB'), and NAME.size: "W H". decode_test.cc checks that
damoyolo's decoder reproduces them exactly. For JPEGs with EXIF orientation it
also writes NAME.exif.rgb / NAME.exif.size: ImageOps.exif_transpose first."""
import os
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps

os.chdir(os.path.dirname(os.path.abspath(__file__)))


def png(path, w, h, depth, ctype, rows, plte=None, trns=None):
    def chunk(t, d):
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    raw = b''.join(b'\0' + r for r in rows)
    data = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, depth, ctype, 0, 0, 0))
    if plte:
        data += chunk(b'PLTE', plte)
    if trns:
        data += chunk(b'tRNS', trns)
    data += chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
    open(path, 'wb').write(data)


rng = np.random.default_rng(0)
png('png_gray16.png', 4, 1, 16, 0, [struct.pack('>4H', 100, 300, 65535, 255)])
png('png_rgb16.png', 2, 1, 16, 2, [struct.pack('>6H', 0x12AB, 0x00FF, 0xFF00, 0x8080, 0x7FFF, 0x0180)])
png('png_ga16.png', 2, 1, 16, 4, [struct.pack('>4H', 0x12AB, 0xFFFF, 0x80FF, 0x0000)])
png('png_rgba16.png', 1, 1, 16, 6, [struct.pack('>4H', 0x12AB, 0x3456, 0x789A, 0x0000)])
png('png_gray2.png', 4, 1, 2, 0, [bytes([0b00011011])])
png('png_gray1.png', 8, 1, 1, 0, [bytes([0b10110001])])
png('png_gray8_trns.png', 3, 1, 8, 0, [bytes([0, 128, 255])], trns=struct.pack('>H', 128))
png('png_ga8.png', 2, 1, 8, 4, [bytes([10, 0, 200, 255])])
png('png_rgba8.png', 2, 1, 8, 6, [bytes([1, 2, 3, 0, 250, 251, 252, 128])])
png('png_palette4_trns.png', 4, 1, 4, 3, [bytes([0x01, 0x23])],
    plte=bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 8, 7]), trns=bytes([0, 128]))

photo = np.asarray(Image.open('../../../../shared/fixtures/images/chelsea.png').convert('RGB'))[:45, :61]
Image.fromarray(photo).save('jpeg_420.jpg', quality=90)
Image.fromarray(photo).save('jpeg_444.jpg', quality=90, subsampling=0)
Image.fromarray(photo).save('jpeg_422.jpg', quality=90, subsampling=1)
Image.fromarray(photo).save('jpeg_progressive.jpg', quality=85, progressive=True)
Image.fromarray(photo).convert('L').save('jpeg_gray.jpg', quality=90)
cmyk = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
cmyk[:8] = np.linspace(0, 255, 16 * 4).astype(np.uint8).reshape(16, 4)
Image.fromarray(cmyk, 'CMYK').save('jpeg_cmyk.jpg', quality=95)
odd = np.ascontiguousarray(photo[:37, :53])
exif = Image.Exif()
exif[0x0112] = 6
Image.fromarray(odd).save('jpeg_exif6.jpg', quality=90, exif=exif.tobytes())
exif[0x0112] = 3
Image.fromarray(odd).save('jpeg_exif3.jpg', quality=90, exif=exif.tobytes())
Image.fromarray(photo[:21, :13]).save('bmp_rgb24.bmp')
Image.fromarray(photo[:21, :13]).convert('P', palette=Image.ADAPTIVE, colors=16).save('bmp_pal8.bmp')

for name in sorted(os.listdir('.')):
    stem, ext = os.path.splitext(name)
    if ext not in ('.png', '.jpg', '.bmp'):
        continue
    im = Image.open(name)
    rgb = im.convert('RGB')
    open(stem + '.rgb', 'wb').write(rgb.tobytes())
    open(stem + '.size', 'w').write('%d %d\n' % rgb.size)
    if 0x0112 in im.getexif():
        t = ImageOps.exif_transpose(im).convert('RGB')
        open(stem + '.exif.rgb', 'wb').write(t.tobytes())
        open(stem + '.exif.size', 'w').write('%d %d\n' % t.size)
    print(name, im.mode, rgb.size)
