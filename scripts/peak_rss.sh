#!/usr/bin/env bash
# Runs a command and reports its wall time and peak RssAnon / RssFile (sampled from /proc every 20 ms).
# Usage: scripts/peak_rss.sh COMMAND [ARGS...]
set -u
start=$(date +%s.%N)
"$@" &
pid=$!
peak_anon=0; peak_file=0
while kill -0 "$pid" 2>/dev/null; do
  if [ -r /proc/$pid/status ]; then
    a=$(awk '/^RssAnon:/{print $2}' /proc/$pid/status 2>/dev/null); f=$(awk '/^RssFile:/{print $2}' /proc/$pid/status 2>/dev/null)
    [ -n "$a" ] && [ "$a" -gt "$peak_anon" ] && peak_anon=$a
    [ -n "$f" ] && [ "$f" -gt "$peak_file" ] && peak_file=$f
  fi
  sleep 0.02
done
wait "$pid"; rc=$?
end=$(date +%s.%N)
printf 'peak_rss: wall %.2f s, peak RssAnon %d MB, peak RssFile %d MB, exit %d\n' \
  "$(echo "$end - $start" | bc)" $((peak_anon / 1024)) $((peak_file / 1024)) "$rc" >&2
exit $rc
