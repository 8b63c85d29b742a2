#!/usr/bin/env bash
# Coverage-guided fuzzing on the host: libFuzzer and the address sanitizer, both
# shipped with the Swift toolchain, against every parser of untrusted bytes.
#
#   Tests/Fuzz/fuzz-host.sh [TARGET...]     (make fuzz-host [FUZZ_TARGETS='ext2 elf'])
#
# Environment: FUZZ_SECONDS (per target, default 60), FUZZ_OPTIMIZE (default -O, as
# the embedded build; -Onone keeps the standard library's debug preconditions, which
# catch an index past the end of an unsafe buffer even when it lands inside the same
# allocation, where the address sanitizer cannot see it), FUZZ_FLAGS (more libFuzzer
# options, e.g. '-seed=1' or '-runs=100000').
#
# Why not SwiftPM: a fuzzer needs every module it calls compiled with coverage
# instrumentation and the sanitizer, and linked with libFuzzer's own `main`; SwiftPM
# offers `--sanitize` but no per-target coverage or libFuzzer link, and the harnesses
# must stay out of `swift test`. So this script compiles the modules a harness needs
# straight from their source folders with swiftc, as Package.swift describes them
# (Swift 6 language mode, library parsing; no module here has conditional code), each
# into one object and one .swiftmodule, rebuilding a module only when one of its
# sources (or a module it imports) is newer than its object. Each harness is then
# linked into build/fuzz/<target> (build/fuzz/Onone/<target> for FUZZ_OPTIMIZE=-Onone).
#
# Corpus. Every target starts from the seeds in Tests/Fuzz/Corpus/<target>/ (small,
# committed) and keeps what it learns in build/fuzz/corpus/<target>/ (the first
# corpus directory is where libFuzzer writes, so the committed seeds are never
# touched). A crash, an address-sanitizer report, a leak or an input slower than
# FUZZ_TIMEOUT seconds (default 30: every input normally takes milliseconds, but a
# machine loaded by other work can stall a process for seconds, so replay a timeout
# alone before believing it) stops that target and leaves the input in
# build/fuzz/artifacts/<target>/; run `SWIFT_BACKTRACE=enable=no build/fuzz/<target>
# FILE` to reproduce it (FUZZ_OPTIMIZE=-Onone builds print preconditions' messages).
# The script runs every target it was given, then exits non-zero if any failed.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCRIPT=$ROOT/Tests/Fuzz/fuzz-host.sh
cd "$ROOT"

SWIFTC=${SWIFTC:-swiftc}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
OPTIMIZE=${FUZZ_OPTIMIZE:--O}
TIMEOUT=${FUZZ_TIMEOUT:-30}
OUT=build/fuzz
# The fuzzers built -O live in build/fuzz, others in build/fuzz/<level> (e.g. Onone).
BIN=$OUT
[[ $OPTIMIZE == -O ]] || BIN=$OUT/${OPTIMIZE#-}
MODULES=$BIN/modules
COMMON_FLAGS=(-swift-version 6 -parse-as-library -sanitize=fuzzer,address -enable-testing -gline-tables-only
              -DSWIFT_PACKAGE "$OPTIMIZE")

# Module -> source folder, and the modules it imports (as in Package.swift).
declare -A SOURCE=(
    [CurioABI]=Sources/ABI
    [KernelCore]=Sources/Kernel/Core
    [FileSystemCore]=Sources/Servers/FileSystem/Core
    [Ext2]=Sources/Servers/FileSystem/Ext2
    [StorageCore]=Sources/Servers/Storage/Core
    [TimerCore]=Sources/Servers/Timer/Core
    [SSRFormat]=Sources/User/SSR/Format
)
declare -A IMPORTS=(
    [KernelCore]=CurioABI
    [Ext2]=FileSystemCore
    [TimerCore]=CurioABI
)

# Target -> the modules its harness (Tests/Fuzz/<Harness>.swift, compiled with
# Tests/Fuzz/Support.swift) links, in import order.
TARGETS=(ext2 elf boot-image device-tree syscall fs-protocol fs-state storage-protocol storage-state timer ssr-format)
declare -A HARNESS=(
    [ext2]=Ext2 [elf]=ELF [boot-image]=BootImage [device-tree]=DeviceTree [syscall]=Syscall
    [fs-protocol]=FileSystemProtocol [fs-state]=FileSystemState
    [storage-protocol]=StorageProtocol [storage-state]=StorageState
    [timer]=Timer [ssr-format]=SSRFormat
)
# Target -> a file of shared harness code it also compiles.
declare -A SHARED=([boot-image]=FuzzRAM [syscall]=FuzzRAM)
declare -A LINKS=(
    [ext2]="FileSystemCore Ext2"
    [elf]="CurioABI KernelCore" [boot-image]="CurioABI KernelCore" [device-tree]="CurioABI KernelCore"
    [syscall]="CurioABI KernelCore"
    [fs-protocol]=FileSystemCore [fs-state]=FileSystemCore
    [storage-protocol]=StorageCore [storage-state]=StorageCore
    [timer]="CurioABI TimerCore" [ssr-format]=SSRFormat
)

# True if any file in the remaining arguments is newer than $1 (or $1 is missing).
stale() {
    local output=$1; shift
    [[ -f $output ]] || return 0
    local input
    for input in "$@"; do [[ $input -nt $output ]] && return 0; done
    return 1
}

build_module() {
    local module=$1 dependency
    for dependency in ${IMPORTS[$module]:-}; do build_module "$dependency"; done
    local sources
    mapfile -t sources < <(find "${SOURCE[$module]}" -name '*.swift' | sort)
    local inputs=("${sources[@]}")
    for dependency in ${IMPORTS[$module]:-}; do inputs+=("$MODULES/$dependency.o"); done
    stale "$MODULES/$module.o" "${inputs[@]}" "$SCRIPT" || return 0
    echo "fuzz-host: compiling $module"
    "$SWIFTC" "${COMMON_FLAGS[@]}" -wmo -module-name "$module" -I "$MODULES" \
        -emit-module -emit-module-path "$MODULES/$module.swiftmodule" \
        -emit-object -o "$MODULES/$module.o" "${sources[@]}"
    touch "$MODULES/$module.o"  # the compiler leaves an unchanged object's time alone
}

build_target() {
    local target=$1 module objects=()
    for module in ${LINKS[$target]}; do
        build_module "$module"
        objects+=("$MODULES/$module.o")
    done
    local harness=(Tests/Fuzz/${HARNESS[$target]}.swift Tests/Fuzz/Support.swift)
    [[ -n ${SHARED[$target]:-} ]] && harness+=(Tests/Fuzz/${SHARED[$target]}.swift)
    stale "$BIN/$target" "${harness[@]}" "${objects[@]}" || return 0
    echo "fuzz-host: linking $BIN/$target"
    "$SWIFTC" "${COMMON_FLAGS[@]}" -module-name "Fuzz${HARNESS[$target]}" -I "$MODULES" -use-ld=lld \
        "${harness[@]}" "${objects[@]}" -o "$BIN/$target"
}

run_target() {
    local target=$1
    local corpus=$OUT/corpus/$target artifacts=$OUT/artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    echo "fuzz-host: $target for ${SECONDS_PER_TARGET}s (seeds: Tests/Fuzz/Corpus/$target, crashes: $artifacts/)"
    local status=0
    # Swift's own crash handler would run before libFuzzer's, and trip the sanitizer.
    # shellcheck disable=SC2086 # FUZZ_FLAGS is a list of options
    SWIFT_BACKTRACE=enable=no "$BIN/$target" "$corpus" "Tests/Fuzz/Corpus/$target" -max_total_time="$SECONDS_PER_TARGET" \
        -timeout="$TIMEOUT" -artifact_prefix="$artifacts/" -print_final_stats=1 ${FUZZ_FLAGS:-} \
        >"$OUT/$target.log" 2>&1 || status=$?
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$OUT/$target.log" | sed "s/^/  /" || true
    if [[ $status -ne 0 ]]; then
        echo "fuzz-host: $target FAILED (status $status); the report is in $OUT/$target.log:"
        grep -E -m 5 'ERROR|SUMMARY|Fatal error|Test unit written|deadly signal|timeout' "$OUT/$target.log" | sed "s/^/  /" || true
    fi
    return $status
}

selected=("$@")
[[ ${#selected[@]} -gt 0 ]] || selected=("${TARGETS[@]}")
for target in "${selected[@]}"; do
    [[ -n ${HARNESS[$target]:-} ]] || { echo "fuzz-host: no target '$target' (targets: ${TARGETS[*]})"; exit 2; }
done

# Objects built with other flags (another toolchain's, an older script's) are
# thrown away, not mixed.
mkdir -p "$MODULES"
if [[ "$(cat "$BIN/flags" 2>/dev/null)" != "$("$SWIFTC" --version 2>&1 | head -1) ${COMMON_FLAGS[*]}" ]]; then
    rm -f "$MODULES"/* "${TARGETS[@]/#/$BIN/}"
    echo "$("$SWIFTC" --version 2>&1 | head -1) ${COMMON_FLAGS[*]}" >"$BIN/flags"
fi
for target in "${selected[@]}"; do build_target "$target"; done

failed=()
for target in "${selected[@]}"; do
    run_target "$target" || failed+=("$target")
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz-host: failures in: ${failed[*]}"
    exit 1
fi
echo "fuzz-host: ${#selected[@]} targets ran ${SECONDS_PER_TARGET}s each without a failure"
