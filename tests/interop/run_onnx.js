// ONNX Runtime (npm's onnxruntime-node) runs an exported model on raw input bytes:
//   node run_onnx.js MODEL.onnx INPUT.bin float32|uint8 N,C,H,W OUTPUT.bin
// Writes the first output's float32 values (little-endian) and prints its dims as JSON.
// NODE_PATH must reach onnxruntime-node (scripts/install_deps.sh puts it in .deps/node_modules).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, input, type, dimsText, output] = process.argv.slice(2);
  const dims = dimsText.split(',').map(Number);
  const bytes = fs.readFileSync(input);
  const data = type === 'uint8'
    ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
    : new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'] });
  const feeds = { [session.inputNames[0]]: new ort.Tensor(type, data, dims) };
  const result = await session.run(feeds);
  const out = result[session.outputNames[0]];
  fs.writeFileSync(output, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  console.log(JSON.stringify({ input: session.inputNames[0], output: session.outputNames[0], dims: out.dims }));
}

main().catch((e) => { console.error('run_onnx.js: ' + e.message); process.exit(1); });
