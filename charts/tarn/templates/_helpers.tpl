{{- define "tarn.name" -}}tarn-operator{{- end -}}

{{- define "tarn.serviceAccount" -}}
{{- default "tarn-operator" .Values.serviceAccount.name -}}
{{- end -}}

{{- define "tarn.labels" -}}
app.kubernetes.io/name: tarn-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tarn.selector" -}}
app.kubernetes.io/name: tarn-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
