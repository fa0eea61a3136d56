# SPDX-License-Identifier: Apache-2.0
"""Wire-format benchmark: bytes per reading and encode/decode speed on slowly varying sensor data.

    source .venv/bin/activate          # from the repo root; the reference data comes from PYTHONPATH:
    PYTHONPATH=libs/contract/tests python libs/contract/bench/wire_bench.py [--readings 2000] [--batches 50]

Data: 5 machines, ts every 100 ms, temperature (0.01 resolution, drifting), rpm (int), running (bool) —
the issue's reference workload (libs/contract/tests/wire_data.py).
"""

from __future__ import annotations

import argparse
import json
import time
import zlib

from ironlink_contract.wire import decode_batch, encode_batch, pack_reading
from wire_data import IDENTITY, slow_sensor_readings


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=2000, help="readings per batch")
    parser.add_argument("--batches", type=int, default=20, help="timing repetitions")
    args = parser.parse_args()
    readings = slow_sensor_readings(args.readings)
    rows = [(i + 1, pack_reading(r)) for i, r in enumerate(readings)]
    payload = encode_batch(IDENTITY, "0123456789abcdef", rows)
    docs = list(decode_batch(payload).documents())
    json_rows = json.dumps(docs).encode()
    n = len(rows)
    pack_s = best_of(lambda: [pack_reading(r) for r in readings], args.batches)
    enc_s = best_of(lambda: encode_batch(IDENTITY, "0123456789abcdef", rows), args.batches)
    dec_s = best_of(lambda: decode_batch(payload), args.batches)
    docs_s = best_of(lambda: list(decode_batch(payload).documents()), args.batches)
    print(f"readings per batch          {n}")
    print(f"batch payload               {len(payload)} bytes = {len(payload) / n:.2f} bytes/reading")
    zjson = len(zlib.compress(json_rows, 6))
    print(f"  (as JSON documents {len(json_rows) / n:.0f} B/reading, zlib'd JSON {zjson / n:.1f})")
    print(f"pack_reading                {n / pack_s:>12,.0f} readings/s")
    print(f"encode_batch                {n / enc_s:>12,.0f} readings/s")
    print(f"decode_batch                {n / dec_s:>12,.0f} readings/s")
    print(f"decode_batch + documents()  {n / docs_s:>12,.0f} readings/s")


if __name__ == "__main__":
    main()
