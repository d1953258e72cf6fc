{{/*
Names, labels and the small pieces every template shares. Anything that can be wrong in the
values is checked here and ends in `fail` with a sentence that names the value to change.
*/}}

{{/* The chart name, or `nameOverride`. */}}
{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every resource name: `fullnameOverride`, else `<release>-<name>` (just `<release>`
when the release name already contains the chart name). Cut to 63 characters, the limit of a
label value and of a DNS label.
*/}}
{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "tollgate.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
`<fullname>-<suffix>` with the whole name kept within 63 characters: the prefix is cut, never
the suffix, so the names of two components can't collide after truncation.
Usage: include "tollgate.componentName" (list . "gateway")
*/}}
{{- define "tollgate.componentName" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $room := sub 62 (len $suffix) | int -}}
{{- printf "%s-%s" (include "tollgate.fullname" $root | trunc $room | trimSuffix "-") $suffix -}}
{{- end -}}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every resource. */}}
{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tollgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Selector labels of one component; immutable once a Deployment exists, so they carry no version.
Usage: include "tollgate.selectorLabels" (list . "gateway")
*/}}
{{- define "tollgate.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "tollgate.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Labels of one component's objects: the common labels plus its component. */}}
{{- define "tollgate.componentLabels" -}}
{{ include "tollgate.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The ServiceAccount names. */}}
{{- define "tollgate.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "tollgate.componentName" (list . "operator")) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create -}}
{{- default (include "tollgate.componentName" (list . "gateway")) .Values.gateway.serviceAccount.name -}}
{{- else -}}
{{- required "gateway.serviceAccount.name is required when gateway.serviceAccount.create is false" .Values.gateway.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference: repository, then `@digest` or `:tag` (the chart's appVersion). */}}
{{- define "tollgate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The operator's rendered configuration: ConfigMaps `<configName>-<i>` and the credentials
Secret `<configName>-credentials`, both in the release namespace (the operator's
--target-namespace), both mounted by the gateway.
*/}}
{{- define "tollgate.configName" -}}
{{- default (include "tollgate.componentName" (list . "config")) .Values.config.name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "tollgate.credentialsSecretName" -}}
{{- printf "%s-credentials" (include "tollgate.configName" .) -}}
{{- end -}}

{{/* Whether the operator watches the whole cluster (no operator.watchNamespaces). */}}
{{- define "tollgate.clusterWide" -}}
{{- if not .Values.operator.watchNamespaces }}true{{ end -}}
{{- end -}}

{{/* Namespaces whose ProviderCredentials every VirtualKey may use (default: the release's). */}}
{{- define "tollgate.credentialsNamespaces" -}}
{{- toJson (default (list .Release.Namespace) .Values.operator.credentialsNamespaces) -}}
{{- end -}}

{{/*
What the operator watches when namespaced, as a JSON list: operator.watchNamespaces plus the
credentials namespaces (the operator always watches those too). Empty: the whole cluster.
*/}}
{{- define "tollgate.watchedNamespaces" -}}
{{- if .Values.operator.watchNamespaces -}}
{{- toJson (concat .Values.operator.watchNamespaces (include "tollgate.credentialsNamespaces" . | fromJsonArray) | uniq) -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/*
Where the gateway finds the store's files. Paths are fixed by the chart and the image.
*/}}
{{- define "tollgate.paths" -}}
config: /etc/tollgate/config
credentials: /etc/tollgate/credentials
operatorBase: /etc/tollgate/operator
redisPassword: /etc/tollgate/redis
redisCA: /etc/tollgate/redis-tls
state: /var/lib/tollgate
{{- end -}}

{{/*
The Redis URL the gateways use, or nothing for the embedded store. Fails on a URL that carries
a password (it would land in a ConfigMap) or on TLS settings without `rediss://`.
*/}}
{{- define "tollgate.storeURL" -}}
{{- $paths := include "tollgate.paths" . | fromYaml -}}
{{- if eq .Values.store.mode "evaluation" -}}
{{- printf "redis://%s:6379/0" (include "tollgate.componentName" (list . "redis")) -}}
{{- else if eq .Values.store.mode "external" -}}
{{- $url := required "store.external.url is required when store.mode is 'external' (e.g. rediss://redis.example.internal:6380/0)" .Values.store.external.url -}}
{{- if not (regexMatch "^(redis|rediss|unix)://" $url) -}}
{{- fail (printf "store.external.url must start with redis://, rediss:// or unix://, got %q" $url) -}}
{{- end -}}
{{- if regexMatch "^[a-z]+://[^/@]*:[^/@]*@" $url -}}
{{- fail "store.external.url must not contain a password: it would be written into a ConfigMap; put the password in a Secret and set store.external.passwordSecret" -}}
{{- end -}}
{{- if .Values.store.external.tls.caSecret.name -}}
{{- if not (hasPrefix "rediss://" $url) -}}
{{- fail "store.external.tls.caSecret is set but store.external.url does not start with rediss:// (TLS)" -}}
{{- end -}}
{{- printf "%s%sssl_ca_certs=%s/%s" $url (ternary "&" "?" (contains "?" $url)) $paths.redisCA .Values.store.external.tls.caSecret.key -}}
{{- else -}}
{{- $url -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The GatewayConfig sections the operator copies into every config it renders (its `--base-config`):
`gatewayConfig` from the values with the store wired to the chosen mode.
*/}}
{{- define "tollgate.baseConfig" -}}
{{- $paths := include "tollgate.paths" . | fromYaml -}}
{{- $base := dict -}}
{{- with .Values.gatewayConfig.server }}{{ $_ := set $base "server" (deepCopy .) }}{{ end -}}
{{- with .Values.gatewayConfig.models }}{{ $_ := set $base "models" (deepCopy .) }}{{ end -}}
{{- with .Values.gatewayConfig.pricing }}{{ $_ := set $base "pricing" (deepCopy .) }}{{ end -}}
{{- with .Values.gatewayConfig.customers }}{{ $_ := set $base "customers" (deepCopy .) }}{{ end -}}
{{- $store := deepCopy .Values.gatewayConfig.store -}}
{{- if eq .Values.store.mode "embedded" -}}
{{- $_ := set $store "path" (printf "%s/state.db" $paths.state) -}}
{{- else -}}
{{- $_ := set $store "url" (include "tollgate.storeURL" .) -}}
{{- if and (eq .Values.store.mode "external") .Values.store.external.passwordSecret.name -}}
{{- $_ := set $store "passwordFile" (printf "%s/password" $paths.redisPassword) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $base "store" $store -}}
{{- toYaml $base -}}
{{- end -}}

{{/*
Checks across values that the schema can't express. Included once, from the gateway Deployment.
*/}}
{{- define "tollgate.validate" -}}
{{- if and (eq .Values.store.mode "embedded") (or (gt (int .Values.gateway.replicaCount) 1) .Values.gateway.autoscaling.enabled) -}}
{{- fail "store.mode 'embedded' keeps budgets and rate limits in each gateway pod, so more than one replica would multiply every budget: set gateway.replicaCount to 1 and gateway.autoscaling.enabled to false, or use store.mode 'external' (or 'evaluation')" -}}
{{- end -}}
{{- $drain := add .Values.gateway.drainSeconds .Values.gateway.preStopSleepSeconds | int -}}
{{- if le (int .Values.gateway.terminationGracePeriodSeconds) $drain -}}
{{- fail (printf "gateway.terminationGracePeriodSeconds (%d) must be greater than gateway.preStopSleepSeconds + gateway.drainSeconds (%d + %d), or the kubelet kills streams that are still draining" (int .Values.gateway.terminationGracePeriodSeconds) (int .Values.gateway.preStopSleepSeconds) (int .Values.gateway.drainSeconds)) -}}
{{- end -}}
{{- if and .Values.gateway.autoscaling.enabled (gt (int .Values.gateway.autoscaling.minReplicas) (int .Values.gateway.autoscaling.maxReplicas)) -}}
{{- fail "gateway.autoscaling.minReplicas must not be greater than gateway.autoscaling.maxReplicas" -}}
{{- end -}}
{{- if and (ne .Values.store.mode "external") (or .Values.store.external.url .Values.store.external.passwordSecret.name .Values.store.external.tls.caSecret.name) -}}
{{- fail (printf "store.external.* is set but store.mode is %q: set store.mode to 'external' to use it" .Values.store.mode) -}}
{{- end -}}
{{- end -}}

{{/*
Renders one generated CRD from files/crds/ (a symlink to crds/, written by
`python -m tollgate.operator.crdgen`). The spec is copied byte for byte: only the metadata is
rebuilt, to add the release labels and, with `crds.keep`, `helm.sh/resource-policy: keep`.
Usage: include "tollgate.crd" (list . "tollgate.dev_virtualkeys.yaml")
*/}}
{{- define "tollgate.crd" -}}
{{- $root := index . 0 -}}
{{- $path := printf "files/crds/%s" (index . 1) -}}
{{- $text := $root.Files.Get $path -}}
{{- if not $text -}}
{{- fail (printf "%s is missing from the chart: run `make crds`" $path) -}}
{{- end -}}
{{- $crd := fromYaml $text -}}
{{- if hasKey $crd "Error" -}}
{{- fail (printf "%s is not valid YAML: %s" $path $crd.Error) -}}
{{- end -}}
{{- range $key, $_ := $crd -}}
{{- if not (has $key (list "apiVersion" "kind" "metadata" "spec")) -}}
{{- fail (printf "%s has an unexpected top-level field %q" $path $key) -}}
{{- end -}}
{{- end -}}
{{- $spec := regexFind "(?ms)^spec:\\n.*" $text -}}
{{- if not $spec -}}
{{- fail (printf "%s has no top-level spec" $path) -}}
{{- end -}}
{{- $labels := merge (include "tollgate.labels" $root | fromYaml) (default dict $crd.metadata.labels) -}}
{{- range $key, $_ := $crd.metadata -}}
{{- if not (has $key (list "name" "labels" "annotations")) -}}
{{- fail (printf "%s has an unexpected metadata field %q" $path $key) -}}
{{- end -}}
{{- end -}}
{{- $annotations := merge (include "tollgate.crdAnnotations" $root | fromYaml).annotations (default dict $crd.metadata.annotations) -}}
apiVersion: {{ $crd.apiVersion }}
kind: {{ $crd.kind }}
metadata:
  name: {{ $crd.metadata.name }}
  labels:
    {{- toYaml $labels | nindent 4 }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{ $spec }}
{{- end -}}

{{/*
Annotations of every CRD: Argo CD applies them in an earlier sync wave than anything that uses
them; `helm.sh/resource-policy: keep` when `crds.keep`.
*/}}
{{- define "tollgate.crdAnnotations" -}}
annotations:
  argocd.argoproj.io/sync-wave: "-1"
  {{- if .Values.crds.keep }}
  helm.sh/resource-policy: keep
  {{- end }}
{{- end -}}
