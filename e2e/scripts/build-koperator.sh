#!/usr/bin/env bash
# Builds Koperator's own manager (its main.go: the webhooks and controllers its chart deploys)
# for the side-by-side benchmark (`make bench`), from the unmodified source snapshot in
# ${KOP_THIRD_PARTY:-<repo>/../shared/third_party}/koperator. The Go module proxy refuses
# Koperator's module, so e2e/tools/koperator/go.mod replaces it by that directory; its
# dependencies come from the Go module proxy. Output: $KOP_E2E_CACHE/bin/koperator-manager,
# rebuilt only when the snapshot or the pins change. Without the snapshot it says so and
# exits 0: the benchmark's Koperator columns then say why they are empty.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${KOP_E2E_CACHE:-$repo/.cache/e2e}
snapshot=${KOP_THIRD_PARTY:-$repo/../shared/third_party}/koperator
tools=$repo/e2e/tools/koperator
out=$cache/bin/koperator-manager
stamp=$cache/stamps/koperator-manager
mkdir -p "$cache/bin" "$cache/stamps"

log() { printf '[build-koperator %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ ! -f $snapshot/main.go ]]; then
  log "no Koperator snapshot at $snapshot: the benchmark runs without the Koperator side"
  rm -f "$out"
  exit 0
fi
# go.mod's replace directives are relative to e2e/tools/koperator: the snapshot must be the
# sibling ../shared of the repository (a symlink is fine), or KOP_THIRD_PARTY points at it
# and a private copy of the pins is used.
work=$tools
if [[ $(cd "$snapshot" && pwd -P) != $(cd "$tools/../../../../shared/third_party/koperator" 2>/dev/null && pwd -P) ]]; then
  work=$cache/koperator-build
  rm -rf "$work" && mkdir -p "$work"
  sed "s#\.\./\.\./\.\./\.\./shared/third_party/koperator#$snapshot#" "$tools/go.mod" >"$work/go.mod"
  cp "$tools/go.sum" "$tools/tools.go" "$work/"
fi
want=$( (cat "$tools/go.mod" "$tools/go.sum"
  cd "$snapshot" && find . -name '*.go' -o -name 'go.mod' -o -name 'go.sum' | LC_ALL=C sort | xargs sha256sum) |
  sha256sum | cut -d' ' -f1)
if [[ -x $out && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  log "cached ($out)"
  exit 0
fi
log "building Koperator's manager from $snapshot"
start=$SECONDS
(cd "$work" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out.tmp" github.com/banzaicloud/koperator)
mv "$out.tmp" "$out"
echo "$want" >"$stamp"
log "built in $((SECONDS - start)) s: $out"
