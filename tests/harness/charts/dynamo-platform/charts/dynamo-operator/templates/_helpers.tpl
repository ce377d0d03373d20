{{- define "dynamo-operator.fullname" -}}
{{- printf "%s-dynamo-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "dynamo-operator.labels" -}}
app.kubernetes.io/name: dynamo-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "dynamo-operator.watchNamespace" -}}
{{- .Values.namespaceRestriction.targetNamespace | default .Release.Namespace -}}
{{- end }}

{{/*
Install-time validations of the real chart, against what is already in the cluster (helm's lookup; empty
under `helm template`):
  - a cluster-wide install refuses when namespace-restricted operators exist (Roles named
    *-dynamo-operator-*-manager-role in any namespace);
  - any install refuses when another release's cluster-wide operator exists (a ClusterRole named
    *-dynamo-operator-*-manager-role other than this release's), naming its release and namespace;
  - namespace restriction and upgradeCRD exclude each other.
*/}}
{{- define "dynamo-operator.validate" -}}
{{- if and .Values.namespaceRestriction.enabled .Values.upgradeCRD -}}
{{- fail "VALIDATION ERROR: dynamo-operator.upgradeCRD must be false when dynamo-operator.namespaceRestriction.enabled is true (a namespace-restricted operator must not manage the cluster's CRDs)" -}}
{{- end -}}
{{- $own := printf "%s-manager-role" (include "dynamo-operator.fullname" .) -}}
{{- if not .Values.namespaceRestriction.enabled -}}
  {{- $found := list -}}
  {{- $roles := lookup "rbac.authorization.k8s.io/v1" "Role" "" "" -}}
  {{- range $r := ($roles.items | default list) -}}
    {{- if and (contains "-dynamo-operator-" $r.metadata.name) (hasSuffix "-manager-role" $r.metadata.name) -}}
      {{- $found = append $found $r.metadata.namespace -}}
    {{- end -}}
  {{- end -}}
  {{- if $found -}}
    {{- fail (printf "VALIDATION ERROR: Cannot install cluster-wide Dynamo operator. Found existing namespace-restricted Dynamo operators in namespaces: %s. Either use one of them, uninstall them first, or install this operator with --set dynamo-operator.namespaceRestriction.enabled=true" (join ", " ($found | uniq))) -}}
  {{- end -}}
{{- end -}}
{{- /* 1.x: a namespace-restricted operator runs beside the cluster-wide one (which leaves it the namespace
       through a Lease) and uses its CRDs; only a second cluster-wide operator is refused. */ -}}
{{- if not .Values.namespaceRestriction.enabled -}}
{{- $clusterRoles := lookup "rbac.authorization.k8s.io/v1" "ClusterRole" "" "" -}}
{{- range $cr := ($clusterRoles.items | default list) -}}
  {{- if and (contains "-dynamo-operator-" $cr.metadata.name) (hasSuffix "-manager-role" $cr.metadata.name) (ne $cr.metadata.name $own) -}}
    {{- $release := "" -}}
    {{- with $cr.metadata.labels -}}{{- $release = index . "app.kubernetes.io/instance" | default "" -}}{{- end -}}
    {{- $ns := "" -}}
    {{- $bindings := lookup "rbac.authorization.k8s.io/v1" "ClusterRoleBinding" "" "" -}}
    {{- range $b := ($bindings.items | default list) -}}
      {{- if eq $b.roleRef.name $cr.metadata.name -}}
        {{- range $s := ($b.subjects | default list) -}}
          {{- if and (eq $s.kind "ServiceAccount") $s.namespace -}}{{- $ns = $s.namespace -}}{{- end -}}
        {{- end -}}
      {{- end -}}
    {{- end -}}
    {{- fail (printf "VALIDATION ERROR: Found existing cluster-wide Dynamo operator from release '%s' in namespace '%s' (ClusterRole: %s). Only one cluster-wide Dynamo operator should be deployed per cluster. Either use it, or uninstall it first: helm uninstall %s -n %s" $release $ns $cr.metadata.name $release $ns) -}}
  {{- end -}}
{{- end -}}
{{- end -}}
{{- end }}
