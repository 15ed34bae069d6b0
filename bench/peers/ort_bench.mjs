// ONNX Runtime (onnxruntime-node) on the same model, input pattern and thread
// count as `damoyolo bench`, printing the same JSON fields.
// usage: node ort_bench.mjs MODEL THREADS ITERS WARMUP [BATCH]
import * as ort from 'onnxruntime-node';
import process from 'node:process';

const [model, threadsArg, itersArg, warmupArg] = process.argv.slice(2);
const threads = Number(threadsArg ?? 2), iters = Number(itersArg ?? 50), warmup = Number(warmupArg ?? 5);
const t0 = performance.now();
const session = await ort.InferenceSession.create(model, {
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
});
const loadMs = performance.now() - t0;
const inputName = session.inputNames[0];
// Input shape: from the model metadata when the binding exposes it, else the DAMO-YOLO default.
let dims = null;
try {
  const meta = session.inputMetadata?.[0];
  if (meta && Array.isArray(meta.shape)) dims = meta.shape.map(Number);
} catch { /* older bindings */ }
if (!dims) throw new Error('cannot read the input shape of ' + model);
const n = dims.reduce((a, b) => a * b, 1);
const data = new Float32Array(n);
// The same deterministic pattern as damoyolo bench: (i * 2654435761) mod 2^32 mod 256.
for (let i = 0; i < n; ++i) data[i] = Number((BigInt(i) * 2654435761n) % 4294967296n % 256n);
const feeds = { [inputName]: new ort.Tensor('float32', data, dims) };
for (let i = 0; i < warmup; ++i) await session.run(feeds);
const ms = [];
for (let i = 0; i < iters; ++i) {
  const s = performance.now();
  await session.run(feeds);
  ms.push(performance.now() - s);
}
ms.sort((a, b) => a - b);
const median = ms[Math.floor(ms.length / 2)];
console.log(JSON.stringify({
  model, engine: 'onnxruntime-node ' + (ort.env.versions?.common ?? '1.30.0'), threads, batch: dims[0], iters,
  latency_ms: { min: ms[0], median, max: ms[ms.length - 1] },
  throughput_ips: dims[0] * 1000 / median,
  peak_rss_mib: process.resourceUsage().maxRSS / 1024,
  load_ms: loadMs,
}));
