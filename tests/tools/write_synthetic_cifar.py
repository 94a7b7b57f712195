#!/usr/bin/env python3
"""Synthetic CIFAR-10 for the shell tests (1 label byte + 3072 pixel bytes per record).

    write_synthetic_cifar.py DIR [PER_TRAIN_FILE=8] [TEST=40]

data_batch_1..5.bin with PER_TRAIN_FILE records each and test_batch.bin with TEST records, whose
pixels depend on the label (so the nets learn something and seeds give different runs).
"""
import os
import random
import sys

d = sys.argv[1]
per_file = int(sys.argv[2]) if len(sys.argv) > 2 else 8
test_n = int(sys.argv[3]) if len(sys.argv) > 3 else 40
os.makedirs(d)
rng = random.Random(7)


def write(name, n):
    with open(os.path.join(d, name), "wb") as f:
        for i in range(n):
            label = i % 10
            f.write(bytes([label]) + bytes((25 * label + rng.randrange(60)) % 256 for _ in range(3072)))


for b in range(1, 6):
    write(f"data_batch_{b}.bin", per_file)
write("test_batch.bin", test_n)
