# Example policy for an application that uses one Vonage key's current secret.
#
# Grants read on exactly one key's record on the application path (here the subaccount
# `sub00001`; one policy per application, naming only the keys it sends with). The record holds
# api_key, api_secret, secret_id, rotated_at and run_id; read the latest version on every use, or
# cache it for less than rotation.grace_period, and a rotation is invisible to the application.
#
# Deliberately absent: rotator-state/ (pending and previous secrets are never for applications),
# list, metadata, and every write.
#
# Apply:   bao policy write vonage-sub00001-reader deploy/vault/consumer-policy.hcl

path "secret/data/vonage/sub00001" {
  capabilities = ["read"]
}
