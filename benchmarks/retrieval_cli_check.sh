#!/bin/bash
# genvision index / dedup / evaluate --index on a real folder (326 images: sr-train, Set14, the style images,
# Debian darknet's photos, plus planted copies of dog.jpg and eagle.jpg) and on MNIST, through the CLI, each
# command a fresh process, timed. docs/BENCHMARKS.md ("Retrieval (issue 15)") quotes its output.
#   benchmarks/retrieval_cli_check.sh [SCRATCH_DIR]
set -u
cd "$(dirname "$0")/.." && source .venv/bin/activate; SHARED=../shared/data
OUT=${1:-$(mktemp -d)}; O=$OUT/out; P=$OUT/photos; rm -rf $O $P; mkdir -p $O $P/painting $P/photo
cp $SHARED/style-images/style/*.jpg $P/painting/
cp $SHARED/style-images/content/*.jpg /usr/share/darknet/data/*.jpg $SHARED/sr-benchmarks/Set14/*.png $P/photo/ 2>/dev/null
cp -r $SHARED/sr-train $P/sr-train
python - "$P/photo/" "$OUT/dog_crop_query.jpg" <<'PY'
import sys
from PIL import Image
d, query = sys.argv[1], sys.argv[2]
dog = Image.open(d + "dog.jpg").convert("RGB")
dog.save(d + "dog_q40.jpg", quality=40)                     # a re-encoded copy
dog.resize((dog.width // 2, dog.height // 2)).save(d + "dog_small.png")  # a resized copy
import shutil; shutil.copy(d + "eagle.jpg", d + "eagle_copy.jpg")     # an exact copy
w, h = dog.size; dog.crop((w // 10, h // 10, w - w // 10, h - h // 10)).save(query)
PY
ls -R $P | grep -c -i "jpg\|png\|bmp"
ti() { echo "\$ $*"; local s=$(date +%s.%N); "$@"; echo "[rc=$? $(python -c "print(round($(date +%s.%N)-$s,1))") s]"; }
ti genvision index build $P -o $O/photos.gvindex
ti genvision index info $O/photos.gvindex
ti genvision index search $OUT/dog_crop_query.jpg --index $O/photos.gvindex -k 5 --sheet $O/hits.png
ti genvision index search $OUT/dog_crop_query.jpg --index $O/photos.gvindex -k 3 --json
ti genvision index remove $P/photo/dog_small.png --index $O/photos.gvindex
ti genvision index remove $P/photo/not-there.png --index $O/photos.gvindex
ti genvision index add $P/photo/dog_small.png --index $O/photos.gvindex
ti genvision dedup $P -o $O/groups.json --sheet $O/dups.html
ti genvision dedup $P --embed efficientnet-lite0 -o $O/groups_lite0.json --sheet $O/dups_lite0.png
ti genvision index build mnist --data-root ../shared/data/mnist --embed extractor:mnist-cnn -o $O/mnist.gvindex
ti genvision evaluate --index $O/mnist.gvindex --queries mnist:test --data-root ../shared/data/mnist \
    -o $O/evaluation.json
ti genvision index search $OUT/dog_crop_query.jpg --index $O/mnist.gvindex -k 3
