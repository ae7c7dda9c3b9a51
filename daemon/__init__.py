"""The running system: mailbox sources, store, pipeline, outbox, digest, command line."""
