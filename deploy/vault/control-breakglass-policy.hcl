# Example policy for a break-glass group: emergency rotations over rotator's control API.
#
# An emergency rotation ({"emergency": true} on POST /v1/keys/<api_key>/rotate) revokes the old
# secret at once (no grace period) and runs even on a paused key, so it needs `sudo` next to
# `update` on rotator-control/<api_key>/rotate. Give this policy only to a small group whose
# membership is itself audited; members usually hold control-oncall-policy.hcl too.
#
# Apply:   bao policy write rotator-control-breakglass deploy/vault/control-breakglass-policy.hcl

path "rotator-control/+/rotate" {
  capabilities = ["update", "sudo"]
}
