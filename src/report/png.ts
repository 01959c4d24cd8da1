/**
 * A minimal PNG encoder (ISO/IEC 15948 / W3C PNG 2nd edition): 8-bit grayscale or RGB, one IDAT chunk deflated
 * with node:zlib, filter type 0 on every scanline. Enough for the report's small example images, which are
 * embedded as data: URIs so the HTML needs no other file.
 */
import { deflateSync } from 'node:zlib';
import { internal } from '../core/errors.js';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (the PNG / zlib polynomial) of bytes. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * Encodes 8-bit pixels as PNG.
 * @param pixels row-major, `channels` bytes per pixel (1 gray, 3 RGB)
 * @returns the PNG file bytes
 * @example const bytes = encodePng(new Uint8Array(28 * 28), 28, 28, 1);
 */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3): Uint8Array {
  if (pixels.length !== width * height * channels || width < 1 || height < 1) internal(`encodePng: ${pixels.length} bytes for ${width}x${height}x${channels}`);
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = channels === 1 ? 0 : 2; // color type: grayscale or truecolor
  // compression, filter and interlace methods stay 0
  const stride = width * channels;
  const raw = new Uint8Array((stride + 1) * height);
  for (let r = 0; r < height; r++) raw.set(pixels.subarray(r * stride, (r + 1) * stride), r * (stride + 1) + 1);
  const parts = [Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A PNG as a data: URI. */
export function pngDataUri(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}

/**
 * One example of an NCHW (or NHW) float tensor as 8-bit pixels: 1 channel gives gray, 3 give RGB.
 * @param data the tensor data, row i at offset i·C·H·W
 * @param bounds the value range mapped to 0..255
 * @param channelsLast the example is laid out HWC (an NHWC model's input) instead of CHW
 */
export function imagePixels(data: Float32Array, offset: number, c: number, h: number, w: number, bounds: [number, number], channelsLast = false): { pixels: Uint8Array; channels: 1 | 3 } {
  const channels: 1 | 3 = c === 3 ? 3 : 1;
  const px = new Uint8Array(h * w * channels);
  const [lo, hi] = bounds;
  const scale = hi > lo ? 255 / (hi - lo) : 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let k = 0; k < channels; k++) {
        const v = data[offset + (channelsLast ? (y * w + x) * c + k : k * h * w + y * w + x)]!;
        px[(y * w + x) * channels + k] = Math.max(0, Math.min(255, Math.round((v - lo) * scale)));
      }
    }
  }
  return { pixels: px, channels };
}

/**
 * A perturbation as a diverging RGB map: white at 0, red where the input grew, blue where it shrank, full color at
 * ±scale (summed over channels for color images).
 */
export function perturbationPixels(adv: Float32Array, x: Float32Array, offset: number, c: number, h: number, w: number, scale: number, channelsLast = false): Uint8Array {
  const px = new Uint8Array(h * w * 3);
  const s = scale > 0 ? scale : 1;
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < w; xx++) {
      let d = 0;
      for (let k = 0; k < c; k++) {
        const j = offset + (channelsLast ? (y * w + xx) * c + k : k * h * w + y * w + xx);
        d += adv[j]! - x[j]!;
      }
      const t = Math.max(-1, Math.min(1, d / (c * s)));
      const fade = Math.round(255 * (1 - Math.abs(t)));
      const p = (y * w + xx) * 3;
      px[p] = t >= 0 ? 255 : fade;
      px[p + 1] = fade;
      px[p + 2] = t <= 0 ? 255 : fade;
    }
  }
  return px;
}
