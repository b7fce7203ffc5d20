"""Webhooks shared by the services that write their facts (Verifier, Audit) and the one that
delivers them (Audit): the outbox row's shape and event ids (:mod:`.events`), the signature
header (:mod:`.signing`), the retry schedule (:mod:`.backoff`) and endpoint URL rules
(:mod:`.urls`). Pure: standard library only."""
