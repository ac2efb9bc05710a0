"""Running LoadGen tests: container specs, user.conf, sizing, audits, `up`, `tune`, several
backends in a row (`up A B`) and the compose file."""
