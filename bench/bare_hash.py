"""Baseline contender: the plainest way to SHA-256 a tree with hashlib, as a whole process.

Single-threaded, streaming (hashlib.file_digest), no cache, no output per file.

    python bench/bare_hash.py DIR
"""

from __future__ import annotations

import hashlib
import os
import sys


def main() -> int:
    root = sys.argv[1]
    count = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), "rb") as handle:
                hashlib.file_digest(handle, "sha256").hexdigest()
            count += 1
    print(f"hashed {count} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
