"""The exceptions intake raises when work cannot go on.

    IntakeError
     +-- ConfigError      the configuration file or environment is invalid
     +-- MailboxError     the mailbox cannot be reached, logged into or read
     +-- StoreError       the database cannot be opened or a record is missing
     +-- SendError        a reply could not be handed to the SMTP server

Problems inside a submission are not exceptions: they are findings (rules.findings).
Messages are Chinese because staff read them on the command line.
"""

from __future__ import annotations


class IntakeError(Exception):
    """Root of intake's own exceptions; the command line prints its message and exits 1."""


class ConfigError(IntakeError):
    """Raised when a configuration key is missing or has an invalid value."""


class MailboxError(IntakeError):
    """Raised when the IMAP server or the Maildir cannot be used."""


class StoreError(IntakeError):
    """Raised when the store cannot be opened or a requested record does not exist."""


class SendError(IntakeError):
    """Raised when the SMTP server refuses or cannot take a reply."""
