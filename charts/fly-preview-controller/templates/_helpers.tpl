{{/*
Chart name, truncated to the 63 characters Kubernetes allows in names and label values.
*/}}
{{- define "fly-preview-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, plus the chart name unless the release name
already contains it.
*/}}
{{- define "fly-preview-controller.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "fly-preview-controller.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fly-preview-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fly-preview-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fly-preview-controller.labels" -}}
helm.sh/chart: {{ include "fly-preview-controller.chart" . }}
{{ include "fly-preview-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: fly-preview-controller
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "fly-preview-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fly-preview-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "fly-preview-controller.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Name of the Secret holding DATABASE_URL and FLY_API_TOKEN: existingSecret in production,
otherwise the chart-rendered one.
*/}}
{{- define "fly-preview-controller.secretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else if .Values.secret.create }}
{{- include "fly-preview-controller.fullname" . }}
{{- else }}
{{- fail "set existingSecret (production) or secret.create=true with secret.databaseUrl and secret.flyApiToken (development)" }}
{{- end }}
{{- end }}

{{- define "fly-preview-controller.databaseUrlKey" -}}
{{- if .Values.existingSecret }}{{ .Values.existingSecretKeys.databaseUrl }}{{ else }}DATABASE_URL{{ end }}
{{- end }}

{{- define "fly-preview-controller.flyApiTokenKey" -}}
{{- if .Values.existingSecret }}{{ .Values.existingSecretKeys.flyApiToken }}{{ else }}FLY_API_TOKEN{{ end }}
{{- end }}

{{/*
A probe from values without the chart-only `enabled` switch.
*/}}
{{- define "fly-preview-controller.probe" -}}
{{- toYaml (omit . "enabled") }}
{{- end }}
