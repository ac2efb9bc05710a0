"""Running LoadGen tests: container specs, user.conf, sizing, audits, `up`, `tune`, campaigns
and the compose file."""
