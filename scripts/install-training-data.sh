#!/usr/bin/env bash
# Installs and collects the offline image sources used to build/run the attribution benchmark, reproducibly, and
# records each source's licence in $DEST/SOURCES.md.
#
#   openclipart-png           8,121 public-domain PNG cut-outs (7,889 with alpha): object insertion/replacement,
#                             logo insertion (provenance.bench.make_dataset reads /usr/share/openclipart/png);
#                             also usable as real distractor codes (--distractor-pool /usr/share/openclipart/png)
#   lomiri-wallpapers-16.04   15 photos (CC-BY-4.0 / CC-BY-SA-4.0 / CC0-1.0, per file) -> distractor photos;
#                             OSCAR-Net training photos
#   mate-backgrounds          12 nature photos (GPL-2+) -> distractor photos; OSCAR-Net training photos
#   plasma-workspace-wallpapers  30 KDE wallpapers, photos and renders (GPL-2+) -> OSCAR-Net training photos
#   fonts-dejavu-core         DejaVu fonts for text insertion (Bitstream Vera licence + public domain changes)
#
# The benchmark photos themselves come from ../shared/data/photos (see ../shared/data/README.md); nothing here is
# committed to the repository, and nothing is downloaded at run time.
#
# Usage: scripts/install-training-data.sh [DEST]   (default DEST: benchmarks/out/training-data)
# Then:  provenance bench make-dataset --photos ../shared/data/photos --out benchmarks/out/attr-dataset \
#            --distractors DEST/distractor-photos
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=${1:-benchmarks/out/training-data}
PACKAGES=(openclipart-png lomiri-wallpapers-16.04 mate-backgrounds plasma-workspace-wallpapers fonts-dejavu-core)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "==> collecting distractor photos into $DEST/distractor-photos"
rm -rf "$DEST/distractor-photos"
mkdir -p "$DEST/distractor-photos/lomiri" "$DEST/distractor-photos/mate-nature"
for f in $(dpkg -L lomiri-wallpapers-16.04 | grep -E '\.jpg$' | sort); do cp "$f" "$DEST/distractor-photos/lomiri/"; done
for f in $(dpkg -L mate-backgrounds | grep -E '/nature/.*\.jpg$' | sort); do cp "$f" "$DEST/distractor-photos/mate-nature/"; done

version() { dpkg-query -W -f='${Version}' "$1"; }
{
  echo "# Image sources for the attribution benchmark"
  echo
  echo "| source | Debian package (version) | used for | licence |"
  echo "|---|---|---|---|"
  echo "| /usr/share/openclipart/png | openclipart-png ($(version openclipart-png)) | cut-outs: insertion, replacement, logos | public domain (Creative Commons PD dedication) |"
  echo "| distractor-photos/lomiri | lomiri-wallpapers-16.04 ($(version lomiri-wallpapers-16.04)) | distractor photos | CC-BY-4.0, CC-BY-SA-4.0, CC0-1.0 (per file, below) |"
  echo "| distractor-photos/mate-nature | mate-backgrounds ($(version mate-backgrounds)) | distractor photos | GPL-2+ (below) |"
  echo "| /usr/share/wallpapers | plasma-workspace-wallpapers ($(version plasma-workspace-wallpapers)) | OSCAR-Net training photos | GPL-2+ (below) |"
  echo "| /usr/share/fonts/truetype/dejavu | fonts-dejavu-core ($(version fonts-dejavu-core)) | text insertion | Bitstream Vera / DejaVu licence |"
  echo "| ../shared/data/photos | (shared data) | references | see ../shared/data/README.md |"
  echo
  for p in lomiri-wallpapers-16.04 mate-backgrounds plasma-workspace-wallpapers openclipart-png; do
    echo "## $p: debian/copyright"
    echo
    echo '```'
    zcat -f "/usr/share/doc/$p/copyright"
    echo '```'
    echo
  done
} > "$DEST/SOURCES.md"
echo "==> $(find "$DEST/distractor-photos" -type f | wc -l) distractor photos; licences in $DEST/SOURCES.md"

echo "==> OSCAR-Net train / val / test photos into $DEST/../training-photos"
.venv/bin/python scripts/training_photos.py --out "$(dirname "$DEST")/training-photos"
