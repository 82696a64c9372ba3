{{/* Labels every object of the chart carries. */}}
{{- define "fleet-rs.labels" -}}
app.kubernetes.io/name: fleet-rs
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "fleet-rs.image" -}}
{{ .repository }}:{{ .tag }}
{{- end -}}
