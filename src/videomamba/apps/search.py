"""`videomamba search INDEX "a red ball moving left" -k 10`: ranked video segments."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("index", help="index directory written by `videomamba index`")
    parser.add_argument("query", help="what to look for, in words")
    parser.add_argument("-k", type=int, default=10, help="number of segments to return")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "faiss", "auto"),
                        help="exact search in NumPy (default) or FAISS")
    parser.add_argument("--model", default=None,
                        help="model directory, if it moved since indexing (same weights)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print the hits as JSON")


def run(args: argparse.Namespace) -> int:
    from videomamba.apps.search_index import LoadedIndex, embedder_for_index, format_time

    index = LoadedIndex(args.index, args.backend)
    embedder = embedder_for_index(index.manifest, args.model, args.device)
    hits = index.search_vector(embedder.embed_texts([args.query])[0], args.k)
    if args.json:
        print(json.dumps({"query": args.query, "index": args.index, "num_vectors": len(index),
                          "hits": [hit.to_dict() for hit in hits]}, indent=2))
        return 0
    if not hits:
        print(f"{args.index}: the index is empty")
        return 0
    width = max(len(hit.file) for hit in hits)
    for hit in hits:
        print(f"{hit.rank:3d}  {hit.score:+.4f}  {hit.file:<{width}}  "
              f"{format_time(hit.start)} - {format_time(hit.end)}")
    return 0
