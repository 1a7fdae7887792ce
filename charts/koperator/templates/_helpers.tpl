{{- define "koperator.fullname" -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- define "koperator.webhook" -}}{{ include "koperator.fullname" . }}-webhook{{- end -}}
{{- define "koperator.certSecret" -}}{{ .Values.certificates.secretName | default (printf "%s-certs" (include "koperator.webhook" .)) }}{{- end -}}
{{- define "koperator.labels" -}}
app.kubernetes.io/name: koperator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "koperator.selector" -}}
app.kubernetes.io/name: koperator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
