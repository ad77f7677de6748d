#!/usr/bin/env bash
# deploy/check.sh: validate the deployment files without a Docker engine or a
# Kubernetes cluster. Run by `make check-deploy` (deploy/check.mk).
#
#   Helm chart      helm lint --strict and helm template over value sets
#                   (defaults + deploy/helm/roomcast/ci/*-values.yaml), each
#                   output checked by kubeconform -strict against offline
#                   schemas and by deploy/check/chartcheck (cross-object and
#                   drain-contract checks); values that must be refused are.
#   docker-compose  deploy/check/composecheck: compose-go (the library of
#                   `docker compose`) loads and validates docker-compose.yml
#                   against the Compose spec, then cluster-specific checks.
#   nginx           nginx -t on deploy/nginx/nginx.conf.
#   Dockerfile      deploy/check/dockerfilecheck: BuildKit's parser and
#                   parse-time lint rules, then the image's requirements.
#   Grafana         deploy/check/dashcheck: every series the dashboard queries
#                   is exported by pkg/metrics or pkg/history, and every metric
#                   they export is on the dashboard.
#
# Tools are pinned below and cached in $ROOMCAST_DEPLOY_CACHE (default
# ~/.cache/roomcast-deploy), so only the first run downloads and builds.
# Network: the Go module proxy and Debian's archive, nothing else.
set -euo pipefail

HELM_VERSION=v3.22.0                 # helm.sh/helm/v3
KUBECONFORM_VERSION=v0.8.0           # github.com/yannh/kubeconform
K8S_VERSION=1.37.2                   # k8s.io/kubernetes: api/openapi-spec/swagger.json
PROM_OPERATOR_VERSION=v0.85.0        # github.com/prometheus-operator/prometheus-operator: ServiceMonitor CRD
KUBE_VERSION=${K8S_VERSION}          # the cluster version helm renders for

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ROOMCAST_DEPLOY_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/roomcast-deploy}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/roomcast-deploy.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$CACHE"

# Helm keeps its state out of the user's home.
export HELM_CACHE_HOME=$WORK/helm/cache HELM_CONFIG_HOME=$WORK/helm/config HELM_DATA_HOME=$WORK/helm/data
# Builds of pinned tools: no workspace, no caller GOFLAGS (e.g. -mod=vendor).
export GOWORK=off

START=$SECONDS
passed=0
failed=0
failures=()

log() { printf '%s\n' "$*"; }

# check NAME CMD...: run a check, print its output only when it fails.
check() {
  local name=$1
  shift
  local out=$WORK/check.log
  if "$@" >"$out" 2>&1; then
    passed=$((passed + 1))
    log "ok    $name"
    grep -i 'warning' "$out" | sed 's/^/      /' || true
  else
    failed=$((failed + 1))
    failures+=("$name")
    log "FAIL  $name"
    sed 's/^/      /' "$out"
  fi
}

# refuse NAME PATTERN CMD...: the command must fail, with PATTERN in its output.
refuse() {
  local name=$1 pattern=$2
  shift 2
  local out=$WORK/refuse.log
  if "$@" >"$out" 2>&1; then
    failed=$((failed + 1))
    failures+=("$name")
    log "FAIL  $name (was accepted, must be refused)"
  elif grep -qE -- "$pattern" "$out"; then
    passed=$((passed + 1))
    log "ok    $name (refused)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    log "FAIL  $name (refused, but not for the expected reason /$pattern/)"
    sed 's/^/      /' "$out"
  fi
}

# --- tools ------------------------------------------------------------------

# go_tool NAME MODULE/PATH VERSION: go install into the cache, once per
# version (no debug info: linking is a good part of building helm).
go_tool() {
  local name=$1 pkg=$2 version=$3
  local dir=$CACHE/tools/$name-$version
  if [[ ! -x $dir/$name ]]; then
    log "..    installing $name $version (go install, first run only)" >&2
    rm -rf "$dir.tmp.$$"
    (cd "$WORK" && GOFLAGS= GOBIN=$dir.tmp.$$ go install -ldflags='-s -w' "$pkg@$version") >&2
    rm -rf "$dir" && mv "$dir.tmp.$$" "$dir"
  fi
  printf '%s\n' "$dir/$name"
}

# helm takes the longest to build (a minute or two on 2 cores): build it in
# the background, in its own process group (killed if this script stops
# early), while the rest is prepared and checked. A helm on PATH of exactly
# the pinned version is used as is.
HELM=$CACHE/tools/helm-$HELM_VERSION/helm
helm_pid=""
if command -v helm >/dev/null && [[ $(helm version --template '{{.Version}}' 2>/dev/null) == "$HELM_VERSION" ]]; then
  HELM=$(command -v helm)
elif [[ ! -x $HELM ]]; then
  log "..    installing helm $HELM_VERSION in the background (go install, first run only)"
  rm -rf "$HELM.tmp"
  (cd "$WORK" && GOFLAGS= GOBIN=$HELM.tmp exec setsid go install -ldflags='-s -w' \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >"$WORK/helm-install.log" 2>&1 &
  helm_pid=$!
fi
stop_helm_build() {
  if [[ -n $helm_pid ]] && kill -0 "$helm_pid" 2>/dev/null; then
    kill -- "-$helm_pid" 2>/dev/null || kill "$helm_pid" 2>/dev/null || true
  fi
}
trap 'stop_helm_build; rm -rf "$WORK"' EXIT
KUBECONFORM=$(go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION")

# The checkers of deploy/check (their own Go module, so the product's go.mod
# stays free of compose-go and friends). go build caches between runs.
CHECKBIN=$WORK/bin
(cd "$ROOT/deploy/check" && GOFLAGS=-mod=readonly go build -o "$CHECKBIN/" ./...)

# Kubernetes JSON schemas, made offline: the k8s.io/kubernetes module carries
# the API's OpenAPI document; k8sschemas turns it into kubeconform's layout
# (one strict, standalone schema per kind). Same for the ServiceMonitor CRD.
SCHEMAS=$CACHE/schemas/k8s-$K8S_VERSION-promop-$PROM_OPERATOR_VERSION
if [[ ! -f $SCHEMAS/.complete ]]; then
  log "..    making Kubernetes $K8S_VERSION JSON schemas (first run only)"
  modcache=$CACHE/modcache.tmp
  moddir() { # MODULE@VERSION -> extracted directory
    (cd "$WORK" && GOMODCACHE=$modcache GOFLAGS=-modcacherw go mod download -json "$1") |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p'
  }
  k8s=$(moddir "k8s.io/kubernetes@v$K8S_VERSION")
  promop=$(moddir "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION")
  rm -rf "$SCHEMAS.tmp"
  "$CHECKBIN/k8sschemas" -in "$k8s/api/openapi-spec/swagger.json" -out "$SCHEMAS.tmp" \
    -crd "$promop/jsonnet/prometheus-operator/servicemonitors-crd.json"
  touch "$SCHEMAS.tmp/.complete"
  rm -rf "$SCHEMAS" && mv "$SCHEMAS.tmp" "$SCHEMAS"
  # The sources are not needed once the schemas exist (~150 MB unpacked).
  GOMODCACHE=$modcache go clean -modcache
  rm -rf "$modcache"
fi

# nginx: the one on PATH, else Debian's package unpacked into the cache.
# Unpacking (apt-get download + dpkg -x) rather than `apt-get install`
# starts no nginx service on port 80 and changes nothing under /etc or /var.
NGINX=$(command -v nginx || true)
if [[ -z $NGINX ]]; then
  NGINX=$CACHE/nginx/usr/sbin/nginx
  if [[ ! -x $NGINX ]] && ! command -v apt-get >/dev/null; then
    log "FAIL  nginx is not installed and there is no apt-get to fetch it: install nginx"
    exit 1
  fi
  if [[ ! -x $NGINX ]]; then
    log "..    fetching Debian's nginx package (first run only)"
    (
      cd "$WORK"
      apt-get -q download -o APT::Sandbox::User=root nginx >/dev/null 2>&1 ||
        { apt-get -q update >/dev/null && apt-get -q download -o APT::Sandbox::User=root nginx >/dev/null; }
      rm -rf "$CACHE/nginx.tmp"
      dpkg -x nginx_*.deb "$CACHE/nginx.tmp"
      rm -rf "$CACHE/nginx" && mv "$CACHE/nginx.tmp" "$CACHE/nginx"
    )
  fi
fi

log "tools: kubeconform $KUBECONFORM_VERSION, $("$NGINX" -v 2>&1), schemas $SCHEMAS ($((SECONDS - START))s)"

# --- Dockerfile, docker-compose, nginx, Grafana ------------------------------

check "dockerfile: Dockerfile, .dockerignore" "$CHECKBIN/dockerfilecheck" \
  -f "$ROOT/Dockerfile" -ignore "$ROOT/.dockerignore"
check "compose: docker-compose.yml" "$CHECKBIN/composecheck" -f "$ROOT/docker-compose.yml" \
  -node-config "$ROOT/cmd/node/config.go"

# nginx -t resolves upstream host names, and roomcast-1..3 exist only on the
# compose network. The test copy maps them to loopback addresses (roomcast-N
# -> 127.0.0.N), everything else unchanged; composecheck checks separately
# that the upstreams are exactly the compose services. (A hosts-file entry
# would change the machine's /etc/hosts, or need a private mount namespace.)
# Temp paths compiled into the binary (/var/lib/nginx/...) are pointed into
# the work dir, so the test creates nothing outside it.
nginx_t() {
  local dir=$WORK/nginx temps=""
  mkdir -p "$dir"
  local opt
  for opt in client_body proxy fastcgi uwsgi scgi; do
    local flag=--http-${opt//_/-}-temp-path
    if "$NGINX" -V 2>&1 | grep -q -- "$flag="; then
      temps+="    ${opt}_temp_path $dir/${opt}_temp;\n"
    fi
  done
  sed -E 's/^([[:space:]]*server[[:space:]]+)roomcast-([0-9]+)(:[0-9]+)/\1127.0.0.\2\3/' \
    "$ROOT/deploy/nginx/nginx.conf" |
    awk -v temps="$temps" '{ print } /^http[[:space:]]*\{/ { printf "%s", temps }' >"$dir/nginx.conf"
  if grep -qE '^[[:space:]]*server[[:space:]]+[A-Za-z]' "$dir/nginx.conf"; then
    echo "nginx.conf: an upstream server is not roomcast-N; teach deploy/check.sh how to map it" >&2
    return 1
  fi
  "$NGINX" -t -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" -g "pid $dir/nginx.pid;"
}
check "nginx -t: deploy/nginx/nginx.conf" nginx_t

check "grafana: deploy/grafana/roomcast.json" "$CHECKBIN/dashcheck" \
  -metrics "$ROOT/pkg/metrics/metrics.go" -metrics "$ROOT/pkg/history/metrics.go" \
  -dashboard "$ROOT/deploy/grafana/roomcast.json"

# --- wait for helm ------------------------------------------------------------

if [[ -n $helm_pid ]]; then
  if ! wait "$helm_pid"; then
    helm_pid=""
    sed 's/^/      /' "$WORK/helm-install.log"
    log "FAIL  could not install helm $HELM_VERSION"
    exit 1
  fi
  helm_pid=""
  mkdir -p "$(dirname "$HELM")"
  mv "$HELM.tmp/helm" "$HELM"
  rm -rf "$HELM.tmp"
fi
log "tools: helm $("$HELM" version --short 2>/dev/null) (pinned $HELM_VERSION) ($((SECONDS - START))s)"

# --- Helm chart -----------------------------------------------------------

# The chart declares the official nats chart as a dependency (condition
# nats.enabled). Helm refuses to render a chart whose dependencies are not in
# charts/, even when their condition is false, and the chart repository is not
# reachable here. So the checks render a copy whose charts/nats is a stub: the
# chart's own objects are checked; the subchart's are the nats chart's
# business. Users run `helm dependency build` (see deploy/README.md).
CHART=$WORK/chart/roomcast
mkdir -p "$WORK/chart"
cp -R "$ROOT/deploy/helm/roomcast" "$CHART"
rm -rf "$CHART/charts" "$CHART/Chart.lock"
mkdir -p "$CHART/charts/nats"
printf 'apiVersion: v2\nname: nats\nversion: 1.2.0\ndescription: stub of the official nats chart, for offline checks\n' \
  >"$CHART/charts/nats/Chart.yaml"

RELEASE=rc
NS=roomcast
SCHEMA_LOCATION="$SCHEMAS/{{ .ResourceKind }}{{ .KindSuffix }}.json"
KUBECONFORM_ARGS=(-strict -summary -schema-location "$SCHEMA_LOCATION")

helm_lint() { "$HELM" lint --strict --kube-version "$KUBE_VERSION" --namespace "$NS" "$@" "$CHART"; }
helm_template() { "$HELM" template "$RELEASE" "$CHART" --kube-version "$KUBE_VERSION" --namespace "$NS" "$@"; }

# value_set NAME VALUES_FILE|"" CHARTCHECK_ARGS...
value_set() {
  local name=$1 file=$2
  shift 2
  local args=() out=$WORK/rendered-$name.yaml
  [[ -n $file ]] && args=(-f "$CHART/$file")
  check "helm lint [$name]" helm_lint "${args[@]}"
  if helm_template "${args[@]}" >"$out" 2>"$WORK/template.err"; then
    passed=$((passed + 1))
    log "ok    helm template [$name]"
    check "kubeconform [$name]" "$KUBECONFORM" "${KUBECONFORM_ARGS[@]}" "$out"
    check "chartcheck [$name]" "$CHECKBIN/chartcheck" -f "$out" -node-config "$ROOT/cmd/node/config.go" "$@"
  else
    failed=$((failed + 1))
    failures+=("helm template [$name]")
    log "FAIL  helm template [$name]"
    sed 's/^/      /' "$WORK/template.err"
  fi
}

value_set defaults "" \
  -nats nats://nats:4222 \
  -kinds ConfigMap,Deployment,PodDisruptionBudget,Secret,Service,ServiceAccount
value_set full ci/full-values.yaml \
  -nats nats://nats:4222 \
  -kinds ConfigMap,Deployment,HorizontalPodAutoscaler,Ingress,PodDisruptionBudget,Secret,Service,ServiceAccount,ServiceMonitor
value_set existing-nats ci/existing-nats-values.yaml \
  -nats nats://nats-0.nats.messaging.svc:4222,nats://nats-1.nats.messaging.svc:4222,nats://nats-2.nats.messaging.svc:4222 \
  -kinds ConfigMap,Deployment,Secret,Service,ServiceAccount
value_set existing-secret ci/existing-secret-values.yaml \
  -nats nats://nats:4222 -secret roomcast-api -gossip-secret roomcast-gossip \
  -kinds ConfigMap,Deployment,PodDisruptionBudget,Service
value_set bundled-nats ci/bundled-nats-values.yaml \
  -nats "nats://$RELEASE-nats.$NS.svc.cluster.local:4222" -no-api-key -no-gossip-key \
  -kinds ConfigMap,Deployment,PodDisruptionBudget,Service,ServiceAccount

# Values the chart must refuse (values.schema.json and template guards).
refuse "values: unknown key" "additional properties 'replicas' not allowed" \
  helm_template --set replicas=3
refuse "values: drain.window not a duration" "at '/drain/window'" \
  helm_template --set drain.window=10seconds
refuse "values: drain.grace not longer than drain.window" "must be longer than drain.window" \
  helm_template --set drain.window=30s --set drain.grace=30s
refuse "values: route auth" "at '/routes/0/auth'" \
  helm_template --set 'routes[0].path=/x' --set 'routes[0].auth=none'
refuse "values: bad room name" "at '/routes/0/rooms/0'" \
  helm_template --set 'routes[0].path=/x' --set 'routes[0].auth=public' --set 'routes[0].rooms[0]=no spaces'
refuse "values: trusted proxy not an address" "at '/trustedProxies/0'" \
  helm_template --set 'trustedProxies[0]=lb.example.com'
refuse "values: NATS url" "at '/nats/url'" \
  helm_template --set nats.url=localhost:4222
refuse "values: gossip key not base64 of 16, 24 or 32 bytes" "at '/gossip/key'" \
  helm_template --set gossip.key=c2VjcmV0LXBhc3N3b3Jk
refuse "values: API and gossip keys under one name in the Secret" "give them different names" \
  helm_template --set gossip.secretKey=api-key
refuse "values: CPU autoscaling without a CPU request" "needs resources.requests.cpu" \
  helm_template --set autoscaling.enabled=true --set resources.requests.cpu=null

# --- summary ------------------------------------------------------------------

log "deploy checks took $((SECONDS - START))s"
if ((failed > 0)); then
  log "failed: ${failures[*]}"
fi
log "check-deploy: $passed passed, $failed failed"
((failed == 0))
