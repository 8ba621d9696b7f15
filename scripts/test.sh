#!/usr/bin/env bash
# Installs what is needed, builds groak (Release and ASan+UBSan), runs the whole test suite in both,
# then fuzzes every parser (GGUF, safetensors and its index, xAI pickle, torch.save zip, GBNF grammars,
# JSON Schemas) for a short while (FUZZ_SECONDS,
# default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
scripts/build.sh build-asan -DGROAK_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== fuzzing the parsers (${FUZZ_SECONDS:-15} s per target)"
scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
echo "== tests (Release)"
ctest --test-dir build --output-on-failure -j 2
scripts/skipped.sh build
echo "== tests (ASan+UBSan)"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j 2
scripts/skipped.sh build-asan
