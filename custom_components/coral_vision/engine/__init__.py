"""Coral Vision's inference engine: find Edge TPUs, load models, run frames, decode results.

A library with no Home Assistant in it; its modules import each other only relatively.
Importing this package (or a sub-package) is cheap: numpy and Pillow load with the module
that needs them, so a missing runtime can always be reported.

The map, each layer using only the ones above it:

- `errors`: the error types every layer raises.
- `results`: the result types every layer passes on (boxes, detections, a frame's outcome).
- `runtime`: which TFLite interpreter package is installed.
- `wire`: a frame's result as JSON and back, the form the server writes and `client` reads.
- `models/`: the model files.
  `flatbuffer` (the one bounded .tflite reader), `model` (describe and load a model),
  `labels`, `catalog` (+ `catalog.json`), `store` (the models folder), `download`
  (catalog models) and `links` (a user's URL), `inspect` (the model check).
- `vision/`: frames in, results out.
  `image_guard` (image headers checked before decoding), `preprocess` (decode and resize),
  `detect` (the SSD decoder and the one entry for every model), `yolo` (anchor-free YOLO heads:
  decode and NMS), `classify` and `annotate` (boxes drawn).
- `inference/`: running models on a device.
  `devices` (Edge TPUs found), `delegate` (a backend: the Edge TPU or the CPU fallback),
  `executor` (one device's request queue and worker), `dispatcher` (a pool of executors,
  one per Edge TPU, spread by load), `pool` (its per-camera order and totals), `stats`,
  `trial` (one frame run to try a model on a device).
- `camera/`: a camera's logic over results.
  `filters` (labels, scores, areas, region), `tracking` (confirmation across frames).
- `cli`: the command line, and `server/` (the engine over HTTP: native API, DeepStack-compatible
  endpoints, metrics, discovery), the edges: nothing in the engine imports them (cli runs the
  server's `serve` command).
- `client`: the server's native API from the other side (aiohttp only: no numpy, no Pillow),
  what the integration uses to run its frames on a server.
"""
