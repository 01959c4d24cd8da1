/**
 * A minimal PNG encoder (8-bit grayscale or RGB, no interlace) over node:zlib, for writing reconstructions without
 * an image library. Format: W3C PNG specification (Third Edition), chunks IHDR, IDAT, IEND with CRC-32.
 */
import { deflateSync } from 'node:zlib';
import { BulwarkError } from '../../core/errors.js';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309, the PNG and zlib polynomial) of bytes. */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out, 4, 8 + data.length), 8 + data.length);
  return out;
}

/**
 * Encodes 8-bit pixels as PNG.
 * @param pixels row-major, `channels` bytes per pixel
 * @param width image width
 * @param height image height
 * @param channels 1 (grayscale) or 3 (RGB)
 * @returns the PNG file bytes
 * @throws BulwarkError BULWARK_E_SHAPE when the pixel count does not match
 * @example fs.writeFileSync('x.png', encodePng(gray, 28, 28, 1));
 */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3 = 1): Buffer {
  if (pixels.length !== width * height * channels) throw new BulwarkError('BULWARK_E_SHAPE', `PNG: ${pixels.length} bytes for a ${width}x${height}x${channels} image (needs ${width * height * channels})`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = channels === 1 ? 0 : 2;
  const stride = width * channels;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1); // filter 0
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

/**
 * A CHW float image (1 or 3 channels) as PNG, values mapped linearly from `bounds` to 0..255.
 * @param img the image values, CHW
 * @param shape [C, H, W]
 * @param bounds the value range shown as black..white; default [0, 1]
 */
export function imageToPng(img: ArrayLike<number>, shape: number[], bounds: [number, number] = [0, 1]): Buffer {
  const [c, h, w] = shape.length === 3 ? shape : [1, shape[0]!, shape[1]!];
  if (c !== 1 && c !== 3) throw new BulwarkError('BULWARK_E_SHAPE', `PNG export takes 1 or 3 channels, got ${c}`);
  const px = new Uint8Array(h! * w! * c!);
  const [lo, hi] = bounds;
  for (let ch = 0; ch < c!; ch++) {
    for (let i = 0; i < h! * w!; i++) px[i * c! + ch] = Math.round(255 * Math.min(1, Math.max(0, (img[ch * h! * w! + i]! - lo) / (hi - lo))));
  }
  return encodePng(px, w!, h!, c as 1 | 3);
}
