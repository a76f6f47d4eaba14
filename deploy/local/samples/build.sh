#!/usr/bin/env bash
# Build the demo cameras' videos from the sample photos (idempotent): one H.264 file per demo
# camera, a slow zoom over each of its four photos, 1280×720 at 10 fps, 8 s per photo, so the
# demo reads a video file the way a producer reads a real camera's stream.
#   bash deploy/local/samples/build.sh [OUT_DIR]     (default: var/samples)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/../../../var/samples}"
mkdir -p "$OUT"
mapfile -t PHOTOS < <(ls "$HERE"/photos/*.jpg | sort)
CAMERAS=(demo-plaza-1 demo-plaza-2 demo-station-1 demo-market-1)
PER_CAMERA=$(( ${#PHOTOS[@]} / ${#CAMERAS[@]} ))
SECONDS_PER_PHOTO=8
FPS=10
frames=$((SECONDS_PER_PHOTO * FPS))
for index in "${!CAMERAS[@]}"; do
  video="$OUT/${CAMERAS[$index]}.mp4"
  mine=("${PHOTOS[@]:$((index * PER_CAMERA)):$PER_CAMERA}")
  if [ -s "$video" ] && [ "$video" -nt "$HERE/build.sh" ] && [ -z "$(find "${mine[@]}" -newer "$video")" ]; then
    continue
  fi
  inputs=() filters="" labels=""
  for i in "${!mine[@]}"; do
    inputs+=(-i "${mine[$i]}")
    filters+="[$i:v]scale=1920:1080:force_original_aspect_ratio=increase,crop=1920:1080,"
    filters+="zoompan=z='1+0.0025*on':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d=$frames:s=1280x720:fps=$FPS,setsar=1[v$i];"
    labels+="[v$i]"
  done
  tmp="$video.tmp.mp4"
  ffmpeg -nostdin -y -loglevel error "${inputs[@]}" \
    -filter_complex "${filters}${labels}concat=n=${#mine[@]}:v=1[out]" -map "[out]" \
    -c:v libx264 -preset veryfast -crf 28 -pix_fmt yuv420p -movflags +faststart "$tmp"
  mv "$tmp" "$video"
  echo "samples: built $video ($(du -h "$video" | cut -f1))"
done
