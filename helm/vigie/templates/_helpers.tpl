{{/* Names, labels and the rendered vigie.yaml. */}}

{{- define "vigie.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vigie.fullname" -}}
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

{{- define "vigie.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vigie.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vigie.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vigie.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vigie
{{- end }}

{{- define "vigie.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vigie.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vigie.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "vigie.policiesConfigMap" -}}
{{- default (printf "%s-policies" (include "vigie.fullname" .)) .Values.policies.existingConfigMap }}
{{- end }}

{{/*
vigie.yaml: the user's config plus the keys the chart owns (listeners, mounted paths).
Only paths to secrets appear here, never their content.
*/}}
{{- define "vigie.configFile" -}}
{{- $config := deepCopy .Values.config }}
{{- $listen := dict "host" "0.0.0.0" "port" 8080 }}
{{- if .Values.tls.enabled }}
{{- $tls := dict "cert_file" "/etc/vigie/tls/tls.crt" "key_file" "/etc/vigie/tls/tls.key" "client_auth" .Values.tls.clientAuth "min_version" (toString .Values.tls.minVersion) }}
{{- if ne .Values.tls.clientAuth "none" }}
{{- $_ := set $tls "client_ca_file" "/etc/vigie/tls/ca.crt" }}
{{- end }}
{{- $_ := set $listen "tls" $tls }}
{{- end }}
{{- $_ := set $config "listen" $listen }}
{{- $admin := dict "host" "0.0.0.0" "port" 9090 }}
{{- if .Values.adminToken.existingSecret }}
{{- $_ := set $admin "token_file" (printf "/etc/vigie/secrets/admin/%s" .Values.adminToken.key) }}
{{- end }}
{{- if .Values.scrapeToken.existingSecret }}
{{- $_ := set $admin "metrics_auth" "scrape" }}
{{- $_ := set $admin "scrape_token_file" (printf "/etc/vigie/secrets/scrape/%s" .Values.scrapeToken.key) }}
{{- end }}
{{- $_ := set $config "admin" $admin }}
{{- $_ := set $config "policies" "/etc/vigie/policies" }}
{{- if .Values.pseudonymKey.existingSecret }}
{{- $_ := set $config "pseudonym_key_file" (printf "/etc/vigie/secrets/pseudonym/%s" .Values.pseudonymKey.key) }}
{{- end }}
{{- if .Values.redis.url }}
{{- $_ := set $config "redis" .Values.redis.url }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{- define "vigie.tlsSecret" -}}
{{- default (printf "%s-tls" (include "vigie.fullname" .)) .Values.tls.existingSecret }}
{{- end }}

{{/*
Fail when the cluster does not serve a CRD the values ask for (crdCheck: true).
Call with (list $ "monitoring.coreos.com/v1/ServiceMonitor" "serviceMonitor.enabled").
*/}}
{{- define "vigie.requireApi" -}}
{{- $root := index . 0 }}
{{- $api := index . 1 }}
{{- if and $root.Values.crdCheck (not ($root.Capabilities.APIVersions.Has $api)) }}
{{- fail (printf "%s needs %s, which this cluster does not serve: install its CRDs, or render offline with --api-versions %s (or crdCheck: false)" (index . 2) $api $api) }}
{{- end }}
{{- end }}

{{/*
resources with every cpu value multiplied by `workers` (the values give one worker's share).
*/}}
{{- define "vigie.resources" -}}
{{- $resources := deepCopy (default dict .Values.resources) }}
{{- $workers := int .Values.workers }}
{{- range $kind := list "requests" "limits" }}
{{- $part := get $resources $kind }}
{{- if and (gt $workers 1) $part (hasKey $part "cpu") }}
{{- $cpu := toString (get $part "cpu") }}
{{- $milli := 0 }}
{{- if hasSuffix "m" $cpu }}
{{- $milli = int (trimSuffix "m" $cpu) }}
{{- else }}
{{- $milli = int (mulf (float64 $cpu) 1000) }}
{{- end }}
{{- $_ := set $part "cpu" (printf "%dm" (mul $milli $workers)) }}
{{- end }}
{{- end }}
{{- toYaml $resources }}
{{- end }}
