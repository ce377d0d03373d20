{{- define "gpu-operator.labels" -}}
app.kubernetes.io/name: gpu-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "gpu-operator.image" -}}
{{ .repository }}/{{ .image }}:{{ .version }}
{{- end }}

{{/* One operand DaemonSet on the GPU nodes: dict "root" $ "name" n "app" a "image" values-section */}}
{{- define "gpu-operator.operand" -}}
{{- $root := .root }}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    app: {{ .app }}
    {{- include "gpu-operator.labels" $root | nindent 4 }}
    {{- with $root.Values.daemonsets.labels }}{{ toYaml . | nindent 4 }}{{ end }}
spec:
  selector:
    matchLabels:
      app: {{ .app }}
  template:
    metadata:
      labels:
        app: {{ .app }}
    spec:
      priorityClassName: {{ $root.Values.daemonsets.priorityClassName }}
      serviceAccountName: gpu-operator
      nodeSelector:
        nvidia.com/gpu.present: "true"
      tolerations:
        {{- toYaml $root.Values.daemonsets.tolerations | nindent 8 }}
      containers:
        - name: {{ .app }}
          image: {{ include "gpu-operator.image" .image }}
{{- end }}
