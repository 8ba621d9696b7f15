#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang into build-fuzz/ and runs each for SECONDS (default 20).
# Prints one line per target; exits non-zero if any target crashed (the input is kept under
# build-fuzz/artifacts/, the log under build-fuzz/logs/). Corpora grow across runs in build-fuzz/corpus/.
#   scripts/fuzz.sh [SECONDS]          e.g. scripts/fuzz.sh 600 for a longer session
#   FUZZ_TARGETS="fuzz_gguf" scripts/fuzz.sh 60    only some targets
# Reproduce a crash: build-fuzz/<target> build-fuzz/artifacts/<target>-crash-<hash>
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-20}
[[ "$duration" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2; }
build=build-fuzz

# clang++ (any version) with its libFuzzer runtime (Debian: packages clang and libclang-rt-NN-dev).
cxx=${FUZZ_CXX:-}
if [ -z "$cxx" ]; then
  for c in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
    command -v "$c" >/dev/null 2>&1 && { cxx=$c; break; }
  done
fi
if [ -z "$cxx" ]; then
  echo "fuzz: no clang++ found; install it (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe/p.cpp"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>"$probe/err"; then
  echo "fuzz: $cxx cannot link libFuzzer+ASan+UBSan programs (Debian: apt-get install libclang-rt-14-dev," \
       "matching the clang version):" >&2
  head -3 "$probe/err" >&2
  exit 2
fi

echo "== building fuzz targets with $cxx into $build/" >&2
cmake -S fuzz -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null

# Seeds: small valid inputs from the project's writers, plus real checkpoint pickles when ../shared exists.
seeds=$build/seeds
rm -rf "$seeds"
"$build/make_seeds" "$seeds"
fixture=../shared/fixtures/tiny-a/ckpt-0
if [ -d "$fixture" ]; then
  cp "$fixture/tensor00001_000" "$fixture/tensor00007_000" "$seeds/fuzz_xai_pickle/" 2>/dev/null || true
fi
# Archives written by torch itself (its miniz layout: data descriptors, zero sizes in local headers), where
# Debian's python3-torch is installed.
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  torch_cases=$(mktemp -d)
  /usr/bin/python3 tests/torch_save.py cases "$torch_cases" >/dev/null 2>&1 &&
    cp "$torch_cases/dtypes.bin" "$torch_cases/module.bin" "$torch_cases/views.bin" "$seeds/fuzz_torch_zip/" 2>/dev/null || true
  rm -rf "$torch_cases"
fi

targets=${FUZZ_TARGETS:-$(cd "$build" && find . -maxdepth 1 -name 'fuzz_*' -type f -perm -u+x | sed 's|^\./||' | sort)}
mkdir -p "$build/corpus" "$build/artifacts" "$build/logs"
failed=0
for t in $targets; do
  corpus=$build/corpus/$t
  log=$build/logs/$t.log
  mkdir -p "$corpus" "$seeds/$t"
  dict=fuzz/${t#fuzz_}.dict
  args=(-max_total_time="$duration" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$build/artifacts/$t-")
  [ -f "$dict" ] && args+=(-dict="$dict")
  # Pickles reach their depth and count caps only past libFuzzer's default -max_len (about 4 KB): 200 KB
  # holds 200,000 nested TUPLE1s. -len_control=0: use that length from the start, not after hours.
  case $t in fuzz_xai_pickle|fuzz_torch_zip) args+=(-max_len=262144 -len_control=0) ;; esac
  # New inputs go to the first folder; the seeds are read only.
  rc=0
  "$build/$t" "${args[@]}" "$corpus" "$seeds/$t" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  units=$(find "$corpus" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    printf '%-24s ok     runs %s (%s/s)  cov %s  ft %s  corpus %s\n' "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "$units"
  else
    failed=1
    artifact=$(grep -o "Test unit written to [^ ]*" "$log" | tail -1 | sed 's/Test unit written to //')
    printf '%-24s FAILED rc %s after %s runs; input %s; log %s\n' "$t" "$rc" "${runs:-?}" "${artifact:-?}" "$log"
    grep -m1 -E "ERROR: (AddressSanitizer|libFuzzer)|runtime error|terminate called" "$log" | sed 's/^/    /' || true
  fi
done
exit $failed
