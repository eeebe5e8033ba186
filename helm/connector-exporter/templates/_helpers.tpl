{{/* Names, labels and shared snippets of the connector-exporter chart. */}}

{{- define "connector-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified app name, truncated at 63 characters (DNS-1123 labels). A release named like
the chart is not repeated: release "connector-exporter" gives "connector-exporter".
*/}}
{{- define "connector-exporter.fullname" -}}
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

{{- define "connector-exporter.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "connector-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "connector-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "connector-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "connector-exporter.labels" -}}
helm.sh/chart: {{ include "connector-exporter.chart" . }}
{{ include "connector-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/component: metrics
app.kubernetes.io/part-of: {{ include "connector-exporter.name" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "connector-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "connector-exporter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret whose keys become the container's environment (chart-made or existing). */}}
{{- define "connector-exporter.secretName" -}}
{{- default (include "connector-exporter.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{- define "connector-exporter.hasSecret" -}}
{{- if or .Values.existingSecret .Values.secrets -}}true{{- end -}}
{{- end -}}

{{/* The Secret of the webhook signing keys (chart-made or existing), when webhooks are on. */}}
{{- define "connector-exporter.webhookSecretName" -}}
{{- default (printf "%s-webhooks" (include "connector-exporter.fullname" .)) .Values.webhooks.existingSecret -}}
{{- end -}}

{{- define "connector-exporter.hasWebhookSecret" -}}
{{- if and .Values.webhooks.enabled (or .Values.webhooks.existingSecret .Values.webhooks.secrets) -}}true{{- end -}}
{{- end -}}

{{- define "connector-exporter.image" -}}
{{- $repository := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repository = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The Prometheus job of the scraped exporter: the ServiceMonitor takes it from the Service's
app.kubernetes.io/name label (its jobLabel), so it does not change with the release name.
*/}}
{{- define "connector-exporter.job" -}}
{{- default (include "connector-exporter.name" .) .Values.prometheusRule.job -}}
{{- end -}}

{{/* The exporter's config file, as rendered into the ConfigMap. */}}
{{- define "connector-exporter.configYaml" -}}
{{- toYaml .Values.config -}}
{{- end -}}

{{/* Names of the ${VAR} references in the config, sorted and unique. */}}
{{- define "connector-exporter.configEnvRefs" -}}
{{- $refs := list -}}
{{- range regexFindAll "\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}" (include "connector-exporter.configYaml" .) -1 -}}
{{- $refs = append $refs (trimSuffix "}" (trimPrefix "${" .)) -}}
{{- end -}}
{{- $refs | uniq | sortAlpha | join " " -}}
{{- end -}}

{{/* A DNS-1123 name for a file-derived object: <fullname>-<prefix>-<file base name>. */}}
{{- define "connector-exporter.fileObjectName" -}}
{{- $base := .path | base | trimSuffix ".json" | trimSuffix ".yml" | trimSuffix ".yaml" | trimSuffix ".rules" -}}
{{- $base = $base | lower | replace "_" "-" | replace "." "-" | replace " " "-" -}}
{{- printf "%s-%s" .prefix $base | trunc 63 | trimSuffix "-" -}}
{{- end -}}
