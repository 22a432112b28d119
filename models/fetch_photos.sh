#!/usr/bin/env bash
# Photographs for the `clutter-photo` generator: a fixed set of natural photographs from OpenCV's sample data,
# taken from Debian's `opencv-doc` package (a package registry, at install time; nothing is fetched at run time)
# into runs/photos/ (not committed). Excluded on purpose: the Aloe pair (`aloe*`, the pair we report), the
# chessboard calibration set (`left01..14`, `right01..14`, in ../shared/data), the one real stereo pair
# (`left.jpg`, `right.jpg`), drawings, logos, text and synthetic renders. Checked against models/photos.sha256.
#   bash models/fetch_photos.sh [OUT]      (default runs/photos)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/photos}"
if [ -f "$out/.complete" ] && (cd "$out" && sha256sum --quiet -c "$OLDPWD/models/photos.sha256"); then
  echo "photos: $out is complete"; exit 0
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
src=/usr/share/doc/opencv-doc/examples
if [ ! -d "$src/data" ]; then
  (cd "$work" && apt-get download opencv-doc >/dev/null) || { echo "photos: cannot download Debian's opencv-doc" >&2; exit 1; }
  dpkg -x "$work"/opencv-doc_*.deb "$work/x"
  src="$work/x/usr/share/doc/opencv-doc/examples"
fi
mkdir -p "$out.tmp"
while read -r _ name; do
  case "$name" in hfs-*) cp "$src/hfs/data/${name#hfs-}" "$out.tmp/$name" ;; *) cp "$src/data/$name" "$out.tmp/$name" ;; esac
done < models/photos.sha256
(cd "$out.tmp" && sha256sum --quiet -c "$OLDPWD/models/photos.sha256") || { echo "photos: checksums differ" >&2; exit 1; }
touch "$out.tmp/.complete"
rm -rf "$out"; mv "$out.tmp" "$out"
echo "photos: $(ls "$out" | wc -l) photographs in $out"
