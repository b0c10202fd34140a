#!/usr/bin/env python3
"""Regenerates expected.json: Python tiktoken's token counts for corpus.txt.

The Rust test `policy::tokens::tests::parity_with_python_tiktoken` asserts that
`sluice_contract::policy::tokens::count` gives exactly these counts.

Usage:
    python3 -m venv /tmp/tikvenv && /tmp/tikvenv/bin/pip install tiktoken
    /tmp/tikvenv/bin/python gen_expected.py RANK_DIR

RANK_DIR holds o200k_base.tiktoken and cl100k_base.tiktoken: the rank files the
Rust crate embeds (~/.cargo/registry/src/*/tiktoken-rs-0.12*/assets/). tiktoken
would download them on first use, which fails offline; instead this script
seeds tiktoken's cache with them (each file named by the SHA-1 of its download
URL), so both sides count with the very same ranks.

Corpus format: UTF-8 entries, each followed by the line "%%%%" (that is, by
"\\n%%%%\\n"). Entries may span lines and end in whitespace; editors must not
strip trailing whitespace from corpus.txt (the byte length of each entry is
recorded to catch that).
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile

ENCODINGS = ["o200k_base", "cl100k_base"]
URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
SEPARATOR = "\n%%%%\n"
HERE = os.path.dirname(os.path.abspath(__file__))


def seed_cache(rank_dir: str) -> str:
    cache = tempfile.mkdtemp(prefix="tiktoken-cache-")
    for name in ENCODINGS:
        src = os.path.join(rank_dir, name + ".tiktoken")
        key = hashlib.sha1(URL.format(name).encode()).hexdigest()
        shutil.copyfile(src, os.path.join(cache, key))
    return cache


def read_corpus(path: str) -> list:
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if not text.endswith(SEPARATOR):
        sys.exit("corpus.txt must end with the separator line")
    return text.split(SEPARATOR)[:-1]


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.environ["TIKTOKEN_CACHE_DIR"] = seed_cache(sys.argv[1])
    import tiktoken  # after the cache is seeded

    encodings = {name: tiktoken.get_encoding(name) for name in ENCODINGS}
    entries = []
    for text in read_corpus(os.path.join(HERE, "corpus.txt")):
        entry = {"bytes": len(text.encode("utf-8"))}
        for name, enc in encodings.items():
            entry[name] = len(enc.encode_ordinary(text))
        entries.append(entry)
    out = {
        "generator": "gen_expected.py",
        "tiktoken_version": tiktoken.__version__,
        "separator": SEPARATOR,
        "entries": entries,
    }
    with open(os.path.join(HERE, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"{len(entries)} entries written to expected.json")


if __name__ == "__main__":
    main()
