{{/* Names and labels. */}}
{{- define "maskwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "maskwatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels: call with (dict "root" $ "component" "detector"). */}}
{{- define "maskwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "maskwatch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "maskwatch.labels" -}}
{{ include "maskwatch.selectorLabels" . }}
app.kubernetes.io/part-of: maskwatch
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "maskwatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* A Python service's image: <component>.image (the per-service images deploy/images/build.sh
builds) overrides the shared `image`; an empty repository or tag falls back to it. Call with
(dict "root" $ "image" .Values.producer.image). */}}
{{- define "maskwatch.serviceImage" -}}
{{- $own := .image | default dict -}}
{{- $shared := .root.Values.image -}}
{{- printf "%s:%s" (default $shared.repository $own.repository) (default .root.Chart.AppVersion (default $shared.tag $own.tag)) -}}
{{- end -}}

{{- define "maskwatch.modelImage" -}}
{{- $m := .Values.modelServer.image -}}
{{- printf "%s:%s" $m.repository (default .Chart.AppVersion $m.tag) -}}
{{- end -}}

{{- define "maskwatch.camerasSecret" -}}
{{- default (printf "%s-cameras" (include "maskwatch.fullname" .)) .Values.producer.camerasSecret.name -}}
{{- end -}}

{{- define "maskwatch.secretName" -}}
{{- default (printf "%s-secrets" (include "maskwatch.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* Kafka bootstrap: Strimzi's bootstrap Service (9093: its TLS + SCRAM listener), or the external servers. */}}
{{- define "maskwatch.kafkaBootstrap" -}}
{{- if .Values.kafka.strimzi.enabled -}}
{{- $port := ternary 9093 9092 (eq .Values.kafka.security.protocol "SASL_SSL") -}}
{{- printf "%s-kafka-bootstrap.%s.svc:%d" .Values.kafka.strimzi.clusterName .Release.Namespace $port -}}
{{- else -}}
{{- required "kafka.bootstrapServers is required when kafka.strimzi.enabled=false" .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{/* Kafka security: the SASL user, and the Secrets holding its password and the CA. */}}
{{- define "maskwatch.kafkaSasl" -}}
{{- if hasPrefix "SASL_" .Values.kafka.security.protocol -}}true{{- end -}}
{{- end -}}

{{- define "maskwatch.kafkaTls" -}}
{{- if has .Values.kafka.security.protocol (list "SSL" "SASL_SSL") -}}true{{- end -}}
{{- end -}}

{{- define "maskwatch.kafkaUser" -}}
{{- default (include "maskwatch.fullname" .) .Values.kafka.security.username -}}
{{- end -}}

{{- define "maskwatch.kafkaPasswordSecret" -}}
{{- $name := .Values.kafka.security.passwordSecret.name -}}
{{- if and (not $name) .Values.kafka.strimzi.enabled -}}
{{- $name = include "maskwatch.kafkaUser" . -}}
{{- end -}}
{{- required "kafka.security.passwordSecret.name is required for SASL_* without Strimzi" $name -}}
{{- end -}}

{{- define "maskwatch.kafkaCaSecret" -}}
{{- $name := .Values.kafka.security.caSecret.name -}}
{{- if and (not $name) .Values.kafka.strimzi.enabled -}}
{{- $name = printf "%s-cluster-ca-cert" .Values.kafka.strimzi.clusterName -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/* Secret volumes and mounts of every Kafka client (YAML lists; empty for PLAINTEXT). */}}
{{- define "maskwatch.kafkaVolumes" -}}
{{- $s := .Values.kafka.security -}}
{{- if include "maskwatch.kafkaSasl" . }}
- name: kafka-auth
  secret:
    secretName: {{ include "maskwatch.kafkaPasswordSecret" . }}
    items: [{key: {{ $s.passwordSecret.key }}, path: password}]
{{- end }}
{{- if and (include "maskwatch.kafkaTls" .) (include "maskwatch.kafkaCaSecret" .) }}
- name: kafka-ca
  secret:
    secretName: {{ include "maskwatch.kafkaCaSecret" . }}
    items: [{key: {{ $s.caSecret.key }}, path: ca.crt}]
{{- end }}
{{- end -}}

{{- define "maskwatch.kafkaMounts" -}}
{{- range (include "maskwatch.kafkaVolumes" . | fromYamlArray) }}
- name: {{ .name }}
  mountPath: /etc/maskwatch/{{ .name }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "maskwatch.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- $scheme := ternary "rediss" "redis" (.Values.redis.tls.enabled | default false) -}}
{{- printf "%s://%s-redis.%s.svc:6379/0" $scheme (include "maskwatch.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- required "redis.url is required when redis.enabled=false" .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{/* Redis AUTH: the in-chart Redis always has a password, in the chart's generated Secret
unless redis.passwordSecret.name names one; an external Redis uses passwordSecret if set. */}}
{{- define "maskwatch.redisPasswordSecret" -}}
{{- $name := .Values.redis.passwordSecret.name -}}
{{- if and (not $name) .Values.redis.enabled -}}
{{- $name = printf "%s-redis-auth" (include "maskwatch.fullname" .) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "maskwatch.redisPasswordKey" -}}
{{- if .Values.redis.passwordSecret.name -}}{{ .Values.redis.passwordSecret.key }}{{- else -}}password{{- end -}}
{{- end -}}

{{/* The CA the Redis clients trust: redis.tls.caSecret, else (in-chart Redis) the
server's certSecret, whose ca.crt signed it. */}}
{{- define "maskwatch.redisCaSecret" -}}
{{- $t := .Values.redis.tls -}}
{{- if $t.enabled -}}{{ default $t.certSecret $t.caSecret.name }}{{- end -}}
{{- end -}}

{{/* Secret volumes and mounts of every Redis client (aggregator, API). */}}
{{- define "maskwatch.redisVolumes" -}}
{{- with include "maskwatch.redisPasswordSecret" . }}
- name: redis-auth
  secret:
    secretName: {{ . }}
    items: [{key: {{ include "maskwatch.redisPasswordKey" $ }}, path: password}]
{{- end }}
{{- with include "maskwatch.redisCaSecret" . }}
- name: redis-ca
  secret:
    secretName: {{ . }}
    items: [{key: {{ $.Values.redis.tls.caSecret.key }}, path: ca.crt}]
{{- end }}
{{- end -}}

{{- define "maskwatch.redisMounts" -}}
{{- range (include "maskwatch.redisVolumes" . | fromYamlArray) }}
- name: {{ .name }}
  mountPath: /etc/maskwatch/{{ .name }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* A Redis client's settings as env (a dict as YAML): call with (dict "root" $ "prefix"
"MASKWATCH_API"). The password is a file (a mounted Secret), never a value. */}}
{{- define "maskwatch.redisEnv" -}}
{{ .prefix }}_REDIS_URL: {{ include "maskwatch.redisUrl" .root | quote }}
{{- if include "maskwatch.redisPasswordSecret" .root }}
{{ .prefix }}_REDIS_SECURITY__PASSWORD_FILE: /etc/maskwatch/redis-auth/password
{{- end }}
{{- if include "maskwatch.redisCaSecret" .root }}
{{ .prefix }}_REDIS_SECURITY__CA_FILE: /etc/maskwatch/redis-ca/ca.crt
{{- end }}
{{- end -}}

{{/* TF Serving models.config: call with (dict "m" .Values.modelServer "versions" [...] "labels" {...}). */}}
{{- define "maskwatch.modelsConfig" -}}
model_config_list {
  config {
    name: {{ .m.modelName | quote }}
    base_path: {{ .m.basePath | quote }}
    model_platform: "tensorflow"
    model_version_policy {
      {{- if .versions }}
      specific {
        {{- range .versions }}
        versions: {{ int64 . }}
        {{- end }}
      }
      {{- else }}
      latest { num_versions: 1 }
      {{- end }}
    }
    {{- range $label, $version := .labels }}
    version_labels { key: {{ $label | quote }} value: {{ int64 $version }} }
    {{- end }}
  }
}
{{- end -}}

{{/* A value as an environment string: whole numbers without exponents, lists/maps as JSON. */}}
{{- define "maskwatch.envString" -}}
{{- if or (kindIs "map" .) (kindIs "slice" .) -}}
{{- toJson . -}}
{{- else if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* The shared Kafka section as environment variables (a dict as YAML). */}}
{{- define "maskwatch.kafkaEnv" -}}
{{- $k := .Values.kafka -}}
MASKWATCH_KAFKA_BOOTSTRAP_SERVERS: {{ include "maskwatch.kafkaBootstrap" . | quote }}
MASKWATCH_KAFKA_FRAMES_TOPIC: {{ $k.topics.frames | quote }}
MASKWATCH_KAFKA_RESULTS_TOPIC: {{ $k.topics.results | quote }}
MASKWATCH_KAFKA_DEAD_LETTER_TOPIC: {{ $k.topics.deadLetters | quote }}
MASKWATCH_KAFKA_ALERTS_TOPIC: {{ $k.topics.alerts | quote }}
MASKWATCH_KAFKA_FRAMES_PARTITIONS: {{ include "maskwatch.envString" $k.framesPartitions | quote }}
MASKWATCH_KAFKA_RESULTS_PARTITIONS: {{ include "maskwatch.envString" $k.resultsPartitions | quote }}
MASKWATCH_KAFKA_REPLICATION_FACTOR: {{ include "maskwatch.envString" $k.replicationFactor | quote }}
MASKWATCH_KAFKA_MAX_FRAME_BYTES: {{ include "maskwatch.envString" $k.maxFrameBytes | quote }}
MASKWATCH_KAFKA_SECURITY__PROTOCOL: {{ $k.security.protocol | quote }}
{{- if include "maskwatch.kafkaSasl" . }}
MASKWATCH_KAFKA_SECURITY__SASL_MECHANISM: {{ $k.security.saslMechanism | quote }}
MASKWATCH_KAFKA_SECURITY__USERNAME: {{ include "maskwatch.kafkaUser" . | quote }}
MASKWATCH_KAFKA_SECURITY__PASSWORD_FILE: /etc/maskwatch/kafka-auth/password
{{- end }}
{{- if and (include "maskwatch.kafkaTls" .) (include "maskwatch.kafkaCaSecret" .) }}
MASKWATCH_KAFKA_SECURITY__CA_FILE: /etc/maskwatch/kafka-ca/ca.crt
{{- end }}
{{- range $name, $value := $k.env }}
{{ $name }}: {{ include "maskwatch.envString" $value | quote }}
{{- end }}
{{- end -}}

{{/*
A container's env list. Call with (dict "root" $ "values" .Values.detector "kafka" true
"mapped" (dict NAME value ...) "fieldRefs" (dict NAME fieldPath ...)).
Precedence, lowest first: the kafka section, chart-mapped values, the chart's fieldRefs and
<component>.secretEnv (NAME -> key of the chart's Secret), then <component>.env, which always
wins: any setting can be forced verbatim.
*/}}
{{- define "maskwatch.env" -}}
{{- $user := .values.env | default dict -}}
{{- $env := dict -}}
{{- if .kafka -}}
{{- $env = include "maskwatch.kafkaEnv" .root | fromYaml -}}
{{- end -}}
{{- range $name, $value := (.mapped | default dict) -}}
{{- $_ := set $env $name (include "maskwatch.envString" $value) -}}
{{- end -}}
{{- $refs := dict -}}
{{- range $name, $path := (.fieldRefs | default dict) -}}
{{- $_ := unset $env $name -}}
{{- $_ := set $refs $name (dict "fieldRef" (dict "fieldPath" $path)) -}}
{{- end -}}
{{- range $name, $key := (.values.secretEnv | default dict) -}}
{{- $_ := unset $env $name -}}
{{- $_ := set $refs $name (dict "secretKeyRef" (dict "name" (include "maskwatch.secretName" $.root) "key" $key "optional" true)) -}}
{{- end -}}
{{- range $name, $value := $user -}}
{{- $_ := unset $refs $name -}}
{{- $_ := set $env $name (include "maskwatch.envString" $value) -}}
{{- end -}}
{{- range $name := keys $env | sortAlpha }}
- name: {{ $name }}
  value: {{ get $env $name | quote }}
{{- end -}}
{{- range $name := keys $refs | sortAlpha }}
- name: {{ $name }}
  valueFrom:
    {{- toYaml (get $refs $name) | nindent 4 }}
{{- end -}}
{{- end -}}

{{/* Probes on a service's health port: /healthz (loop turning), /readyz (can do work). */}}
{{- define "maskwatch.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  initialDelaySeconds: 10
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 6
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .port }}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
startupProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  periodSeconds: 5
  failureThreshold: 60
{{- end -}}

{{/* Scheduling keys shared by every workload: call with a component's values. */}}
{{- define "maskwatch.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Chart-wide checks that would otherwise make a broken install. */}}
{{- define "maskwatch.validate" -}}
{{- $partitions := int .Values.kafka.framesPartitions -}}
{{- $canary := 0 -}}
{{- if .Values.detector.canary.enabled -}}
{{- $canary = int .Values.detector.canary.replicas -}}
{{- end -}}
{{- if and .Values.keda.enabled (gt (add (int .Values.keda.maxReplicaCount) $canary) $partitions) -}}
{{- fail (printf "keda.maxReplicaCount (%d) + canary detectors (%d) must not exceed kafka.framesPartitions (%d): extra detectors would sit idle" (int .Values.keda.maxReplicaCount) $canary $partitions) -}}
{{- end -}}
{{- if and .Values.keda.enabled (gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) -}}
{{- fail "keda.minReplicaCount must not exceed keda.maxReplicaCount" -}}
{{- end -}}
{{- $detectors := int .Values.detector.replicas -}}
{{- if .Values.detector.canary.enabled -}}
{{- $detectors = add $detectors (int .Values.detector.canary.replicas) -}}
{{- end -}}
{{- if and (not .Values.keda.enabled) (gt $detectors $partitions) -}}
{{- fail (printf "detector replicas (%d, canary included) must not exceed kafka.framesPartitions (%d)" $detectors $partitions) -}}
{{- end -}}
{{- if not (has .Values.producer.camerasFrom (list "configMap" "secret")) -}}
{{- fail "producer.camerasFrom must be configMap or secret" -}}
{{- end -}}
{{- if and .Values.producer.enabled (not .Values.producer.camerasSecret.name) (not .Values.producer.config.cameras) -}}
{{- fail "producer.config.cameras is empty: list the cameras (see deploy/README.md), name producer.camerasSecret, or set producer.enabled=false" -}}
{{- end -}}
{{- if not (has .Values.producer.kind (list "Deployment" "StatefulSet")) -}}
{{- fail "producer.kind must be Deployment or StatefulSet" -}}
{{- end -}}
{{- if and (eq .Values.producer.kind "Deployment") (gt (int .Values.producer.replicas) 1) -}}
{{- fail "producer.replicas > 1 needs producer.kind=StatefulSet (each camera must have exactly one producer)" -}}
{{- end -}}
{{- if not (has .Values.kafka.security.protocol (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) -}}
{{- fail "kafka.security.protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL" -}}
{{- end -}}
{{- if and .Values.kafka.strimzi.enabled (not (has .Values.kafka.security.protocol (list "PLAINTEXT" "SASL_SSL"))) -}}
{{- fail "with Strimzi, kafka.security.protocol is PLAINTEXT or SASL_SSL (its TLS + SCRAM listener)" -}}
{{- end -}}
{{- if and .Values.redis.tls.enabled .Values.redis.enabled (not .Values.redis.tls.certSecret) -}}
{{- fail "redis.tls.enabled with the in-chart Redis needs redis.tls.certSecret (a Secret with tls.crt, tls.key, ca.crt)" -}}
{{- end -}}
{{- if and .Values.redis.tls.enabled (not .Values.redis.enabled) (not (hasPrefix "rediss://" .Values.redis.url)) -}}
{{- fail "redis.tls.enabled with an external Redis needs a rediss:// redis.url" -}}
{{- end -}}
{{- if not (has .Values.modelServer.engine (list "tensorflow-serving" "maskwatch" "openvino-model-server")) -}}
{{- fail "modelServer.engine must be tensorflow-serving, maskwatch or openvino-model-server" -}}
{{- end -}}
{{- if not (has .Values.modelServer.openvino.precision (list "int8" "fp32")) -}}
{{- fail "modelServer.openvino.precision must be int8 or fp32" -}}
{{- end -}}
{{- $m := .Values.modelServer -}}
{{- range $variant := list (dict "path" "modelServer" "versions" $m.versions "labels" $m.versionLabels) (dict "path" "modelServer.canary" "versions" $m.canary.versions "labels" $m.canary.versionLabels) -}}
{{- $served := list -}}
{{- range $variant.versions -}}
{{- $served = append $served (int64 .) -}}
{{- end -}}
{{- range $label, $version := $variant.labels -}}
{{- if not (has (int64 $version) $served) -}}
{{- fail (printf "%s.versionLabels.%s=%d must name one of %s.versions (TF Serving labels only versions it serves)" $variant.path $label (int64 $version) $variant.path) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $m.canary.enabled (ne $m.engine "tensorflow-serving") -}}
{{- fail "modelServer.canary needs modelServer.engine=tensorflow-serving" -}}
{{- end -}}
{{- end -}}

{{/*
The pod template of a Python service (producer, detector, aggregator, api, maskwatch model
server). Call with (dict "root" $ "component" "detector" "values" .Values.detector
"port" 9102 "portName" "metrics" "kafka" true "redis" false "mapped" (dict ...) "fieldRefs" (dict ...)
"volumes" (list ...) "mounts" (list ...) "extraPorts" (list ...) "initContainers" (list ...)
"checksum" "<hash of Secret content the pod reads as files>").
*/}}
{{- define "maskwatch.servicePod" -}}
{{- $root := .root -}}
{{- $portName := .portName | default "metrics" -}}
metadata:
  labels:
    {{- include "maskwatch.labels" (dict "root" $root "component" .component) | nindent 4 }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- with .checksum }}
    checksum/secrets: {{ . }}
    {{- end }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: 60
  {{- with .initContainers }}
  initContainers:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "maskwatch.serviceImage" (dict "root" $root "image" .image) }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        {{- toYaml .values.args | nindent 8 }}
      env:
        {{- include "maskwatch.env" . | trim | nindent 8 }}
      ports:
        - name: {{ $portName }}
          containerPort: {{ .port }}
          protocol: TCP
        {{- with .extraPorts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- include "maskwatch.probes" (dict "port" $portName) | nindent 6 }}
      resources:
        {{- toYaml .values.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- with .mounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- if .kafka }}
        {{- include "maskwatch.kafkaMounts" $root | nindent 8 }}
        {{- end }}
        {{- if .redis }}
        {{- include "maskwatch.redisMounts" $root | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: 256Mi
    {{- with .volumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- if .kafka }}
    {{- include "maskwatch.kafkaVolumes" $root | nindent 4 }}
    {{- end }}
    {{- if .redis }}
    {{- include "maskwatch.redisVolumes" $root | nindent 4 }}
    {{- end }}
  {{- include "maskwatch.scheduling" .values | nindent 2 }}
{{- end -}}
