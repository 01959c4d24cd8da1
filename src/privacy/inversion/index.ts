/** Model inversion: MI-Face class-representative reconstruction, similarity scores, and a PNG encoder for the images. */
export { invertClasses, classMeans, scoreReconstructions, type InversionOptions, type InversionResult, type ReconstructionScore } from './invert.js';
export { cosineSimilarity, ssim } from './similarity.js';
export { encodePng, imageToPng, crc32 } from './png.js';
