#!/usr/bin/env bash
# Runs the libFuzzer build (make fuzz-build) on each target named, for
# FUZZ_SECONDS each, FUZZ_JOBS at a time, and writes the table of what each
# run did to Fuzz/out/results.md. Used by `make fuzz`; see Fuzz/README.md.
#
#   Fuzz/out/corpus/TARGET/   what libFuzzer found, kept between runs (the
#                             committed seeds in Fuzz/corpus/TARGET/ are read too)
#   Fuzz/out/crashes/TARGET/  crash-*, leak-*, timeout-*, oom-* inputs
#   Fuzz/out/logs/TARGET.log  libFuzzer's output
set -uo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${FUZZ_SECONDS:-600}
JOBS=${FUZZ_JOBS:-2}
BINARY=${FUZZ_BINARY:-.build-fuzz/release/otlpd-fuzz}
OUT=Fuzz/out
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(sniffer h2client grpc wire json segments config)
[ -x "$BINARY" ] || { echo "no $BINARY: run make fuzz-build first" >&2; exit 1; }

# Symbolized stacks in the reports.
SYMBOLIZER=$(dirname "$(command -v swift)")/llvm-symbolizer
[ -x "$SYMBOLIZER" ] && export ASAN_SYMBOLIZER_PATH="$SYMBOLIZER"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:handle_abort=1:symbolize=1}

run_one() {
    local target=$1
    mkdir -p "$OUT/corpus/$target" "$OUT/crashes/$target" "$OUT/logs"
    local log="$OUT/logs/$target.log"
    local start=$(date +%s)
    "$BINARY" --target="$target" \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="$OUT/crashes/$target/" \
        "$OUT/corpus/$target" "Fuzz/corpus/$target" >"$log" 2>&1
    local status=$?
    echo "$status $(( $(date +%s) - start ))" >"$OUT/logs/$target.status"
    echo "fuzz $target: exit $status after $(( $(date +%s) - start )) s"
}
export -f run_one
export BINARY OUT SECONDS_EACH

echo "fuzzing ${TARGETS[*]} for ${SECONDS_EACH} s each, ${JOBS} at a time"
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'

# The table, from libFuzzer's final lines.
{
    echo "| target | seconds | execs | execs/s | cov | ft | corpus | crashes |"
    echo "|---|---:|---:|---:|---:|---:|---|---|"
    for target in "${TARGETS[@]}"; do
        log="$OUT/logs/$target.log"
        read -r status elapsed <"$OUT/logs/$target.status"
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
        last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1)
        cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
        ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
        corp=$(sed -n 's/.*corp: \([^ ]*\).*/\1/p' <<<"$last")
        crashes=$(find "$OUT/crashes/$target" -type f | wc -l)
        echo "| $target | $elapsed | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | $crashes$([ "$status" = 0 ] || echo " (exit $status)") |"
    done
} >"$OUT/results.md"
cat "$OUT/results.md"
