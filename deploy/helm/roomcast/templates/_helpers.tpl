{{/* Chart name, truncated to a DNS label. */}}
{{- define "roomcast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; leaves room for the "-gossip" suffix. */}}
{{- define "roomcast.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 56 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "roomcast.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "roomcast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roomcast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "roomcast.labels" -}}
helm.sh/chart: {{ include "roomcast.chart" . }}
{{ include "roomcast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: roomcast
{{- end }}

{{- define "roomcast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "roomcast.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "roomcast.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Headless Service of the gossip ring. */}}
{{- define "roomcast.gossipService" -}}
{{- printf "%s-gossip" (include "roomcast.fullname" .) }}
{{- end }}

{{/* --gossip-join: the headless Service's DNS name; it resolves to every pod. */}}
{{- define "roomcast.gossipJoin" -}}
{{- printf "%s.%s.svc.%s:%d" (include "roomcast.gossipService" .) .Release.Namespace .Values.clusterDomain (int .Values.gossip.port) }}
{{- end }}

{{/*
--nats: the subchart's client Service when nats.enabled (named like the
official chart's "nats.fullname"), else nats.url.
*/}}
{{- define "roomcast.natsURL" -}}
{{- if .Values.nats.enabled }}
{{- $name := "nats" }}
{{- $full := "" }}
{{- if .Values.nats.fullnameOverride }}
{{- $full = .Values.nats.fullnameOverride }}
{{- else if contains $name .Release.Name }}
{{- $full = .Release.Name }}
{{- else }}
{{- $full = printf "%s-%s" .Release.Name $name }}
{{- end }}
{{- printf "nats://%s.%s.svc.%s:4222" ($full | trunc 63 | trimSuffix "-") .Release.Namespace .Values.clusterDomain }}
{{- else }}
{{- required "nats.url is required when nats.enabled is false" .Values.nats.url }}
{{- end }}
{{- end }}

{{- define "roomcast.secretName" -}}
{{- default (include "roomcast.fullname" .) .Values.apiKey.existingSecret }}
{{- end }}

{{/* The Secret holding the gossip key: the chart's own (shared with the API key) or gossip.existingSecret. */}}
{{- define "roomcast.gossipSecretName" -}}
{{- default (include "roomcast.fullname" .) .Values.gossip.existingSecret }}
{{- end }}

{{/*
Seconds in a duration written as "90s", "2m" or "1m30s" (the forms
values.schema.json allows for drain.window and drain.grace).
*/}}
{{- define "roomcast.seconds" -}}
{{- $m := regexFind "[0-9]+m" . | trimSuffix "m" | default "0" | atoi }}
{{- $s := regexFind "[0-9]+s" . | trimSuffix "s" | default "0" | atoi }}
{{- add (mul $m 60) $s }}
{{- end }}

{{/* Pod termination budget: preStop sleep, then the node's drain grace, plus slack. */}}
{{- define "roomcast.terminationGracePeriodSeconds" -}}
{{- $window := include "roomcast.seconds" .Values.drain.window | atoi }}
{{- $grace := include "roomcast.seconds" .Values.drain.grace | atoi }}
{{- if le $grace $window }}
{{- fail (printf "drain.grace (%s) must be longer than drain.window (%s): the node closes clients over the window, then needs time to flush and exit" .Values.drain.grace .Values.drain.window) }}
{{- end }}
{{- add (int .Values.drain.preStopSleepSeconds) $grace 5 }}
{{- end }}
