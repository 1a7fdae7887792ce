#!/usr/bin/env bash
# Installs the real components the e2e tests run against (DESIGN §10):
# etcd, kube-apiserver, kube-controller-manager, kubectl (from the pinned
# k8s.io/kubernetes Go module), helm (from its pinned Go module) and the Apache
# Kafka broker jars (from Maven Central: e2e/tools/kafka/pom.xml pins the KRaft release,
# e2e/tools/kafka-zk/pom.xml the ZooKeeper-mode release and ZooKeeper itself).
#
# Binaries land in $KOP_E2E_CACHE/bin (default: <repo>/.cache/e2e/bin, git-ignored).
# A binary is rebuilt only when the go.mod/go.sum that pins it changes, so a
# second run takes seconds.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${KOP_E2E_CACHE:-$repo/.cache/e2e}
bin=$cache/bin
mkdir -p "$bin" "$cache/stamps"

log() { printf '[e2e-deps %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v go >/dev/null || { log "ERROR: 'go' is not on PATH; install Go >= 1.24"; exit 1; }

# build <tools-dir> <output-name> <package>
build() {
  local dir=$repo/e2e/tools/$1 out=$2 pkg=$3
  local stamp=$cache/stamps/$out
  local want
  want=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -d' ' -f1)
  if [[ -x $bin/$out && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    log "$out: cached ($bin/$out)"
    return
  fi
  log "$out: building $pkg (this takes a few minutes on a cold machine)"
  local start=$SECONDS
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin/$out.tmp" "$pkg")
  mv "$bin/$out.tmp" "$bin/$out"
  echo "$want" >"$stamp"
  log "$out: built in $((SECONDS - start)) s"
}

log "downloading Go modules"
(cd "$repo/e2e/tools/k8s" && go mod download)
build k8s etcd ./cmd/etcd
build k8s kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build k8s kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build k8s kubectl k8s.io/kubernetes/cmd/kubectl
(cd "$repo/e2e/tools/helm" && go mod download)
build helm helm helm.sh/helm/v3/cmd/helm

# Kafka: the runtime class path of each pinned release, copied by Maven.
command -v java >/dev/null || { log "ERROR: 'java' (17 or newer) is not on PATH; it runs the Kafka brokers"; exit 1; }
command -v mvn >/dev/null || { log "ERROR: 'mvn' is not on PATH; it fetches the Kafka jars from Maven Central"; exit 1; }
# maven_libs <name>: e2e/tools/<name>/pom.xml -> $cache/<name>/libs
maven_libs() {
  local name=$1 pom=$repo/e2e/tools/$1/pom.xml libs=$cache/$1/libs want
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -d $libs && -f $cache/stamps/$name && $(cat "$cache/stamps/$name") == "$want" ]]; then
    log "$name: cached ($libs)"
    return
  fi
  log "$name: resolving $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:Kafka \1 :p' "$pom")jars with Maven"
  local start=$SECONDS
  rm -rf "$libs.tmp"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs.tmp"
  rm -rf "$libs"
  mv "$libs.tmp" "$libs"
  echo "$want" >"$cache/stamps/$name"
  log "$name: $(ls "$libs" | wc -l) jars in $((SECONDS - start)) s"
}
maven_libs kafka
maven_libs kafka-zk
maven_libs kafka-previous
maven_libs jmx-exporter
log "all tools ready in $bin and $cache/kafka*/libs"
