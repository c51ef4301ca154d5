# Least-privilege Vault/OpenBao policy for rotator.
#
# Assumes the defaults of config.example.yaml: a KV v2 secrets engine mounted at `secret`,
# vault.path_prefix `vonage` (what applications read) and vault.state_prefix `rotator-state`
# (rotator's own bookkeeping: the pending and previous secrets). If you change those settings,
# change the paths below to match: the policy must name exactly rotator's two prefixes.
#
# What rotator calls, and why each rule exists:
#   read_secret_version      GET  secret/data/<prefix>/<key>       -> "read"
#   create_or_update_secret  POST secret/data/<prefix>/<key> (cas) -> "create", "update"
#   list_secrets             LIST secret/metadata/vonage/           -> "list"
#   token lookup-self        GET  auth/token/lookup-self            -> "read"
#   capabilities-self        POST sys/capabilities-self             -> "update" (`rotator check`
#                            asks Vault whether this very policy is in place)
#   sys/health               unauthenticated, needs no rule
#
# Deliberately absent: delete, destroy, undelete and metadata writes (rotator never erases a
# version: Vault's history of a key is part of the audit trail), "sudo", and everything outside
# these two prefixes. Logging in with AppRole or Kubernetes auth needs no rule either.
#
# Apply:   bao policy write rotator deploy/vault/rotator-policy.hcl
#          (or: vault policy write rotator deploy/vault/rotator-policy.hcl)

# The current secret of each key, which applications read.
path "secret/data/vonage/*" {
  capabilities = ["create", "read", "update"]
}

# Rotator's bookkeeping: a new secret staged before Vonage sees it, the old one until revoked.
path "secret/data/rotator-state/*" {
  capabilities = ["create", "read", "update"]
}

# Rotator's own records, in a folder no api key can name (keys have no dot): the audit chain's
# head (`audit-anchor`, written check-and-set after every run, compared by `rotator audit verify`)
# and the per-installation fingerprint key (`fingerprint-key`, created once). Covered by the rule
# above too; spelled out so a narrower state rule never drops them. No consumer policy may name it.
path "secret/data/rotator-state/.rotator/*" {
  capabilities = ["create", "read", "update"]
}

# Listing the keys that have a record, and reading version metadata (never values); `rotator
# check` verifies these capabilities on both prefixes.
path "secret/metadata/vonage/*" {
  capabilities = ["read", "list"]
}

path "secret/metadata/rotator-state/*" {
  capabilities = ["read", "list"]
}

# Every login and health check looks the token up, and `rotator check` asks which of the rules
# above the token has. Vault's `default` policy grants both too; they are spelled out so this
# policy also works alone (tokens created with -no-default-policy).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "sys/capabilities-self" {
  capabilities = ["update"]
}
