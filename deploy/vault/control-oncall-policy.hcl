# Example policy for an on-call group using rotator's control API (http.control.enabled: true).
#
# rotator asks Vault, with the CALLER's own token, for its capabilities on
# <http.control.vault_path>/<api_key>/<action> (default vault_path: rotator-control). Nothing is
# stored at these paths: they exist only to be named in policies.
#   update: POST /v1/keys/<api_key>/rotate, /rollback, /pause, /resume
#   read:   GET /v1/keys (path rotator-control/keys) and GET /v1/runs/<id> (rotator-control/runs)
#   sudo:   an emergency rotation ({"emergency": true}): NOT granted here; see
#           control-breakglass-policy.hcl
#
# Apply:   bao policy write rotator-control-oncall deploy/vault/control-oncall-policy.hcl
# Attach it to the on-call group (an identity group, or an auth method's group mapping).

path "rotator-control/+/rotate" {
  capabilities = ["update"]
}

path "rotator-control/+/rollback" {
  capabilities = ["update"]
}

path "rotator-control/+/pause" {
  capabilities = ["update"]
}

path "rotator-control/+/resume" {
  capabilities = ["update"]
}

path "rotator-control/keys" {
  capabilities = ["read"]
}

path "rotator-control/runs" {
  capabilities = ["read"]
}
