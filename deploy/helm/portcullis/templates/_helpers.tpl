{{/* Names: "portcullis" for a release called portcullis, else "<release>-portcullis". */}}
{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "portcullis.fullname" -}}
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

{{- define "portcullis.redisName" -}}
{{- printf "%s-redis" (include "portcullis.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object; the selector labels pick the gateway's pods only. */}}
{{- define "portcullis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "portcullis.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{/*
gateway.toml from .Values.config, with the keys the chart owns put in (see values.yaml).
Tables in gateway.toml's order; within a table, keys sorted (Go templates range over maps
in key order), so a rendering is the same every time.
*/}}
{{- define "portcullis.gatewayToml" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $server := mergeOverwrite (default (dict) $cfg.server) (dict "listen" (list (printf "0.0.0.0:%v" .Values.ports.http))) -}}
{{- $_ := set $cfg "server" $server -}}
{{- $_ := set $cfg "admin" (mergeOverwrite (default (dict) $cfg.admin) (dict "listen" (printf "0.0.0.0:%v" .Values.ports.admin))) -}}
{{- if and $cfg.provider .Values.secrets.clientSecretKey -}}
{{- $_ := set $cfg.provider "client_secret" "${PORTCULLIS_CLIENT_SECRET}" -}}
{{- end -}}
{{- if $cfg.session -}}
{{- $secrets := list "${PORTCULLIS_SESSION_SECRET}" -}}
{{- if .Values.secrets.previousSessionSecretKey -}}
{{- $secrets = append $secrets "${PORTCULLIS_SESSION_SECRET_OLD}" -}}
{{- end -}}
{{- $_ := set $cfg.session "secrets" $secrets -}}
{{- if .Values.redis.enabled -}}
{{- $_ := set $cfg.session "store" "redis" -}}
{{- $_ := set $cfg.session "redis_url" (printf "redis://%s:%v" (include "portcullis.redisName" .) .Values.redis.port) -}}
{{- end -}}
{{- else if .Values.redis.enabled -}}
{{- fail "redis.enabled needs config.session: Redis holds browser sessions, and without [session] there are none" -}}
{{- end -}}
{{- /* Keys that read best first, in this order; the rest follow sorted. */ -}}
{{- $first := dict
  "server" (list "listen" "public_url")
  "admin" (list "listen")
  "provider" (list "issuer" "client_id" "client_secret")
  "claims" (list)
  "session" (list "secrets" "store" "redis_url")
  "headers" (list)
  "issuers" (list "issuer")
  "routes" (list "name" "host" "path" "upstream" "upstreams" "upstream_ca" "auth" "allow" "scopes") -}}
# gateway.toml, rendered by the Portcullis chart from its values (config).
{{- range $table := list "server" "admin" "provider" "claims" "session" "headers" }}
{{- with index $cfg $table }}

[{{ $table }}]
{{- include "portcullis.tomlKeys" (dict "table" . "first" (index $first $table)) }}
{{- end }}
{{- end }}
{{- range $array := list "issuers" "routes" }}
{{- range index $cfg $array }}

[[{{ $array }}]]
{{- include "portcullis.tomlKeys" (dict "table" . "first" (index $first $array)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The `key = value` lines of one table: the keys of .first that it has, then the others. */}}
{{- define "portcullis.tomlKeys" -}}
{{- $table := .table }}
{{- range $k := .first }}
{{- if hasKey $table $k }}
{{ include "portcullis.tomlKey" $k }} = {{ include "portcullis.tomlValue" (index $table $k) }}
{{- end }}
{{- end }}
{{- range $k, $v := $table }}
{{- if not (has $k $.first) }}
{{ include "portcullis.tomlKey" $k }} = {{ include "portcullis.tomlValue" $v }}
{{- end }}
{{- end }}
{{- end }}

{{/* A key: bare when TOML allows it, else quoted ("*" in scopes). */}}
{{- define "portcullis.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{/*
A value: a map is an inline table, a list an array, anything else its JSON form, which is
also TOML for strings (JSON's escapes are TOML's), numbers and booleans.
*/}}
{{- define "portcullis.tomlValue" -}}
{{- if kindIs "map" . -}}
{ {{- $first := true }}{{ range $k, $v := . }}{{ if not $first }},{{ end }}{{ $first = false }} {{ include "portcullis.tomlKey" $k }} = {{ include "portcullis.tomlValue" $v }}{{ end }} }
{{- else if kindIs "slice" . -}}
[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ include "portcullis.tomlValue" $v }}{{ end }}]
{{- else -}}
{{- toJson . -}}
{{- end -}}
{{- end }}
