"""Image retrieval: "find images like this one", near-duplicates, and retrieval metrics.

- :mod:`.embed`: embeddings from what the user has (perceptual hashes, EfficientNet-Lite0 with real
  ImageNet weights, any trained genvision model, the shipped domain extractors, a self-supervised
  net, a torchvision state dict the user gives); never downloaded implicitly;
- :mod:`.store`: the persistent index ``NAME.gvindex`` (SQLite rows + faiss vectors, atomic
  generations, a writer lock, an embedding cache by content hash); :mod:`.backend`: the faiss index
  types and the automatic choice; :mod:`.database`: the SQLite half;
- :mod:`.commands`: ``genvision index build|add|remove|info|search``;
- :mod:`.dedup`: ``genvision dedup``; :mod:`.metrics` and :mod:`.evaluate`: mAP@R, precision/recall@k,
  micro-AP, and ``genvision evaluate --index ... --queries ...``;
- :mod:`.selfsup`: ``genvision train simclr`` (the network is :mod:`genvision.models.embednet`, kind ``embed``).

Python API: ``Index.open("photos.gvindex").search("query.jpg", k=10)``.
"""

from .. import App, CommandRef, FamilyRef

APP = App(
    name="retrieval",
    summary="image retrieval: embeddings, a persistent faiss index, near-duplicate search, retrieval metrics",
    families=(FamilyRef("simclr", "genvision.apps.retrieval.selfsup"),),
    commands=(CommandRef("index", "genvision.apps.retrieval.commands:index",
                         "Build, update and search a persistent image index (genvision index build|add|remove|"
                         "info|search)."),
              CommandRef("dedup", "genvision.apps.retrieval.dedup:dedup",
                         "Group near-duplicate images in a folder (content hash, then embedding distance).")),
)
